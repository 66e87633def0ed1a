"""The dashboard in a real headless Chromium, every other host unreachable:
it asks for the key and keeps it in sessionStorage, renders a session and
its tasks, streams a running task's text live over /ws (resuming with
``after`` when the connection drops), and an approve click resumes a
waiting task; a checkbox changes the session's auto-approval. No script
error and no Content-Security-Policy violation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import Api, make_config
from tests.dashboard.browser import Browser

pytestmark = pytest.mark.slow

KEY = "dashboard-browser-test-key"
STREAMED = "Streaming this answer slowly, a few characters at a time, as a real model would."
THOUGHT = "First, think about where hello.txt goes."
SLOW_WRITE = {
    "kind": "scripted",
    "chunk_chars": 8,
    "delta_ms": 40,
    "turns": [
        {
            "reasoning": THOUGHT,
            "text": STREAMED,
            "tool_calls": [{"name": "write_to_file", "args": {"path": "hello.txt", "content": "hello\n"}}],
            "usage": {"tokens_in": 321, "tokens_out": 45, "cost_usd": 0.0123},
        },
        {"text": "Written.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "hello.txt is there"}}]},
    ],
}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    keys = [{"name": "viewer", "sha256": hash_key(KEY), "scopes": ["read", "write"]}]
    # One task works at a time: the task under test queues behind a hanging
    # one, so the page is watching before its first word is streamed.
    cfg = make_config(tmp_path, auth={"keys": keys}, engine={"max_concurrent_tasks": 1})
    cfg["providers"]["slow_write"] = SLOW_WRITE
    return cfg


def q(text: str) -> str:
    """A JavaScript string literal."""
    return json.dumps(text)


@pytest.mark.gen_test(timeout=180)
async def test_dashboard_follows_and_steers_a_task(http_server: Any, base_url: str, ctx: Any, tmp_path: Path) -> None:
    api = Api(base_url, KEY)
    session = await api.session(name="dashboard demo")
    blocker = await api.task(session["id"], "hold the only slot", provider="hang")
    task = await api.task(session["id"], "write hello.txt", provider="slow_write")
    assert task["status"] == "queued"

    browser = await Browser.launch(tmp_path / "profile")
    try:
        await browser.goto(f"{base_url}/")
        # The API wants a key: the page asks for it, and keeps it for this tab only.
        await browser.wait("!document.getElementById('login').hidden")
        await browser.eval(
            f"document.getElementById('key').value = {q(KEY)};"
            "document.getElementById('login-form').requestSubmit(); true"
        )
        assert await browser.wait(f"sessionStorage.getItem('roo-daemon-key') === {q(KEY)}")

        # A session renders; clicking it lists its tasks with their status.
        item = f"document.querySelector('[data-session-id={q(session['id'])}]')"
        assert "dashboard demo" in await browser.wait(f"{item} && {item}.textContent")
        await browser.eval(f"{item}.click(); true")
        row = f"document.querySelector('tr[data-task-id={q(task['id'])}]')"
        assert "queued" in await browser.wait(f"{row} && {row}.textContent")
        await browser.eval(f"{row}.click(); true")
        await browser.wait("document.getElementById('task-status')?.textContent === 'queued'")

        # Freed, the task runs: its text streams into the open transcript live.
        r = await api.delete(f"/api/v1/sessions/{session['id']}/tasks/{blocker['id']}")
        assert r.status == 202, r.body
        text = "Array.from(document.querySelectorAll('#transcript .ev-assistant')).map(e => e.textContent).join('')"
        await browser.wait(f"({text}).length > 0")
        assert STREAMED.startswith(await browser.eval(text))
        await browser.wait(f"({text}) === {q(STREAMED)}")
        # The model's thinking streamed first, in a block of its own.
        thought = "Array.from(document.querySelectorAll('#transcript .ev-reasoning')).map(e => e.textContent)"
        assert await browser.eval(thought) == [THOUGHT]

        # It waits for approval: the ask shows its diff and buttons. Meanwhile
        # the daemon drops every WebSocket: the page reconnects and resumes.
        await browser.wait("!document.getElementById('ask').hidden && !document.getElementById('approve').disabled")
        assert "hello.txt" in await browser.eval("document.getElementById('ask-text').textContent")
        assert "+hello" in await browser.eval("document.getElementById('ask-diff').textContent")
        assert "$0.0123" in await browser.eval("document.getElementById('task-meta').textContent")
        for ws in list(ctx.websockets):
            ws.close(1001)
        await browser.wait("document.getElementById('connection').textContent === 'live'")

        # An approve click resumes it; it completes, and the page shows it.
        await browser.eval("document.getElementById('approve').click(); true")
        await browser.wait("document.getElementById('task-status')?.textContent === 'completed'")
        got = (await api.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
        assert got["status"] == "completed" and got["result"] == "hello.txt is there"
        assert (Path(session["workspace"]) / "hello.txt").read_text() == "hello\n"
        await browser.wait("!!document.querySelector('#transcript [data-event=\"task.completed\"]')")
        # Every event once, in order, across the reconnect.
        seqs = await browser.eval(
            "Array.from(document.querySelectorAll('#transcript [data-event]')).map(e => Number(e.dataset.seq))"
        )
        assert seqs == sorted(set(seqs)), seqs
        events = await browser.eval(
            "Array.from(document.querySelectorAll('#transcript [data-event]')).map(e => e.dataset.event)"
        )
        assert events.count("ask.answered") == 1 and events.count("task.completed") == 1, events
        # The diff, from the checkpoints API.
        await browser.eval("document.getElementById('diff-box').open = true; true")
        await browser.wait("document.getElementById('diff').textContent.includes('+hello')")

        # The session's auto-approval, from its checkboxes (a PATCH).
        write = "document.querySelector('#auto-approve input[data-policy=\"write\"]')"
        assert await browser.eval(f"{write}.checked") is False
        await browser.eval(f"{write}.click(); true")
        await browser.wait(f"{write}.checked && !{write}.disabled")
        changed = (await api.get(f"/api/v1/sessions/{session['id']}")).json
        assert changed["auto_approve"]["write"] is True
        assert "write" in await browser.eval("document.getElementById('session-meta').textContent")
        protected = "document.querySelector('#auto-approve input[data-policy=\"write_protected\"]')"
        assert await browser.eval(f"{protected}.checked") is False
        await browser.eval(f"{protected}.click(); true")
        await browser.wait(f"{protected}.checked && !{protected}.disabled")
        changed = (await api.get(f"/api/v1/sessions/{session['id']}")).json
        assert changed["auto_approve"]["write_protected"] is True

        problems = [p for p in browser.problems if "401" not in json.dumps(p)]  # the first, keyless, request
        assert not problems, problems
    finally:
        await browser.close()
