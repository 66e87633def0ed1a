"""The daemon as a real process: graceful stop on SIGTERM/SIGINT, crash
recovery after SIGKILL, and what a restart keeps.

Every HTTP response goes through ``tests.contract.check_response`` (via
``Api``, or directly for the raw-socket requests); every WebSocket frame
through ``WsClient``. Nothing sleeps: the tests wait for the daemon's log
records, WebSocket events, or the process's exit.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
from typing import Any

import pytest

from tests.conftest import Api, WsClient, wait_status
from tests.contract import check_response
from tests.server.conftest import DaemonFactory
from tests.server.daemon_process import TIMEOUT

# -- helpers ---------------------------------------------------------------

STAY_INTERRUPTED = {"resume_interrupted": False}  # these tests check what a stop leaves; resuming is tested apart


async def task_events(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every stored event of a task, following the pages."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}/events?after={after}&limit=1000")
        assert r.status == 200, r.body
        page = r.json
        out += page["items"]
        after = page["next_after"]
        if not page["has_more"]:
            return out


async def start_hang_task(api: Api, ws: WsClient, session_id: str) -> dict[str, Any]:
    """A ``hang`` task, returned once it is running and has streamed text."""
    task = await api.task(session_id, "take your time", provider="hang")
    await ws.send({"op": "subscribe", "id": f"sub-{task['id']}", "task_id": task["id"], "after": 0})
    await ws.recv_until(lambda f: f.get("event") == "message.delta" and f.get("task_id") == task["id"])
    return task


def status_events(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["status"] for e in events if e["event"] == "task.status"]


def http_request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a (kept-alive) connection, checked against the spec."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    check_response(method, path, resp.status, resp.headers, raw)
    return resp.status, json.loads(raw) if raw else None


def half_sent_session_post(port: int, name: str) -> tuple[socket.socket, bytes]:
    """A ``POST /api/v1/sessions`` in flight: its headers and the start of its
    body are sent; returns the socket and the rest of the body. With
    ``Expect: 100-continue`` the daemon answers "100 Continue" only once the
    handler exists (and so is counted in flight), which makes the order
    deterministic."""
    body = json.dumps({"name": name}).encode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    slow.sendall(
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    assert recv_head(slow).startswith(b"HTTP/1.1 100")
    slow.sendall(body[:5])
    return slow, body[5:]


def recv_head(sock: socket.socket) -> bytes:
    """Bytes up to and including the first blank line (one response head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)  # byte by byte: never read past the head
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


# -- graceful stop -----------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_closes_websockets_1001_interrupts_task_and_restart_keeps_its_events(
    daemon_factory: DaemonFactory,
) -> None:
    """SIGTERM with a running task and a WebSocket: the socket closes with
    1001, the process exits 0, and after a restart the task is
    ``interrupted`` with its events intact, the session is there, and new
    events get seq numbers above every old one (``resume_interrupted:
    false``: it is not resumed, see tests/tasks/test_restarts.py)."""
    d = daemon_factory(engine=STAY_INTERRUPTED)
    await d.astart()
    api = Api(d.base_url)
    session = await api.session(name="sigterm")
    ws = await WsClient.connect(d.base_url)
    task = await start_hang_task(api, ws, session["id"])
    before = await task_events(api, session["id"], task["id"])

    d.send_signal(signal.SIGTERM)
    while await ws.recv() is not None:  # frames already in flight are fine; then the close
        pass
    assert ws.conn.close_code == 1001
    assert await d.await_exit() == 0
    assert d.find_log(lambda r: r.get("msg") == "received SIGTERM: shutting down")
    assert d.find_log(lambda r: r.get("msg") == "stopped")
    assert not d.find_log(lambda r: r.get("level") in ("error", "critical")), d.records

    d2 = daemon_factory(engine=STAY_INTERRUPTED)
    await d2.astart()
    # The graceful stop stored the final status itself: nothing was left live.
    assert d2.find_log(lambda r: "recovered tasks" in r.get("msg", "")) is None
    api2 = Api(d2.base_url)
    assert (await api2.get(f"/api/v1/sessions/{session['id']}")).json == session
    stored = (await api2.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
    assert stored["status"] == "interrupted"
    assert stored["error"]["code"] == "interrupted"
    assert stored["finished_at"] is not None

    events = await task_events(api2, session["id"], task["id"])
    assert events[: len(before)] == before  # nothing stored before the stop was lost or changed
    names = [e["event"] for e in events]
    assert names[0] == "task.created"
    assert "message.delta" in names
    assert status_events(events) == ["running", "interrupted"]
    interrupted = [e for e in events if e["event"] == "task.status" and e["data"]["status"] == "interrupted"]
    assert interrupted[0]["data"]["previous"] == "running"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))

    new = await api2.task(session["id"], "again", provider="instant")
    done = await wait_status(api2, session["id"], new["id"], {"completed"})
    assert done["result"] == "ok"
    new_events = await task_events(api2, session["id"], new["id"])
    assert new_events and min(e["seq"] for e in new_events) > max(seqs)
    d2.send_signal(signal.SIGTERM)
    assert await d2.await_exit() == 0


