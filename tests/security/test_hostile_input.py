"""Hostile JSON at the API edge: lone UTF-16 surrogates, NaN and Infinity,
nesting 1,000 deep, integers past 2^63. Each gets a 4xx problem over REST
or an ``error`` frame over the WebSocket (the connection kept), never a 500,
a dropped connection or a write the store cannot take.

A lone surrogate (JSON ``"\\ud800"``) is valid JSON syntax but not a Unicode
string: it cannot be encoded as UTF-8, so SQLite and every client would
choke on it. It used to reach the store's group commit and take other
tenants' events down with it (tests/reliability/test_bad_rows.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from roo_daemon.spec import Spec
from roo_daemon.strictjson import MAX_DEPTH
from tests.conftest import wait_status
from tests.security.conftest import TOKENS, open_raw, parse_head, read_all, subscribe_ok

LONE = "\\ud800"  # as the client spells it in JSON text
INT64_MAX = 2**63 - 1


def raw(doc: str) -> dict[str, Any]:
    """Keyword arguments for ``Api.post`` sending ``doc`` verbatim."""
    return {"body": doc, "headers": {"Content-Type": "application/json"}}


def assert_422(r: Any, pointer: str) -> dict[str, Any]:
    assert r.status == 422, r.body
    problem = r.json
    assert problem["type"] == "urn:roo-daemon:problem:validation", problem
    assert [e["pointer"] for e in problem["errors"]] == [pointer], problem
    return problem


@pytest.mark.parametrize(
    ("doc", "pointer"),
    [
        (f'{{"name": "a{LONE}b"}}', "/body/name"),
        (f'{{"metadata": {{"ticket": "{LONE}"}}}}', "/body/metadata/ticket"),
        (f'{{"metadata": {{"k{LONE}": "v"}}}}', "/body/metadata/k\\ud800"),
        ('{"auto_approve": {"allowed_commands": ["ls", "\\udfff"]}}', "/body/auto_approve/allowed_commands/1"),
        # Raw UTF-8 encodings of a surrogate (CESU-8): Python's json decodes bytes with surrogatepass.
        ('{"name": "\xed\xa0\x80"}', "/body/name"),
    ],
)
@pytest.mark.gen_test(timeout=15)
async def test_a_lone_surrogate_in_a_session_body_is_422(as_: Any, doc: str, pointer: str) -> None:
    alice = as_("alice")
    body = doc.encode("latin-1") if "\xed" in doc else doc
    r = await alice.post("/api/v1/sessions", body=body, headers={"Content-Type": "application/json"})
    problem = assert_422(r, pointer)
    assert "surrogate" in problem["detail"]
    assert (await alice.get("/api/v1/sessions")).json["items"] == []


@pytest.mark.gen_test(timeout=15)
async def test_a_surrogate_pair_is_a_character_not_an_error(as_: Any) -> None:
    r = await as_("alice").post("/api/v1/sessions", **raw('{"name": "smile \\ud83d\\ude00"}'))
    assert r.status == 201, r.body
    assert r.json["name"] == "smile \U0001f600"


@pytest.mark.gen_test(timeout=15)
async def test_a_lone_surrogate_in_a_prompt_or_an_answer_is_422_and_the_task_still_waits(as_: Any, ws_as: Any) -> None:
    alice = as_("alice")
    ws = await ws_as("alice")
    session = await alice.session(provider="followup")
    tasks = f"/api/v1/sessions/{session['id']}/tasks"
    assert_422(await alice.post(tasks, **raw(f'{{"prompt": "do {LONE}"}}')), "/body/prompt")
    task = await alice.task(session["id"])
    waiting = await wait_status(alice, session["id"], task["id"], {"waiting"}, ws)
    ask = waiting["pending_ask"]
    responses = f"{tasks}/{task['id']}/responses"
    r = await alice.post(responses, **raw(f'{{"ask_id": "{ask["id"]}", "approve": true, "text": "x{LONE}"}}'))
    assert_422(r, "/body/text")
    again = (await alice.get(f"{tasks}/{task['id']}")).json
    assert again["status"] == "waiting" and again["pending_ask"] == ask
    r = await alice.post(responses, {"ask_id": ask["id"], "approve": True, "text": "Python"})
    assert r.status == 200, r.body
    assert (await wait_status(alice, session["id"], task["id"], {"completed"}, ws))["status"] == "completed"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
@pytest.mark.gen_test(timeout=15)
async def test_nan_and_infinity_are_422(as_: Any, constant: str) -> None:
    alice = as_("alice")
    session = await alice.session(provider="hang")
    tasks = f"/api/v1/sessions/{session['id']}/tasks"
    r = await alice.post(tasks, **raw(f'{{"prompt": "p", "limits": {{"max_cost_usd": {constant}}}}}'))
    problem = assert_422(r, "/body/limits/max_cost_usd")
    assert "finite" in problem["detail"]
    assert (await alice.get(tasks)).json["items"] == []


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
@pytest.mark.gen_test(timeout=15)
async def test_json_nested_too_deep_is_422(as_: Any, depth: int) -> None:
    doc = '{"metadata": ' + "[" * depth + "]" * depth + "}"
    r = await as_("alice").post("/api/v1/sessions", **raw(doc))
    assert r.status == 422, r.body
    assert "nested" in r.json["detail"] and str(MAX_DEPTH) in r.json["detail"]


@pytest.mark.gen_test(timeout=15)
async def test_nesting_up_to_the_limit_is_only_a_schema_question(as_: Any) -> None:
    doc = '{"metadata": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    r = await as_("alice").post("/api/v1/sessions", **raw(doc))
    assert_422(r, "/body/metadata")  # not a string map: the schema's answer, not a depth error
    assert "nested" not in r.json["detail"]


def cursor_of(n: int) -> str:
    return base64.urlsafe_b64encode(f"n{n}".encode()).decode().rstrip("=")


@pytest.mark.parametrize("n", [2**63, 2**64 + 5, 10**40])
@pytest.mark.gen_test(timeout=15)
async def test_a_cursor_past_int64_is_422(as_: Any, n: int) -> None:
    alice = as_("alice")
    session = await alice.session()
    for path in ("/api/v1/sessions", f"/api/v1/sessions/{session['id']}/tasks"):
        r = await alice.get(f"{path}?cursor={cursor_of(n)}")
        assert_422(r, "/query/cursor")
    r = await alice.get(f"/api/v1/sessions?cursor={cursor_of(INT64_MAX)}")
    assert r.status == 200, r.body


@pytest.mark.parametrize("after", [str(2**63), str(2**64), "9" * 30])
@pytest.mark.gen_test(timeout=15)
async def test_an_event_page_after_past_int64_is_422(as_: Any, after: str) -> None:
    alice = as_("alice")
    session = await alice.session(provider="instant")
    task = await alice.task(session["id"])
    r = await alice.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}/events?after={after}")
    assert_422(r, "/query/after")
    r = await alice.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}/events?after={INT64_MAX}")
    assert r.status == 200 and r.json["items"] == [], r.body


def test_every_integer_parameter_and_ws_after_has_an_int64_maximum() -> None:
    """The store's integers are SQLite's (64-bit signed): the contract says so."""
    spec = Spec()
    for op in spec.operations.values():
        for p in op.parameters:
            if p.schema.get("type") == "integer":
                assert p.schema.get("maximum", INT64_MAX + 1) <= INT64_MAX, (op.operation_id, p.name)
    after = spec.doc["components"]["schemas"]["WsSubscribe"]["properties"]["after"]
    assert after["maximum"] == INT64_MAX


# -- the WebSocket --------------------------------------------------------


async def expect_error(ws: Any, frame: str, code: str) -> dict[str, Any]:
    await ws.send(frame)
    reply = await ws.recv()
    assert reply is not None, "the connection was closed"
    assert reply["event"] == "error" and reply["data"]["code"] == code, reply
    return reply


async def still_open(ws: Any) -> None:
    await ws.send({"op": "ping", "id": "alive"})
    reply = await ws.recv()
    assert reply == {"event": "pong", "id": "alive", "data": {}}, reply


@pytest.mark.parametrize(
    "frame",
    [
        f'{{"op": "ping", "id": "p{LONE}"}}',
        f'{{"op": "subscribe", "id": "s{LONE}"}}',
        f'{{"op": "subscribe", "id": "s", "session_id": "{LONE}"}}',
        f'{{"op": "ping", "id": "p", "x{LONE}": 1}}',
    ],
)
@pytest.mark.gen_test(timeout=15)
async def test_a_lone_surrogate_in_a_frame_is_an_error_frame(ws_as: Any, frame: str) -> None:
    ws = await ws_as("alice")
    reply = await expect_error(ws, frame, "bad-frame")
    assert reply["id"] is None and "surrogate" in reply["data"]["detail"]
    await still_open(ws)


@pytest.mark.gen_test(timeout=15)
async def test_a_lone_surrogate_in_a_ws_answer_leaves_the_ask_pending(as_: Any, ws_as: Any) -> None:
    alice = as_("alice")
    session = await alice.session(provider="followup")
    task = await alice.task(session["id"])
    ask = (await wait_status(alice, session["id"], task["id"], {"waiting"}, await ws_as("alice")))["pending_ask"]
    ws = await ws_as("alice")
    ids = f'"session_id": "{session["id"]}", "task_id": "{task["id"]}", "ask_id": "{ask["id"]}"'
    await expect_error(ws, f'{{"op": "respond", {ids}, "approve": true, "text": "{LONE}"}}', "bad-frame")
    again = (await alice.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
    assert again["status"] == "waiting" and again["pending_ask"] == ask
    await ws.send(f'{{"op": "respond", "id": "r", {ids}, "approve": true, "text": "Go"}}')
    assert (await ws.recv())["event"] == "responded"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.gen_test(timeout=15)
async def test_nan_in_a_frame_is_an_error_frame(ws_as: Any, value: str) -> None:
    ws = await ws_as("alice")
    reply = await expect_error(ws, f'{{"op": "subscribe", "id": "s", "after": {value}}}', "bad-frame")
    assert "finite" in reply["data"]["detail"]
    await still_open(ws)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 30_000])  # 30,000: within the 64 KiB frame limit
@pytest.mark.gen_test(timeout=15)
async def test_a_deeply_nested_frame_is_an_error_frame(ws_as: Any, depth: int) -> None:
    ws = await ws_as("alice")
    frame = '{"op": "ping", "id": "p", "x": ' + "[" * depth + "]" * depth + "}"
    reply = await expect_error(ws, frame, "bad-frame")
    assert "nested" in reply["data"]["detail"]
    await expect_error(ws, "[" * depth + "]" * depth, "bad-frame")
    await still_open(ws)


@pytest.mark.parametrize("after", [2**63, 2**64, 10**30])
@pytest.mark.gen_test(timeout=15)
async def test_a_ws_after_past_int64_is_an_error_frame(ws_as: Any, after: int) -> None:
    ws = await ws_as("alice")
    reply = await expect_error(ws, json.dumps({"op": "subscribe", "id": "s", "after": after}), "bad-frame")
    assert reply["id"] == "s" and "maximum" in reply["data"]["detail"]
    await subscribe_ok(ws, "s2", after=INT64_MAX)
    await still_open(ws)


@pytest.mark.parametrize(
    ("path", "pointer"),
    [
        ("/api/v1/sessions/ses_%ED%A0%80", "/path/session_id"),
        ("/api/v1/sessions/ses_%ED%A0%80/tasks/tsk_%FF", "/path/session_id"),
        ("/api/v1/sessions?cursor=%ED%A0%80", "/query/cursor"),
        ("/api/v1/sessions?cursor=%5Cud800", "/query/cursor"),
    ],
    ids=["path", "two-paths", "query", "query-escape"],
)
@pytest.mark.gen_test(timeout=15)
async def test_a_surrogate_in_a_path_or_query_parameter_is_422(as_: Any, path: str, pointer: str) -> None:
    """A surrogate's UTF-8 bytes (or any invalid UTF-8) in a parameter."""
    r = await as_("alice").get(path)
    assert r.status == 422, r.body
    assert pointer in [e["pointer"] for e in r.json["errors"]], r.json


@pytest.mark.gen_test(timeout=15)
async def test_a_non_ascii_idempotency_key_is_422(as_: Any, base_url: str) -> None:
    """Headers arrive as Latin-1, so no surrogate can be in one; bytes past
    ASCII still never reach the store."""
    reader, writer = await open_raw(base_url)
    writer.write(
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Authorization: Bearer {TOKENS['alice']}\r\n".encode()
        + b"Idempotency-Key: k\xed\xa0\x80\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    status, _, body = parse_head(await read_all(reader, 15))
    writer.close()
    assert status == 422, body
    assert [e["pointer"] for e in json.loads(body)["errors"]] == ["/headers/Idempotency-Key"]
