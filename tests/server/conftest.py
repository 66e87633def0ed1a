"""Fixtures for the daemon-as-a-subprocess tests."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROVIDERS
from tests.server.daemon_process import DaemonProcess

BASE_CONFIG: dict[str, Any] = {
    "providers": {name: PROVIDERS[name] for name in ("demo", "hang", "instant")},
    "websocket": {"ping_interval_seconds": 0},
    "log": {"level": "info", "format": "json"},
}

DaemonFactory = Callable[..., DaemonProcess]


def daemon_config(**sections: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE_CONFIG)
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """``daemon_factory(**sections)`` makes a (not yet started) daemon on
    ``tmp_path/data``; calling it again gives a restart on the same data dir.
    Every process still running at teardown is killed."""
    made: list[DaemonProcess] = []

    def make(**sections: dict[str, Any]) -> DaemonProcess:
        workdir = tmp_path / f"run{len(made)}"
        workdir.mkdir()
        d = DaemonProcess(workdir, daemon_config(**sections), tmp_path / "data")
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
