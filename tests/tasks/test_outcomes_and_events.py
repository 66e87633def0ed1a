"""How tasks end (failure, usage totals) and the task event pages."""

from __future__ import annotations

import pytest

from tests.tasks.helpers import all_events, follow, named, settle, task_path


@pytest.mark.gen_test(timeout=20)
async def test_provider_error_fails_the_task(api):
    """A provider that errors: ``failed`` with code ``provider_error`` and a ``task.failed`` event."""
    session = await api.session(provider="broken")
    task = await api.task(session["id"])
    failed = await settle(api, session["id"], task["id"], "failed")
    assert failed["error"] == {"code": "provider_error", "message": "the scripted model is down"}
    assert failed["result"] is None and failed["finished_at"] is not None
    frames = await follow(api, task["id"], named("task.failed"))
    assert frames[-1]["data"] == {"status": "failed", "error": failed["error"]}
    events = await all_events(api, session["id"], task["id"])
    assert events[-1]["event"] == "task.failed"
    statuses = [e["data"] for e in events if e["event"] == "task.status"]
    assert statuses[-1] == {"status": "failed", "previous": "running"}
    # A failed task is finished: no cancel, no answer.
    r = await api.delete(task_path(session["id"], task["id"]))
    assert r.status == 409 and r.json["task_status"] == "failed"


@pytest.mark.gen_test(timeout=20)
async def test_usage_is_summed_and_announced(api):
    """``instant`` reports 10/5 tokens and $0.001: the task totals and a ``usage`` event say so."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["usage"] == {"tokens_in": 10, "tokens_out": 5, "cache_reads": 0, "cache_writes": 0, "cost_usd": 0.001}
    events = await all_events(api, session["id"], task["id"])
    usage = [e["data"] for e in events if e["event"] == "usage"]
    assert len(usage) == 1
    assert usage[0]["total"] == done["usage"]
    assert usage[0]["request"]["tokens_in"] == 10 and usage[0]["request"]["tokens_out"] == 5
    assert usage[0]["request"]["cost_usd"] == pytest.approx(0.001)


@pytest.mark.gen_test(timeout=20)
async def test_usage_accumulates_over_turns(api):
    """The demo's two turns add up: 420+510 in, 48+22 out; one ``usage`` event per request."""
    session = await api.session(auto_approve={"write": True})
    task = await api.task(session["id"])
    done = await settle(api, session["id"], task["id"], "completed")
    assert (done["usage"]["tokens_in"], done["usage"]["tokens_out"]) == (930, 70)
    events = await all_events(api, session["id"], task["id"])
    totals = [e["data"]["total"]["tokens_in"] for e in events if e["event"] == "usage"]
    assert totals == [420, 930]


@pytest.mark.gen_test(timeout=20)
async def test_event_pages_walk_the_log_in_order(api):
    """``?after=&limit=`` pages: seq strictly increasing, ``next_after`` is the
    last seq, ``has_more`` until the end, and the pages add up to the whole log."""
    session = await api.session(auto_approve={"write": True})
    task = await api.task(session["id"])
    await settle(api, session["id"], task["id"], "completed")
    base = task_path(session["id"], task["id"], "/events")
    whole = (await api.get(base + "?limit=1000")).json
    assert whole["has_more"] is False
    everything = whole["items"]
    assert len(everything) > 6
    assert all(e["task_id"] == task["id"] and e["session_id"] == session["id"] for e in everything)

    paged: list[dict] = []
    after = 0
    pages = 0
    while True:
        r = await api.get(base + f"?after={after}&limit=3")
        assert r.status == 200
        page = r.json
        pages += 1
        assert len(page["items"]) <= 3
        if page["items"]:
            assert page["items"][0]["seq"] > after
            assert page["next_after"] == page["items"][-1]["seq"]
        paged += page["items"]
        if not page["has_more"]:
            break
        assert len(page["items"]) == 3
        after = page["next_after"]
    assert paged == everything
    assert pages == -(-len(everything) // 3)
    seqs = [e["seq"] for e in paged]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False))

    # Past the end: no items, next_after stays put.
    last = seqs[-1]
    r = await api.get(base + f"?after={last}")
    assert r.json == {"items": [], "next_after": last, "has_more": False}
    # From the middle.
    mid = seqs[len(seqs) // 2]
    r = await api.get(base + f"?after={mid}&limit=1000")
    assert [e["seq"] for e in r.json["items"]] == [s for s in seqs if s > mid]


@pytest.mark.gen_test(timeout=20)
async def test_event_page_parameters_are_validated(api):
    """``after`` below 0, ``limit`` out of range or not a number: 422 with the query pointer."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    base = task_path(session["id"], task["id"], "/events")
    for query, pointer in (("after=-1", "/query/after"), ("limit=0", "/query/limit"), ("limit=1001", "/query/limit")):
        r = await api.get(f"{base}?{query}")
        assert r.status == 422, query
        assert r.json["errors"][0]["pointer"] == pointer
    r = await api.get(f"{base}?after=abc")
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/query/after"


@pytest.mark.gen_test(timeout=20)
async def test_message_deltas_concatenate_to_the_message(api):
    """Each ``message`` event's text is exactly the ``message.delta`` texts before it."""
    session = await api.session(auto_approve={"write": True})
    task = await api.task(session["id"])
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    messages = 0
    parts: list[str] = []
    for e in events:
        if e["event"] == "message.delta":
            parts.append(e["data"]["text"])
        elif e["event"] == "message":
            assert parts, "a message without deltas"
            assert "".join(parts) == e["data"]["text"]
            assert e["data"]["role"] == "assistant" and e["data"]["provider_kind"] == "scripted"
            parts = []
            messages += 1
    assert parts == []
    assert messages == 2
    first = next(e for e in events if e["event"] == "message")["data"]["text"]
    assert first.startswith("[scripted provider: offline demo, not a real model]")
    # The demo text is longer than one 24-character chunk: really streamed.
    assert len([e for e in events if e["event"] == "message.delta"]) > 3
