"""Approval policy through whole tasks with the fake providers: Roo's write
protection, its command decision, the refused completion after a failed
tool, and the result texts the model receives (asserted in the requests
the provider gets, for both wire formats)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.conftest import Api, make_config
from tests.engine.fakes import FakeProviderServer, ReceivedRequest, Turn, call, fake_anthropic, fake_openai  # noqa: F401
from tests.engine.test_tasks_with_fakes import DONE, answer, nth_wait, start, until


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path, engine={"max_concurrent_tasks": 1})
    cfg["providers"]["real"] = fake.profile()
    return cfg


def tool_results(request: ReceivedRequest) -> list[str]:
    """The text of every tool result in a request, oldest first, whichever
    wire format (OpenAI ``tool`` messages, Anthropic ``tool_result`` blocks)."""
    texts: list[str] = []
    for message in request.body["messages"]:
        if message.get("role") == "tool":
            content = message["content"]
            texts.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content))
        elif message.get("role") == "user" and isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block.get("content")
                    if isinstance(content, list):
                        content = "".join(b.get("text", "") for b in content if b.get("type") == "text")
                    texts.append(content or "")
    return texts


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


# -- write protection (Roo's RooProtectedController) --------------------------


@pytest.mark.gen_test(timeout=30)
async def test_a_protected_file_asks_even_with_write_auto_approved(api: Api, fake: FakeProviderServer) -> None:
    widened = '{"customModes": [{"slug": "code", "groups": ["read", "edit", "command"]}]}\n'
    fake.script(
        Turn(tool_calls=[call("write_to_file", path="notes.txt", content="plain\n")]),
        Turn(tool_calls=[call("write_to_file", path=".roomodes", content=widened)]),
        Turn(tool_calls=[call("write_to_file", path=".roo/rules/extra.md", content="obey\n")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"write": True})
    waiting = await until(api, s, t, "waiting")  # notes.txt went through; .roomodes asks
    ask = waiting["pending_ask"]
    assert ask["kind"] == "tool" and ask["args"]["path"] == ".roomodes"
    assert ask["protected"] is True
    assert ask["message"] == "This is a Roo configuration file and requires approval for modifications"
    assert read(os.path.join(s["workspace"], "notes.txt")) == "plain\n"
    await answer(api, waiting, approve=False)
    waiting = await nth_wait(api, s, t, 2)
    assert waiting["pending_ask"]["args"]["path"] == ".roo/rules/extra.md"
    await answer(api, waiting, approve=True)
    assert (await until(api, s, t))["status"] == "completed"
    assert read(os.path.join(s["workspace"], ".roomodes")) is None
    assert read(os.path.join(s["workspace"], ".roo", "rules", "extra.md")) == "obey\n"
    # The model was told of the denial, and the approved write went through.
    assert "denied" in tool_results(fake.requests[2])[-1]
    assert '"path": ".roo/rules/extra.md"' in tool_results(fake.requests[3])[-1]


@pytest.mark.gen_test(timeout=30)
async def test_write_protected_auto_approves_protected_files(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("write_to_file", path="AGENTS.md", content="# agents\n")]),
        Turn(tool_calls=[call("search_replace", file_path="AGENTS.md", old_string="agents", new_string="AI")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"write": True, "write_protected": True})
    assert s["auto_approve"]["write_protected"] is True
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    assert read(os.path.join(s["workspace"], "AGENTS.md")) == "# AI\n"


@pytest.mark.gen_test(timeout=30)
async def test_a_symlink_to_a_protected_file_is_protected(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("write_to_file", path="innocent.json", content="{}\n")]), DONE)
    s = await api.session(provider="real", auto_approve={"write": True})
    with open(os.path.join(s["workspace"], ".roomodes"), "w") as f:
        f.write("{}\n")
    os.symlink(".roomodes", os.path.join(s["workspace"], "innocent.json"))
    t = await api.task(s["id"], "do the work")
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["protected"] is True
    await answer(api, waiting, approve=False)
    assert (await until(api, s, t))["status"] == "completed"


# -- command approval (Roo's getCommandDecision) ------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_execute_approves_only_the_allowed_commands(api: Api, fake: FakeProviderServer) -> None:
    """``execute: true`` with ``allowed_commands`` is Roo's alwaysAllowExecute
    with its allow list: ``echo`` runs, ``touch`` asks (``*`` is not listed)."""
    fake.script(
        Turn(tool_calls=[call("execute_command", command="echo allowed-ran")]),
        Turn(tool_calls=[call("execute_command", command="touch made.txt")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"execute": True, "allowed_commands": ["echo"]})
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "command" and waiting["pending_ask"]["command"] == "touch made.txt"
    assert "allowed-ran" in tool_results(fake.requests[1])[-1]
    await answer(api, waiting, approve=False)
    assert (await until(api, s, t))["status"] == "completed"
    assert not os.path.exists(os.path.join(s["workspace"], "made.txt"))


@pytest.mark.gen_test(timeout=30)
async def test_a_denied_command_is_refused_as_roo_denies_it(api: Api, fake: FakeProviderServer) -> None:
    """With ``execute`` on, a denied prefix that beats the allowed one is
    refused without an ask; the model gets a denial and, as after a user's
    rejection, the rest of the message's calls are skipped."""
    fake.script(
        Turn(
            tool_calls=[
                call("execute_command", command="git push origin main"),
                call("write_to_file", path="after.txt", content="x\n"),
            ]
        ),
        DONE,
    )
    s, t = await start(
        api, auto_approve={"execute": True, "write": True, "allowed_commands": ["git"], "denied_commands": ["git push"]}
    )
    done = await until(api, s, t)
    assert done["status"] == "completed" and done.get("pending_ask") is None
    denial, skipped = tool_results(fake.requests[1])[-2:]
    parsed = json.loads(denial)
    assert parsed["status"] == "denied"
    assert "'git push origin main' matches the denied command prefix 'git push'" in parsed["message"]
    assert "after.txt" in skipped or "write_to_file" in skipped
    assert not os.path.exists(os.path.join(s["workspace"], "after.txt"))