def test_drain_answers_readyz_503_refuses_new_connections_and_finishes_inflight_requests(
    daemon_factory: DaemonFactory,
) -> None:
    """During the drain: ``/readyz`` is 503 on a kept-alive connection, the
    listener is closed, and a request in flight when SIGTERM came still
    completes (and is stored); then the process exits 0."""
    d = daemon_factory(server={"shutdown_grace_seconds": 60})
    port = d.start()
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    assert http_request(probe, "GET", "/readyz") == (200, {"status": "ready"})
    probe_sock = probe.sock

    slow, rest = half_sent_session_post(port, "in flight during the drain")

    d.send_signal(signal.SIGTERM)
    # The stop begins on the loop iteration after this record is written,
    # before the daemon reads any request sent after it.
    d.wait_for_log("received SIGTERM")
    status, problem = http_request(probe, "GET", "/readyz")
    assert status == 503
    assert problem["type"].endswith(":shutting-down")
    # Answered on the old connection (the listener is closed, see below),
    # with Connection: close: http.client then drops the socket.
    assert probe.sock is None and probe_sock.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    assert d.proc is not None and d.proc.poll() is None  # still draining: our request holds it

    slow.sendall(rest)
    resp = http.client.HTTPResponse(slow, method="POST")
    resp.begin()
    raw = resp.read()
    check_response("POST", "/api/v1/sessions", resp.status, resp.headers, raw)
    assert resp.status == 201
    created = json.loads(raw)
    slow.close()
    probe.close()

    assert d.wait_exit() == 0
    assert not d.find_log(lambda r: "still in flight" in r.get("msg", ""))

    d2 = daemon_factory()
    port2 = d2.start()
    conn = http.client.HTTPConnection("127.0.0.1", port2, timeout=TIMEOUT)
    assert http_request(conn, "GET", f"/api/v1/sessions/{created['id']}") == (200, created)
    conn.close()
    d2.send_signal(signal.SIGTERM)
    assert d2.wait_exit() == 0


