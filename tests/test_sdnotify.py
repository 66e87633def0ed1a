"""sd_notify against a socket the test owns, as systemd would."""

from __future__ import annotations

import os
import socket

from roo_daemon.sdnotify import Notifier


def _listen(address: str | bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(5)
    return s


def test_ready_stopping_watchdog_to_a_path_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with _listen(path) as sock:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.enabled and n.watchdog_interval == 15.0
        assert n.ready("listening")
        lines = sock.recv(4096).decode().split("\n")
        assert "READY=1" in lines and f"MAINPID={os.getpid()}" in lines and "STATUS=listening" in lines
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096).decode().startswith("STOPPING=1")


def test_abstract_socket():
    name = f"roo-daemon-test-{os.getpid()}"
    with _listen(b"\0" + name.encode()) as sock:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert b"READY=1" in sock.recv(4096)


def test_without_notify_socket_nothing_is_sent():
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_interval is None


def test_watchdog_meant_for_another_pid_is_ignored(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None