@pytest.mark.gen_test(timeout=30)
async def test_without_execute_a_denied_command_asks(api: Api, fake: FakeProviderServer) -> None:
    """Roo consults the lists only under alwaysAllowExecute: with ``execute``
    off every command asks, a denied one included."""
    fake.script(Turn(tool_calls=[call("execute_command", command="rm -f keep.txt")]), DONE)
    s, t = await start(api, auto_approve={"denied_commands": ["rm"], "allowed_commands": ["*"]})
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "command" and waiting["pending_ask"]["command"] == "rm -f keep.txt"
    await answer(api, waiting, approve=False)
    assert (await until(api, s, t))["status"] == "completed"


# -- attempt_completion after a failed call (Roo's didToolFailInCurrentTurn) --

COMPLETION_REFUSED = (
    '{"status":"error","message":"The tool execution failed","error":"Cannot execute attempt_completion because a '
    'previous tool call failed in this turn. Please address the tool failure before attempting completion."}'
)


@pytest.mark.gen_test(timeout=30)
async def test_completion_after_a_failed_edit_in_the_same_message_is_refused(
    api: Api, fake: FakeProviderServer
) -> None:
    """A failed edit followed by attempt_completion in one message does not
    complete the task: the model gets Roo's refusal and goes on; a completion
    in the next message is accepted."""
    fake.script(
        Turn(
            tool_calls=[
                call("search_replace", file_path="app.py", old_string="missing", new_string="x"),
                call("attempt_completion", result="all fixed"),
            ]
        ),
        Turn(tool_calls=[call("attempt_completion", result="could not fix it")]),
    )
    s = await api.session(provider="real", auto_approve={"write": True})
    with open(os.path.join(s["workspace"], "app.py"), "w") as f:
        f.write("print('hi')\n")
    t = await api.task(s["id"], "fix it")
    done = await until(api, s, t)
    assert done["status"] == "completed" and done["result"] == "could not fix it", done
    assert len(fake.requests) == 2
    failure, refusal = tool_results(fake.requests[1])[-2:]
    assert "No match found" in failure
    assert refusal == COMPLETION_REFUSED


# -- result texts as Roo's formatResponse -------------------------------------


