"""Graceful drain over kept-alive connections (issue #9, item 9), with a real
daemon process and raw HTTP/1.1 connections.

Before: after SIGTERM, requests arriving on connections opened earlier were
still served for the whole grace period (thousands of sessions created after
SIGTERM), and at its end the connections were closed under requests whose
writes had committed (answers lost). Now a request arriving during the drain
is answered 503 ``shutting-down`` with ``Connection: close`` and not
handled; requests in flight finish and are answered; then the daemon exits."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading

from tests.contract import check_response
from tests.server.conftest import DaemonFactory, daemon_factory  # noqa: F401 (fixture)
from tests.server.daemon_process import TIMEOUT, has_msg
from tests.server.test_lifecycle import half_sent_session_post, http_request

SHUTTING_DOWN = "urn:roo-daemon:problem:shutting-down"


def post_session(conn: http.client.HTTPConnection, name: str) -> http.client.HTTPResponse:
    conn.request(
        "POST", "/api/v1/sessions", body=json.dumps({"name": name}), headers={"Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    resp.raw = resp.read()  # type: ignore[attr-defined]
    check_response("POST", "/api/v1/sessions", resp.status, resp.headers, resp.raw)  # type: ignore[attr-defined]
    return resp


def read_response(sock: socket.socket, method: str, path: str) -> http.client.HTTPResponse:
    """One whole response from a raw socket, checked against the spec."""
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    resp.raw = resp.read()  # type: ignore[attr-defined]
    check_response(method, path, resp.status, resp.headers, resp.raw)  # type: ignore[attr-defined]
    return resp


def stored_names(port: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    names, cursor = [], None
    while True:
        status, page = http_request(conn, "GET", "/api/v1/sessions?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200
        names += [s["name"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            conn.close()
            return names


def test_requests_on_open_connections_are_refused_while_in_flight_ones_finish(
    daemon_factory: DaemonFactory,  # noqa: F811
) -> None:
    d = daemon_factory(server={"shutdown_grace_seconds": 60})
    port = d.start()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(5)]
    for sock in idle:  # opened and used before SIGTERM, kept alive
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock, "GET", "/healthz").status == 200

    slow, rest = half_sent_session_post(port, "in flight")  # in flight at SIGTERM: its body half sent

    d.send_signal(signal.SIGTERM)
    d.wait_for_log("received SIGTERM")
    for i, sock in enumerate(idle):
        new = json.dumps({"name": f"after SIGTERM {i}"}).encode()
        sock.sendall(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(new), new)
        )
        resp = read_response(sock, "POST", "/api/v1/sessions")
        assert resp.status == 503, resp.raw  # type: ignore[attr-defined]
        assert json.loads(resp.raw)["type"] == SHUTTING_DOWN  # type: ignore[attr-defined]
        assert resp.headers["Connection"] == "close"
        assert sock.recv(1) == b""  # and the daemon closed the connection
        sock.close()
    assert d.proc is not None and d.proc.poll() is None  # still draining: the slow request holds it

    slow.sendall(rest)
    resp = read_response(slow, "POST", "/api/v1/sessions")
    assert resp.status == 201, resp.raw  # type: ignore[attr-defined]  # handled, and answered in full
    assert resp.headers["Connection"] == "close"  # it was in flight when the drain began
    slow.close()
    assert d.wait_exit() == 0  # at once, not at the end of the 60 s grace
    assert d.find_log(has_msg("answered 503 to 5 requests that arrived during the drain"))
    assert not d.find_log(lambda r: "still in flight" in r.get("msg", ""))

    d2 = daemon_factory()
    port2 = d2.start()
    assert stored_names(port2) == ["in flight"]  # nothing that arrived after SIGTERM was handled
    d2.send_signal(signal.SIGTERM)
    assert d2.wait_exit() == 0


def test_busy_keep_alive_clients_during_sigterm_lose_no_answer(daemon_factory: DaemonFactory) -> None:  # noqa: F811
    """Clients creating sessions back to back on kept-alive connections while
    SIGTERM comes: every session stored was answered 201 and every 201 was
    stored. Each client is told: 503 for a request that came during the
    drain, or ``Connection: close`` on the answer to one in flight; only a
    request sent as the last idle connections close meets a closed
    connection, and it was not handled."""
    d = daemon_factory(server={"shutdown_grace_seconds": 60})
    port = d.start()
    answered: dict[int, list[str]] = {}
    told: dict[int, str] = {}
    errors: list[str] = []
    started = threading.Barrier(5)

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        answered[n] = []
        started.wait()
        for i in range(100_000):
            name = f"c{n}-{i}"
            try:
                resp = post_session(conn, name)
            except (ConnectionError, http.client.HTTPException) as e:
                # Only the final close of an idle connection may meet a request
                # on its way; such a request was not handled (checked below).
                errors.append(f"{name}: {e!r}")
                return
            if resp.status == 503:
                assert resp.headers["Connection"] == "close"
                told[n] = "refused"
                return
            assert resp.status == 201, resp.raw  # type: ignore[attr-defined]
            answered[n].append(name)
            if resp.headers.get("Connection") == "close":
                told[n] = "closed after an answer"
                return

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    d.wait_for_log(lambda r: "POST /api/v1/sessions 201" in str(r.get("msg")) and r.get("status") == 201)
    d.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(TIMEOUT * 4)
        assert not t.is_alive()
    assert d.wait_exit() == 0
    assert len(told) + len(errors) == 4, (told, errors)
    assert d.find_log(lambda r: "still in flight" in r.get("msg", "")) is None

    d2 = daemon_factory()
    port2 = d2.start()
    stored = set(stored_names(port2))
    acknowledged = {name for names in answered.values() for name in names}
    assert acknowledged and stored == acknowledged, (sorted(stored - acknowledged), sorted(acknowledged - stored))
    d2.send_signal(signal.SIGTERM)
    assert d2.wait_exit() == 0
