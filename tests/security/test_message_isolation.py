"""The conversation endpoints follow the task's tenancy and scopes: another
principal's task is a 404 like a task that never existed, reading needs
``read`` and sending needs ``write``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.test_isolation import GHOST_TASK, SESSIONS, alice_waiting_task


@pytest.mark.gen_test(timeout=30)
async def test_messages_of_another_principals_task_are_404(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    session, task, _ = await alice_waiting_task(alice)
    sid, tid = session["id"], task["id"]
    mine = await alice.get(f"{SESSIONS}/{sid}/tasks/{tid}/messages")
    assert mine.status == 200 and mine.json["items"][0]["role"] == "user"
    for method, suffix, body in (("GET", "/messages", None), ("POST", "/messages", {"text": "hi"})):
        r = await bob.request(method, f"{SESSIONS}/{sid}/tasks/{tid}{suffix}", body)
        ghost = await bob.request(method, f"{SESSIONS}/{sid}/tasks/{GHOST_TASK}{suffix}", body)
        assert r.status == 404 and ghost.status == 404
        assert r.json["detail"].replace(tid, GHOST_TASK) == ghost.json["detail"]
    reader, writer = as_("reader"), as_("writer")
    assert (await reader.post(f"{SESSIONS}/{sid}/tasks/{tid}/messages", {"text": "hi"})).status == 403
    assert (await writer.get(f"{SESSIONS}/{sid}/tasks/{tid}/messages")).status == 403
