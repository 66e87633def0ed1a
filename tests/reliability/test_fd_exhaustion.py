"""File descriptor exhaustion (issue #9, item 13), with a real daemon under a
low ``RLIMIT_NOFILE`` and more connections than it has descriptors.

Before: ``accept()`` failing with EMFILE left the listening socket readable,
so the loop called the accept handler again at once, forever: 80 % CPU and
47,000 tracebacks in 10 s. Now the accept loop backs off (the waiting clients
stay in the kernel's backlog), says so once per interval, counts each
failure in ``accept_errors_total{reason}``, and serves them once descriptors
are free again."""

from __future__ import annotations

import asyncio
import errno
import http.client
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.contract import check_response
from tests.server.conftest import daemon_config
from tests.server.daemon_process import TIMEOUT, DaemonProcess
from tests.server.test_lifecycle import http_request

NOFILE = 64
CLIENTS = 120
HOLD_SECONDS = 3.0  # how long the descriptors stay used up: long enough for a busy loop to show

# Sets the descriptor limit, then execs the daemon (same pid, as under systemd's LimitNOFILE=).
_LIMIT = """\
import os, resource, sys
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
os.execv(sys.argv[2], sys.argv[2:])
"""


class LimitedDaemon(DaemonProcess):
    prefix = [sys.executable, "-c", _LIMIT, str(NOFILE)]


def accept_failures(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("accept_errors_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_running_out_of_descriptors_backs_off_and_recovers(tmp_path: Path) -> None:
    d = LimitedDaemon(tmp_path, daemon_config(), tmp_path / "data")
    try:
        port = d.start()
        clients = []
        for _ in range(CLIENTS):
            s = socket.socket()
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", port))  # completes in the kernel's backlog even when not accepted
            clients.append(s)
        first = d.wait_for_log(lambda r: "cannot accept connections" in str(r.get("msg", "")))
        assert first["level"] == "warning" and "EMFILE" in first["msg"], first
        time.sleep(HOLD_SECONDS)  # let a busy loop show itself, if there is one
        during = list(d.records)
        for s in clients:
            s.close()

        # Served again, the connections that waited included.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        assert http_request(conn, "GET", "/healthz") == (200, {"status": "ok"})
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        raw = resp.read()
        check_response("GET", "/metrics", resp.status, resp.headers, raw)
        failures = accept_failures(raw.decode())
        conn.close()

        said = [r for r in during if "cannot accept connections" in str(r.get("msg", ""))]
        assert len(said) == 1, said[:3]  # once per interval, not once per failure
        tracebacks = [r for r in during if r.get("exc") or "Traceback" in json.dumps(r)]
        assert not tracebacks, tracebacks[:1]
        # Each failure is counted; the backoff (>= 50 ms between tries) bounds how many there can be.
        assert 1 <= failures <= HOLD_SECONDS / 0.05 + 20, failures
        d.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0
    finally:
        d.kill()


class FlakyListener:
    """A listening socket whose first ``failures`` accepts fail with EMFILE."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock = sock
        self.failures = failures
        self.calls = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()


@pytest.mark.gen_test(timeout=30)
async def test_the_acceptor_backs_off_counts_and_then_accepts(caplog: pytest.LogCaptureFixture) -> None:
    """In process: five EMFILEs in a row, each counted, said once, with
    backoff in between; then the waiting connection is accepted."""
    from roo_daemon.accept import Acceptor

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    flaky = FlakyListener(listener, failures=5)
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()
    reasons: list[str] = []
    acceptor = Acceptor(flaky, lambda conn, addr: accepted.set_result(conn), on_error=reasons.append)  # type: ignore[arg-type]
    client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="roo_daemon.accept"):
        conn = await asyncio.wait_for(accepted, TIMEOUT)
    assert reasons == ["emfile"] * 5
    assert flaky.calls == 7  # one try per pause (no busy loop), then until the backlog is empty
    said = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(said) == 1 and "EMFILE" in said[0].getMessage()
    acceptor.remove()
    acceptor.remove()  # twice is fine
    for s in (conn, client, listener):
        s.close()
