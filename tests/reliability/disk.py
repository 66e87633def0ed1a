"""A small disk of the test's own: a tmpfs mounted for one test, which the
test fills to the last byte and frees again.

Mounting needs root (CAP_SYS_ADMIN). Where the mount fails the test is
skipped with the reason; under ``CI=true`` it fails (tests/needs.py).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import missing


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until the file system has not one byte left."""
        with open(self.filler, "ab", buffering=0) as f:
            for size in (1 << 20, 1 << 16, 1 << 12, 1):
                chunk = b"\0" * size
                while True:
                    try:
                        f.write(chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        break
        assert shutil.disk_usage(self.path).free == 0

    def free(self) -> None:
        self.filler.unlink()


def mount_small_disk(where: Path, size: str) -> SmallDisk:
    """Mount a tmpfs of ``size`` at ``where`` (skips, or fails in CI, if it cannot)."""
    where.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        missing("mount(8) is not installed (util-linux)")
    try:
        done = subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as e:
        missing(f"cannot run mount: {e}")
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs (needs root): {done.stderr.strip() or done.returncode}")
    return SmallDisk(where)


def unmount(disk: SmallDisk) -> None:
    # Lazy: a daemon killed at teardown may still be closing its files.
    subprocess.run(["umount", "-l", str(disk.path)], capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 16 MiB tmpfs at ``tmp_path/disk``, unmounted after the test."""
    disk = mount_small_disk(tmp_path / "disk", "16m")
    try:
        yield disk
    finally:
        unmount(disk)
