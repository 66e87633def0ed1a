"""The notify protocol end to end: the daemon as a subprocess, the test as
systemd's notify socket (an AF_UNIX datagram socket named by NOTIFY_SOCKET)."""

from __future__ import annotations

import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.conftest import OpsDaemonFactory

WATCHDOG_USEC = 200_000  # the daemon pings every 0.1 s


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(short_tmp / "notify"))
    sock.settimeout(10)  # an upper bound: each datagram is awaited with recv
    yield sock
    sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    """One notify datagram as ``{FIELD: value}``."""
    fields = sock.recv(4096).decode().split("\n")
    return dict(f.split("=", 1) for f in fields if f)


def receive_until(sock: socket.socket, field: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Datagrams up to the first that carries ``field``: (that one, those before)."""
    before = []
    while True:
        msg = receive(sock)
        if field in msg:
            return msg, before
        before.append(msg)


def test_ready_after_the_port_answers_then_watchdog_pings_then_stopping_on_sigterm(
    ops_daemon: OpsDaemonFactory, notify_socket: socket.socket
) -> None:
    """READY=1 (with MAINPID and the address in STATUS) is sent once the port
    answers; WATCHDOG=1 follows every WATCHDOG_USEC/2; SIGTERM brings
    STOPPING=1 and a clean exit."""
    d = ops_daemon(env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    d.launch()
    ready, before = receive_until(notify_socket, "READY")
    assert before == [], f"nothing precedes READY=1: {before}"
    assert ready["READY"] == "1"
    assert ready["MAINPID"] == str(d.pid)
    address = ready["STATUS"].removeprefix("listening on ")
    # READY=1 means "serving": the port must answer at once, no retry.
    with urllib.request.urlopen(f"http://{address}/healthz", timeout=5) as r:
        assert r.status == 200

    pings = [receive(notify_socket) for _ in range(3)]
    assert pings == [{"WATCHDOG": "1"}] * 3

    d.send_signal(signal.SIGTERM)
    stopping, _ = receive_until(notify_socket, "STOPPING")  # watchdog pings may still precede it
    assert stopping == {"STOPPING": "1", "STATUS": "draining"}
    assert d.wait_exit() == 0


def test_watchdog_for_another_pid_sends_no_pings(ops_daemon: OpsDaemonFactory, notify_socket: socket.socket) -> None:
    """WATCHDOG_PID naming another process: READY and STOPPING, no pings
    (sd_watchdog_enabled(3)); nothing is sent between them."""
    # 2 ms: were the watchdog on, it would ping every millisecond (this test
    # cannot fail spuriously: a ping can only come from a wrongly enabled watchdog).
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "2000", "WATCHDOG_PID": "1"}
    d = ops_daemon(env=env)
    d.start()
    assert "READY" in receive(notify_socket)
    with urllib.request.urlopen(f"{d.base_url}/healthz", timeout=5) as r:
        assert r.status == 200
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert "STOPPING" in receive(notify_socket)  # the very next datagram: no WATCHDOG=1 came between
