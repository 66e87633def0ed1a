"""Creating, reading and listing tasks: defaults, validation, visibility,
pagination and Idempotency-Key."""

from __future__ import annotations

import pytest

from tests.conftest import wait_status
from tests.tasks.helpers import settle, task_path


@pytest.mark.gen_test(timeout=20)
async def test_create_answers_202_with_location_and_session_defaults(api):
    """A new task is 202 ``queued`` with a Location; mode and provider come from the session."""
    session = await api.session(mode="architect", provider="instant")
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "say hi"})
    assert r.status == 202, r.body
    task = r.json
    assert r.headers["Location"] == task_path(session["id"], task["id"])
    assert "Idempotent-Replayed" not in r.headers
    assert task["status"] == "queued"
    assert task["session_id"] == session["id"]
    assert task["prompt"] == "say hi"
    assert (task["mode"], task["provider"], task["provider_kind"]) == ("architect", "instant", "scripted")
    assert task["started_at"] is None and task["finished_at"] is None and task["pending_ask"] is None
    assert task["limits"] == {"max_requests": 100, "max_cost_usd": None}  # the engine defaults

    got = await api.get(r.headers["Location"])
    assert got.status == 200 and got.json["id"] == task["id"]
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "ok" and done["mode"] == "architect"


@pytest.mark.gen_test(timeout=20)
async def test_body_overrides_session_defaults(api):
    """``mode``, ``provider`` and ``limits`` in the body win over the session's."""
    session = await api.session(mode="architect", provider="instant")
    task = await api.task(session["id"], "ask me", mode="ask", provider="followup", limits={"max_requests": 7})
    assert (task["mode"], task["provider"]) == ("ask", "followup")
    assert task["limits"] == {"max_requests": 7, "max_cost_usd": None}
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    assert waiting["pending_ask"]["kind"] == "followup"  # it really ran the followup script


@pytest.mark.gen_test(timeout=20)
async def test_unknown_provider_is_422_and_creates_nothing(api):
    """A provider name with no configured profile is a validation problem."""
    session = await api.session()
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "x", "provider": "nope"})
    assert r.status == 422
    assert r.json["errors"][0]["pointer"] == "/body/provider"
    assert "nope" in r.json["errors"][0]["message"]
    listed = await api.get(f"/api/v1/sessions/{session['id']}/tasks")
    assert listed.json["items"] == []


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
async def test_empty_or_blank_prompt_is_422(api, prompt):
    """The prompt must hold at least one non-space character."""
    session = await api.session()
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": prompt})
    assert r.status == 422
    assert {e["pointer"] for e in r.json["errors"]} == {"/body/prompt"}
    listed = await api.get(f"/api/v1/sessions/{session['id']}/tasks")
    assert listed.json["items"] == []


@pytest.mark.gen_test(timeout=20)
async def test_missing_prompt_and_unknown_field_are_422(api):
    """The body is checked against ``TaskCreate``: prompt required, no extra fields."""
    session = await api.session()
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"mode": "code"})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/prompt"
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "x", "colour": "red"})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/colour"


@pytest.mark.gen_test(timeout=20)
async def test_task_in_unknown_session_is_404(api):
    """Creating in, or listing, a session that does not exist is 404."""
    missing = "ses_" + "0" * 32
    r = await api.post(f"/api/v1/sessions/{missing}/tasks", {"prompt": "x"})
    assert r.status == 404
    r = await api.get(f"/api/v1/sessions/{missing}/tasks")
    assert r.status == 404