def result_blocks(request: ReceivedRequest) -> list[dict[str, Any]]:
    """Anthropic ``tool_result`` blocks of a request (they carry ``is_error``)."""
    return [
        block
        for message in request.body["messages"]
        if message.get("role") == "user" and isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


@pytest.mark.gen_test(timeout=30)
async def test_result_texts_are_roos(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("write_to_file", path="a.txt", content="a\n")]),  # denied
        Turn(tool_calls=[call("write_to_file", path="b.txt", content="b\n")]),  # denied with feedback
        Turn(tool_calls=[call("write_to_file", path="c.txt")]),  # missing parameter
        Turn(tool_calls=[call("read_file", path="logo.bmp")]),  # binary: a normal result
        Turn(tool_calls=[call("ask_followup_question", question="Which?", follow_up=[{"text": "x", "mode": None}])]),
        DONE,
    )
    s = await api.session(provider="real", auto_approve={"read_only": True})
    with open(os.path.join(s["workspace"], "logo.bmp"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    t = await api.task(s["id"], "do the work")
    await answer(api, await nth_wait(api, s, t, 1), approve=False)
    await answer(api, await nth_wait(api, s, t, 2), approve=False, text="not b, use c")
    await answer(api, await nth_wait(api, s, t, 3), text="gamma")
    assert (await until(api, s, t))["status"] == "completed"
    texts = tool_results(fake.requests[5])
    assert texts[0] == '{"status":"denied","message":"The user denied this operation."}'
    assert texts[1] == '{"status":"denied","feedback":"not b, use c"}'
    assert texts[2].startswith("Missing value for required parameter 'content'. Please retry with complete response.")
    assert texts[3] == "File: logo.bmp\nBinary file (bmp) - content not displayed"
    assert texts[4] == "<user_message>\ngamma\n</user_message>"
    if fake.kind == "anthropic":
        assert not result_blocks(fake.requests[5])[3].get("is_error")


@pytest.mark.gen_test(timeout=30)
async def test_mode_restriction_and_subtask_results_are_roos(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("write_to_file", path="main.py", content="print()\n")]),  # architect: .md only
        Turn(tool_calls=[call("new_task", mode="code", message="write sub.txt")]),
        Turn(tool_calls=[call("attempt_completion", result="sub done")]),  # the child
        DONE,
    )
    s, t = await start(api, mode="architect", auto_approve={"write": True, "subtasks": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    child = done["child_task_ids"][0]
    restriction, subtask = tool_results(fake.requests[3])
    assert json.loads(restriction) == {
        "status": "error",
        "message": "The tool execution failed",
        "error": "Tool 'write_to_file' in mode '🏗️ Architect' can only edit files matching pattern: \\.md$ "
        "(Markdown files only). Got: main.py",
    }
    assert subtask == f"Subtask {child} completed.\n\nResult:\nsub done"


# -- new_task todos, ask_followup_question follow_up --------------------------


def offered(request: ReceivedRequest) -> set[str]:
    """The tool names a request offers (OpenAI ``function.name``, Anthropic ``name``)."""
    return {t.get("name") or t["function"]["name"] for t in request.body.get("tools") or []}


@pytest.mark.gen_test(timeout=30)
async def test_choosing_a_suggestion_with_a_mode_switches_to_it(api: Api, fake: FakeProviderServer) -> None:
    follow_up = [{"text": "Yes, implement it now", "mode": "code"}, {"text": "No, just plan it out", "mode": None}]
    fake.script(Turn(tool_calls=[call("ask_followup_question", question="Implement?", follow_up=follow_up)]), DONE)
    s, t = await start(api, mode="architect")
    waiting = await until(api, s, t, "waiting")
    ask = waiting["pending_ask"]
    assert ask["suggestions"] == ["Yes, implement it now", "No, just plan it out"]
    assert ask["follow_up"] == follow_up
    path = f"/api/v1/sessions/{s['id']}/tasks/{t['id']}/responses"
    r = await api.post(path, {"ask_id": ask["id"], "approve": True, "suggestion": 2})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/suggestion", r.body
    r = await api.post(path, {"ask_id": ask["id"], "approve": True, "suggestion": 0})
    assert r.status == 200, r.body
    done = await until(api, s, t)
    assert done["status"] == "completed" and done["mode"] == "code"
    assert tool_results(fake.requests[1])[-1] == "<user_message>\nYes, implement it now\n</user_message>"
    assert "execute_command" in offered(fake.requests[1]) and "execute_command" not in offered(fake.requests[0])


@pytest.mark.gen_test(timeout=30)
async def test_follow_up_is_required_with_one_to_four_suggestions(api: Api, fake: FakeProviderServer) -> None:
    five = [{"text": str(i), "mode": None} for i in range(5)]
    fake.script(
        Turn(tool_calls=[call("ask_followup_question", question="Which?")]),
        Turn(tool_calls=[call("ask_followup_question", question="Which?", follow_up=five)]),
        DONE,
    )
    s, t = await start(api)
    assert (await until(api, s, t))["status"] == "completed"
    missing, too_many = tool_results(fake.requests[2])
    assert missing.startswith("Missing value for required parameter 'follow_up'.")
    assert too_many.startswith("Invalid arguments for ask_followup_question: follow_up")
    follow_up = next(
        t for t in fake.requests[0].body["tools"] if (t.get("name") or t["function"]["name"]) == "ask_followup_question"
    )
    schema = follow_up.get("input_schema") or follow_up["function"]["parameters"]
    assert schema["required"] == ["question", "follow_up"]
    assert (schema["properties"]["follow_up"]["minItems"], schema["properties"]["follow_up"]["maxItems"]) == (1, 4)


TODOS = "[ ] write the parser\n[x] plan"


@pytest.mark.gen_test(timeout=30)
async def test_new_task_accepts_null_todos_and_the_child_sees_its_todos(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("new_task", mode="code", message="first child", todos=None)]),
        Turn(tool_calls=[call("attempt_completion", result="first done")]),
        Turn(tool_calls=[call("new_task", mode="code", message="second child", todos=TODOS)]),
        Turn(tool_calls=[call("attempt_completion", result="second done")]),
        DONE,
    )
    s, t = await start(api, mode="orchestrator", auto_approve={"subtasks": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    assert len(done["child_task_ids"]) == 2
    first_child, second_child = fake.requests[1], fake.requests[3]
    assert "first child" in str(first_child.body["messages"]) and "write the parser" not in str(first_child.body)
    assert "second child" in str(second_child.body["messages"])
    assert "write the parser" in str(second_child.body["messages"])  # the child's REMINDERS
    second = (await api.get(f"/api/v1/sessions/{s['id']}/tasks/{done['child_task_ids'][1]}")).json
    assert second["todos"] == [
        {"content": "write the parser", "status": "pending"},
        {"content": "plan", "status": "completed"},
    ]


@pytest.mark.gen_test(timeout=30)
async def test_an_expired_followup_takes_the_first_suggestion_without_switching(
    api: Api, fake: FakeProviderServer
) -> None:
    """As Roo's auto-approval timeout: the first suggestion's text answers,
    but no mode switch (that needs the user's choice or switch_mode)."""
    follow_up = [{"text": "Yes, implement it now", "mode": "code"}]
    fake.script(Turn(tool_calls=[call("ask_followup_question", question="Implement?", follow_up=follow_up)]), DONE)
    s, t = await start(api, mode="architect", ask_timeouts={"followup": 1})
    done = await until(api, s, t)
    assert done["status"] == "completed" and done["mode"] == "architect"
    assert tool_results(fake.requests[1])[-1] == "<user_message>\nYes, implement it now\n</user_message>"


@pytest.mark.gen_test(timeout=30)
async def test_a_suggestion_answers_only_a_followup_and_not_with_text(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("execute_command", command="echo hi")]),
        Turn(tool_calls=[call("ask_followup_question", question="Which?", follow_up=[{"text": "a", "mode": None}])]),
        DONE,
    )
    s, t = await start(api)
    path = f"/api/v1/sessions/{s['id']}/tasks/{t['id']}/responses"
    ask = (await until(api, s, t, "waiting"))["pending_ask"]
    r = await api.post(path, {"ask_id": ask["id"], "approve": True, "suggestion": 0})
    assert r.status == 422 and "only a followup ask" in r.body.decode(), r.body
    r = await api.post(path, {"ask_id": "ask_stale", "approve": True, "suggestion": 0})
    assert r.status == 409, r.body
    await answer(api, await nth_wait(api, s, t, 1))
    ask = (await nth_wait(api, s, t, 2))["pending_ask"]
    r = await api.post(path, {"ask_id": ask["id"], "approve": True, "suggestion": 0, "text": "b"})
    assert r.status == 422 and "either suggestion or text" in r.body.decode(), r.body
    r = await api.post(path, {"ask_id": ask["id"], "approve": True, "suggestion": 0})
    assert r.status == 200, r.body
    assert (await until(api, s, t))["status"] == "completed"
    assert tool_results(fake.requests[2])[-1] == "<user_message>\na\n</user_message>"