@pytest.mark.gen_test(timeout=60)
async def test_sigint_stops_gracefully_too(daemon_factory: DaemonFactory) -> None:
    """SIGINT (Ctrl-C) is the same graceful stop: exit 0, the running task
    stored ``interrupted`` by the stop itself, not by crash recovery."""
    d = daemon_factory(engine=STAY_INTERRUPTED)
    await d.astart()
    api = Api(d.base_url)
    session = await api.session()
    ws = await WsClient.connect(d.base_url)
    task = await start_hang_task(api, ws, session["id"])
    d.send_signal(signal.SIGINT)
    assert await d.await_exit() == 0
    ws.close()
    assert d.find_log(lambda r: r.get("msg") == "received SIGINT: shutting down")
    assert d.find_log(lambda r: r.get("msg") == "stopped")

    d2 = daemon_factory(engine=STAY_INTERRUPTED)
    await d2.astart()
    assert d2.find_log(lambda r: "recovered tasks" in r.get("msg", "")) is None
    stored = (await Api(d2.base_url).get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
    assert stored["status"] == "interrupted"
    d2.send_signal(signal.SIGINT)
    assert await d2.await_exit() == 0


# -- crash recovery ----------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_kill_9_interrupts_the_running_task_and_requeues_the_queued_one(daemon_factory: DaemonFactory) -> None:
    """After SIGKILL, the next start marks the running task ``interrupted``
    (with a ``task.status`` event saying so) and runs the one that was
    still queued behind it."""
    engine = {"max_concurrent_tasks": 1, **STAY_INTERRUPTED}
    d = daemon_factory(engine=engine)
    await d.astart()
    api = Api(d.base_url)
    session = await api.session(name="crash")
    ws = await WsClient.connect(d.base_url)
    running = await start_hang_task(api, ws, session["id"])
    queued = await api.task(session["id"], "after the slot frees", provider="instant")
    assert queued["status"] == "queued"
    r = await api.get(f"/api/v1/sessions/{session['id']}/tasks/{queued['id']}")
    assert r.json["status"] == "queued"  # the only slot is taken by the hang task
    running_before = await task_events(api, session["id"], running["id"])
    queued_before = await task_events(api, session["id"], queued["id"])
    assert "message.delta" in [e["event"] for e in running_before]

    d.send_signal(signal.SIGKILL)
    assert await d.await_exit() == -signal.SIGKILL
    ws.close()
    assert not d.find_log(lambda r: r.get("msg") == "stopped")

    d2 = daemon_factory(engine=engine)
    await d2.astart()
    recovered = d2.wait_for_log("recovered tasks from the last run")
    assert (recovered["interrupted"], recovered["requeued"]) == (1, 1)
    api2 = Api(d2.base_url)

    done = await wait_status(api2, session["id"], queued["id"], {"completed", "failed"})
    assert done["status"] == "completed" and done["result"] == "ok"

    stored = (await api2.get(f"/api/v1/sessions/{session['id']}/tasks/{running['id']}")).json
    assert stored["status"] == "interrupted"
    assert stored["error"]["code"] == "interrupted"
    events = await task_events(api2, session["id"], running["id"])
    # Nothing stored before the kill was lost or changed; recovery only appended.
    assert events[: len(running_before)] == running_before
    assert status_events(events) == ["running", "interrupted"]
    last = events[-1]
    assert last["event"] == "task.status" and last["data"]["status"] == "interrupted"
    assert last["data"]["previous"] == "running"
    assert "message.delta" in [e["event"] for e in events]

    queued_events = await task_events(api2, session["id"], queued["id"])
    assert queued_events[: len(queued_before)] == queued_before
    assert status_events(queued_events) == ["running", "completed"]
    assert min(e["seq"] for e in queued_events[1:]) > last["seq"]  # it ran after the recovery
    d2.send_signal(signal.SIGTERM)
    assert await d2.await_exit() == 0


# -- what a restart keeps ----------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_restart_keeps_sessions_tasks_and_events(daemon_factory: DaemonFactory) -> None:
    """Every session, task and event read before a restart reads the same after it."""
    d = daemon_factory()
    await d.astart()
    api = Api(d.base_url)
    s1 = await api.session(name="one", metadata={"team": "a"})
    s2 = await api.session(name="two", mode="ask")
    t1 = await api.task(s1["id"], "first", provider="instant")
    t2 = await api.task(s1["id"], "second", provider="instant")
    t3 = await api.task(s2["id"], "third", provider="instant")
    for sid, t in ((s1["id"], t1), (s1["id"], t2), (s2["id"], t3)):
        assert (await wait_status(api, sid, t["id"], {"completed"}))["result"] == "ok"

    async def snapshot(api: Api) -> dict[str, Any]:
        snap: dict[str, Any] = {"sessions": (await api.get("/api/v1/sessions?limit=200")).json}
        for sid, t in ((s1["id"], t1), (s1["id"], t2), (s2["id"], t3)):
            snap[sid] = (await api.get(f"/api/v1/sessions/{sid}")).json
            snap[f"{sid}/tasks"] = (await api.get(f"/api/v1/sessions/{sid}/tasks")).json
            snap[t["id"]] = (await api.get(f"/api/v1/sessions/{sid}/tasks/{t['id']}")).json
            snap[f"{t['id']}/events"] = await task_events(api, sid, t["id"])
        return snap

    before = await snapshot(api)
    assert {s["id"] for s in before["sessions"]["items"]} == {s1["id"], s2["id"]}
    assert {t["id"] for t in before[f"{s1['id']}/tasks"]["items"]} == {t1["id"], t2["id"]}
    assert all(before[f"{t['id']}/events"] for t in (t1, t2, t3))
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0

    d2 = daemon_factory()
    await d2.astart()
    after = await snapshot(Api(d2.base_url))
    assert after == before
    d2.send_signal(signal.SIGTERM)
    assert await d2.await_exit() == 0