@pytest.mark.gen_test(timeout=20)
async def test_get_task_through_another_session_is_404(api):
    """A task is only reachable under its own session, live or finished."""
    a = await api.session(provider="hang")
    b = await api.session()
    task = await api.task(a["id"])
    await wait_status(api, a["id"], task["id"], {"running"})
    for suffix in ("", "/events"):
        r = await api.get(task_path(b["id"], task["id"], suffix))
        assert r.status == 404, suffix
    r = await api.delete(task_path(b["id"], task["id"]))
    assert r.status == 404
    r = await api.get(task_path(a["id"], task["id"]))
    assert r.status == 200 and r.json["status"] == "running"  # the wrong-session DELETE did nothing
    r = await api.get(task_path(a["id"], "tsk_" + "f" * 32))
    assert r.status == 404


@pytest.mark.gen_test(timeout=30)
async def test_list_filters_by_status_and_pages_with_a_cursor(api):
    """``?status=`` keeps only tasks in that status; cursors walk every task once."""
    session = await api.session(provider="instant")
    done = []
    for i in range(3):
        task = await api.task(session["id"], f"quick {i}")
        await settle(api, session["id"], task["id"], "completed")
        done.append(task["id"])
    slow = await api.task(session["id"], "slow", provider="hang")
    await wait_status(api, session["id"], slow["id"], {"running"})
    base = f"/api/v1/sessions/{session['id']}/tasks"

    r = await api.get(base + "?status=completed")
    assert r.status == 200
    assert sorted(t["id"] for t in r.json["items"]) == sorted(done)
    assert all(t["status"] == "completed" for t in r.json["items"])
    assert r.json["next_cursor"] is None
    r = await api.get(base + "?status=running")
    assert [t["id"] for t in r.json["items"]] == [slow["id"]]
    r = await api.get(base + "?status=failed")
    assert r.json == {"items": [], "next_cursor": None}
    r = await api.get(base + "?status=finished")
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/query/status"

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        r = await api.get(base + "?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200
        assert len(r.json["items"]) <= 2
        seen += [t["id"] for t in r.json["items"]]
        pages += 1
        cursor = r.json["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert len(seen) == len(set(seen)) == 4
    assert set(seen) == {*done, slow["id"]}

    r = await api.get(base + "?limit=2&cursor=bm90LWEtY3Vyc29y")
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/query/cursor"


@pytest.mark.gen_test(timeout=20)
async def test_list_is_newest_first(api):
    """The spec promises tasks newest first."""
    session = await api.session(provider="hang")
    ids = [(await api.task(session["id"], f"t{i}"))["id"] for i in range(3)]
    r = await api.get(f"/api/v1/sessions/{session['id']}/tasks")
    assert [t["id"] for t in r.json["items"]] == ids[::-1]
    first = await api.get(f"/api/v1/sessions/{session['id']}/tasks?limit=1")
    assert [t["id"] for t in first.json["items"]] == [ids[2]]
    rest = await api.get(f"/api/v1/sessions/{session['id']}/tasks?limit=5&cursor={first.json['next_cursor']}")
    assert [t["id"] for t in rest.json["items"]] == [ids[1], ids[0]]


@pytest.mark.gen_test(timeout=20)
async def test_idempotency_key_creates_one_task(api):
    """Same key and body: the same task, replayed; same key, other body: 422."""
    session = await api.session(provider="hang")
    base = f"/api/v1/sessions/{session['id']}/tasks"
    headers = {"Idempotency-Key": "task-create-0001"}
    first = await api.post(base, {"prompt": "once"}, headers=headers)
    assert first.status == 202 and "Idempotent-Replayed" not in first.headers
    again = await api.post(base, {"prompt": "once"}, headers=headers)
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == first.headers["Location"]
    other = await api.post(base, {"prompt": "twice"}, headers=headers)
    assert other.status == 422
    assert other.json["errors"][0]["pointer"] == "/headers/Idempotency-Key"
    listed = await api.get(base)
    assert [t["id"] for t in listed.json["items"]] == [first.json["id"]]
    # A different key is a different request.
    fresh = await api.post(base, {"prompt": "once"}, headers={"Idempotency-Key": "task-create-0002"})
    assert fresh.status == 202 and fresh.json["id"] != first.json["id"]
