"""The shipped systemd units: ``systemd-analyze verify`` accepts them (where
systemd is installed), and the socket unit matches the service."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

from roo_daemon.engine.sandbox import Bubblewrap, SandboxPolicy
from tests.needs import which_or_skip

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
INSTALLED_BINARY = "/opt/roo-daemon/venv/bin/roo-daemon"


def read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """Both units verify with no warning at all (systemd-analyze exits 0 even
    for an unknown key, so any output is a failure too). verify checks that
    ExecStart's binary exists, so the copy points it at this checkout's
    entry point instead of the install location."""
    analyze = which_or_skip("systemd-analyze")
    entry_point = Path(sys.executable).parent / "roo-daemon"
    if not entry_point.exists():  # not installed as a package: any real executable will do
        entry_point = Path(sys.executable)
    service = (UNITS / "roo-daemon.service").read_text()
    assert INSTALLED_BINARY in service
    (tmp_path / "roo-daemon.service").write_text(service.replace(INSTALLED_BINARY, str(entry_point)))
    shutil.copy(UNITS / "roo-daemon.socket", tmp_path / "roo-daemon.socket")
    proc = subprocess.run(
        [analyze, "verify", "roo-daemon.socket", "roo-daemon.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a socket unit without a valid address is refused."""
    analyze = which_or_skip("systemd-analyze")
    broken = (UNITS / "roo-daemon.socket").read_text().replace("ListenStream=127.0.0.1:3000", "ListenStream=nowhere")
    (tmp_path / "roo-daemon.socket").write_text(broken)
    proc = subprocess.run([analyze, "verify", "roo-daemon.socket"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "ListenStream" in proc.stderr + proc.stdout


def test_socket_unit_is_a_loopback_stream_for_the_service() -> None:
    sock = read_unit("roo-daemon.socket")["Socket"]
    assert sock["ListenStream"] == "127.0.0.1:3000"  # the daemon's default address
    assert sock["Accept"] == "no"  # one daemon serves every connection
    assert sock["Service"] == "roo-daemon.service"
    service = read_unit("roo-daemon.service")
    assert service["Service"]["Type"] == "notify"
    # The daemon receives its sockets through the address families it may use.
    assert "AF_INET" in service["Service"]["RestrictAddressFamilies"].split()


def test_the_unit_allows_exactly_what_the_command_sandbox_needs() -> None:
    """The namespaces bwrap is asked to make (network off: the most), and
    nothing that breaks it: an overmounted /proc (ProtectKernelTunables,
    ProtectKernelLogs) makes the kernel refuse the sandbox's own /proc."""
    args = Bubblewrap("bwrap", []).argv(SandboxPolicy(Path("/w"), Path("/w"), network=False), ["true"])
    wanted = {a.removeprefix("--unshare-") for a in args if a.startswith("--unshare-")} | {"mnt"}
    # The unit's parser keeps the last of repeated keys; read every line instead.
    lines = [line.split("=", 1) for line in (UNITS / "roo-daemon.service").read_text().splitlines() if "=" in line]
    settings: dict[str, list[str]] = {}
    for key, value in lines:
        settings.setdefault(key.strip(), []).append(value.strip())
    assert set(settings["RestrictNamespaces"][-1].split()) == wanted
    assert "AF_NETLINK" in settings["RestrictAddressFamilies"][-1].split()  # loopback in a new network namespace
    allowed = " ".join(settings["SystemCallFilter"]).split()
    assert {"mount", "umount2", "pivot_root"} <= set(allowed)
    assert settings.get("ProtectKernelTunables", ["no"])[-1] == "no"
    assert settings.get("ProtectKernelLogs", ["no"])[-1] == "no"
