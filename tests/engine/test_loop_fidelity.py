"""The loop behaving as Roo-Code's Task does (issue #11, items 6-11), through
the daemon with the fake OpenAI server: each test asserts what the model is
sent on its next request, not only the task's end state."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from tests.conftest import Api, make_config, wait_status
from tests.engine.fakes import FakeOpenAI, Turn, call, fake_openai  # noqa: F401
from tests.procs import running, unique_seconds
from tests.tasks.helpers import follow

FINAL = {"completed", "failed", "cancelled", "interrupted"}
DONE = Turn(tool_calls=[call("attempt_completion", result="finished")])


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeOpenAI:
    return request.getfixturevalue("fake_openai")


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path, fake) -> dict[str, Any]:
    """Parametrize indirectly with a dict of ``engine`` settings to override."""
    params = getattr(request, "param", {})
    cfg = make_config(
        tmp_path,
        engine={"max_concurrent_tasks": 1, **params.get("engine", params if "tools" not in params else {})},
        tools=params.get("tools", {}),
    )
    cfg["providers"]["real"] = fake.profile(prices={"input": 50_000.0, "output": 0.0})  # $0.50 a request
    return cfg


async def start(api: Api, prompt: str = "do the work", **session: Any) -> tuple[dict, dict]:
    s = await api.session(provider="real", **session)
    return s, await api.task(s["id"], prompt)


async def until(api: Api, s: dict, t: dict, *statuses: str) -> dict:
    return await wait_status(api, s["id"], t["id"], set(statuses) or FINAL)


async def ended(api: Api, s: dict, t: dict, nth: int) -> dict:
    """The task once it has ended ``nth`` times (a continued task ends again)."""
    count = 0

    def final(frame: dict[str, Any]) -> bool:
        nonlocal count
        count += frame["event"] == "task.status" and frame["data"]["status"] in FINAL
        return count == nth

    await follow(api, t["id"], final)
    return (await api.get(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")).json


async def answer(api: Api, task: dict, approve: bool = True, text: str | None = None) -> None:
    body: dict[str, Any] = {"ask_id": task["pending_ask"]["id"], "approve": approve}
    if text is not None:
        body["text"] = text
    r = await api.post(f"/api/v1/sessions/{task['session_id']}/tasks/{task['id']}/responses", body)
    assert r.status == 200, r.body


def messages(fake: FakeOpenAI, n: int) -> list[dict[str, Any]]:
    """The chat messages of the ``n``-th request the fake received."""
    return fake.requests[n].body["messages"]


def tool_results(fake: FakeOpenAI, n: int) -> list[str]:
    """The tool results the ``n``-th request carried, in order."""
    return [m["content"] for m in messages(fake, n) if m["role"] == "tool"]


def user_texts(fake: FakeOpenAI, n: int) -> list[str]:
    """The text of each user message of the ``n``-th request."""
    out = []
    for m in messages(fake, n):
        if m["role"] != "user":
            continue
        content = m["content"]
        out.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
    return out


# -- item 9: apply_diff applies what matches ------------------------------------

CALC = (
    "def total(items):\n    t = 0\n    for i in items:\n        t += i\n    return t\n\n\n"
    "def greet(name):\n    return name\n"
)


@pytest.mark.gen_test(timeout=30)
async def test_apply_diff_applies_the_matching_blocks_and_reports_the_rest(api: Api, fake: FakeOpenAI) -> None:
    diff = (
        "<<<<<<< SEARCH\n:start_line:2\n-------\n    t = 0\n    for i in items:\n=======\n"
        "    t = 0\n    \n    for i in items:\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n:start_line:9\n-------\n    return name.upper()\n=======\n    return name\n>>>>>>> REPLACE"
    )
    fake.script(Turn(tool_calls=[call("apply_diff", path="calc.py", diff=diff)]), DONE)
    s = await api.session(provider="real", auto_approve={"write": True})
    with open(os.path.join(s["workspace"], "calc.py"), "w") as f:
        f.write(CALC)
    t = await api.task(s["id"], "edit calc.py")
    assert (await until(api, s, t))["status"] == "completed"
    with open(os.path.join(s["workspace"], "calc.py")) as f:
        # The matching block applied; its whitespace-only line kept its four spaces.
        assert f.read() == CALC.replace("    t = 0\n", "    t = 0\n    \n")
    [result] = tool_results(fake, 1)
    assert result.startswith(
        "But unable to apply all diff parts to file: calc.py. Use the read_file tool to check the newest file "
        "version and re-apply diffs.\n"
    )
    assert "Block 2 of 2 (:start_line:9):\nNo sufficiently similar match found at line: 10" in result
    assert "Search Content:\n    return name.upper()" in result


# -- item 8: the tool-repetition detector --------------------------------------

LIST = Turn(tool_calls=[call("list_files", path=".", recursive=False)])


@pytest.mark.gen_test(timeout=30)
async def test_a_fourth_identical_call_is_not_run_and_asks_for_guidance(api: Api, fake: FakeOpenAI) -> None:
    fake.script(LIST, LIST, LIST, LIST, DONE)
    s, t = await start(api, auto_approve={"read_only": True})
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "mistake_limit" and waiting["pending_ask"]["tool"] == "list_files"
    assert waiting["pending_ask"]["message"].startswith(
        "Roo appears to be stuck in a loop, attempting the same action (list_files) repeatedly."
    )
    await answer(api, waiting, text="look in src instead")
    assert (await until(api, s, t))["status"] == "completed"
    results = tool_results(fake, 4)
    assert len(results) == 4 and all(not r.startswith('{"status":"error"') for r in results[:3])
    assert results[3] == (
        '{"status":"error","message":"The tool execution failed","error":"Tool call repetition limit reached for '
        'list_files. Please try a different approach."}'
    )
    assert user_texts(fake, 4)[-2] == "Tool repetition limit reached. User feedback: look in src instead"


@pytest.mark.gen_test(timeout=30)
async def test_a_rejected_repetition_ask_fails_the_task(api: Api, fake: FakeOpenAI) -> None:
    fake.script(LIST, LIST, LIST, LIST)
    s, t = await start(api, auto_approve={"read_only": True})
    await answer(api, await until(api, s, t, "waiting"), approve=False)
    done = await until(api, s, t)
    assert done["status"] == "failed" and done["error"]["code"] == "mistake_limit"


@pytest.mark.parametrize("config", [{"consecutive_mistake_limit": 0}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_a_mistake_limit_of_zero_is_unlimited(config: dict, api: Api, fake: FakeOpenAI) -> None:
    """Roo: 0 means no limit, neither for mistakes nor for repeated calls."""
    fake.script(*[LIST] * 5, *[Turn(text="thinking")] * 4, DONE)
    s, t = await start(api, auto_approve={"read_only": True})
    done = await until(api, s, t, "completed", "waiting", "failed")
    assert done["status"] == "completed", done
    assert len(fake.requests) == 10
    assert not any(r.startswith('{"status":"error"') for r in tool_results(fake, 9))


# -- item 7: turns without a tool call -------------------------------------------

NO_TOOLS_USED = (
    "[ERROR] You did not use a tool in your previous response! Please retry with a tool use.\n\n"
    "# Reminder: Instructions for Tool Use\n\n"
    "Tools are invoked using the platform's native tool calling mechanism. Each tool requires specific parameters "
    "as defined in the tool descriptions. Refer to the tool definitions provided in your system instructions for "
    "the correct parameter structure and usage examples.\n\n"
    "Always ensure you provide all required parameters for the tool you wish to use.\n\n"
    "# Next Steps\n\n"
    "If you have completed the user's task, use the attempt_completion tool.\n"
    "If you require additional information from the user, use the ask_followup_question tool.\n"
    "Otherwise, if you have not completed the task and do not need additional information, then proceed with "
    "the next step of the task.\n"
    "(This is an automated message, so do not respond to it conversationally.)"
)


@pytest.mark.gen_test(timeout=30)
async def test_turns_without_a_tool_get_roos_reminder_and_the_first_is_not_a_mistake(
    api: Api, fake: FakeOpenAI
) -> None:
    fake.script(Turn(text="a"), LIST, Turn(text="b"), Turn(text="c"), Turn(text="d"), Turn(text="e"), DONE)
    s, t = await start(api, auto_approve={"read_only": True})
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "mistake_limit"
    # a (grace), a tool call (resets the grace), b (grace), c, d, e: three mistakes.
    assert len(fake.requests) == 6
    assert user_texts(fake, 1)[-2] == NO_TOOLS_USED
    await answer(api, waiting)
    assert (await until(api, s, t))["status"] == "completed"


@pytest.mark.gen_test(timeout=30)
async def test_an_empty_response_is_retried_and_not_stored(api: Api, fake: FakeOpenAI) -> None:
    fake.script(Turn(usage={"input": 10, "output": 0}), Turn(usage={"input": 10, "output": 0}), DONE)
    s, t = await start(api)
    assert (await until(api, s, t))["status"] == "completed"
    assert len(fake.requests) == 3
    # The same conversation each time: no empty assistant turn, no reminder.
    assert messages(fake, 0) == messages(fake, 1) == messages(fake, 2)


@pytest.mark.gen_test(timeout=30)
async def test_empty_responses_past_the_providers_retries_fail_the_task(api: Api, fake: FakeOpenAI) -> None:
    fake.script(*[Turn()] * 4)  # the profile's max_retries is 3
    s, t = await start(api)
    done = await until(api, s, t)
    assert done["status"] == "failed" and done["error"]["code"] == "empty_response"
    assert done["error"]["message"].startswith("Unexpected API Response: The language model did not provide")
    assert len(fake.requests) == 4


# -- item 6: environment details on every user turn ------------------------------


def details_of(text: str) -> str:
    assert text.startswith("<environment_details>\n") and text.endswith("\n</environment_details>"), text
    return text


@pytest.mark.gen_test(timeout=30)
async def test_every_user_turn_ends_with_environment_details(api: Api, fake: FakeOpenAI) -> None:
    fake.script(
        Turn(tool_calls=[call("update_todo_list", todos="[x] plan | scope\n[-] build\n[ ] ship")]),
        Turn(text="thinking"),
        DONE,
        LIST,
        DONE,
    )
    s = await api.session(provider="real", auto_approve={"read_only": True})
    t = await api.task(s["id"], "plan it")
    assert (await until(api, s, t))["status"] == "completed"

    first = user_texts(fake, 0)[0]
    assert first.startswith("<task>\nplan it\n</task>\n\n<environment_details>\n# Current Time\n")
    assert "\n\n# Current Mode\n<slug>code</slug>\n" in first and "<model>fake-model</model>" in first
    assert "# Current Workspace Directory (" in first
    assert first.endswith(
        "\nYou have not created a todo list yet. Create one with `update_todo_list` if your task is complicated "
        "or involves multiple steps.\n</environment_details>"
    )

    # After the tool result: a block of its own, the todo list as Roo's REMINDERS, no listing.
    after_tool = details_of(user_texts(fake, 1)[-1])
    assert messages(fake, 1)[-2]["role"] == "tool"
    assert "# Current Workspace Directory" not in after_tool
    assert "Current time in ISO 8601 UTC format: " in after_tool and "\nUser time zone: " in after_tool
    assert "\n\n# Current Cost\n$0.50\n\n" in after_tool and "# Current Cost\n$0.00" in first
    assert (
        "====\n\nREMINDERS\n\nBelow is your current list of reminders for this task. Keep them updated as you "
        "progress.\n\n| # | Content | Status |\n|---|---------|--------|\n| 1 | plan \\| scope | Completed |\n"
        "| 2 | build | In Progress |\n| 3 | ship | Pending |\n\n\nIMPORTANT: When task status changes, remember to "
        "call the `update_todo_list` tool to update your progress.\n\n</environment_details>"
    ) in after_tool
    # After the no-tool reminder too.
    texts = user_texts(fake, 2)
    assert texts[-2].startswith("[ERROR] You did not use a tool") and details_of(texts[-1])

    # A continued task's first turn lists the workspace again, as Roo's first request of a run does.
    r = await api.post(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}/messages", {"text": "and list"})
    assert r.status == 202, r.body
    assert (await ended(api, s, t, 2))["status"] == "completed", await ended(api, s, t, 2)
    resumed = details_of(user_texts(fake, 3)[-1])
    assert "# Current Workspace Directory (" in resumed
    assert "# Current Workspace Directory" not in user_texts(fake, 4)[-1]


# -- item 10: execute_command ------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_commands_run_in_the_shell_the_prompt_names_and_take_an_absolute_cwd(api: Api, fake: FakeOpenAI) -> None:
    shell = "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/usr/bin/bash"
    s = await api.session(provider="real", auto_approve={"execute": True, "allowed_commands": ["echo"]})
    os.makedirs(os.path.join(s["workspace"], "sub"))
    fake.script(
        Turn(tool_calls=[call("execute_command", command='echo "shell=$0"', cwd=os.path.join(s["workspace"], "sub"))]),
        Turn(tool_calls=[call("execute_command", command="echo hi", cwd="/etc")]),
        DONE,
    )
    t = await api.task(s["id"], "which shell?")
    assert (await until(api, s, t))["status"] == "completed"
    assert f"Default Shell: {shell}\n" in messages(fake, 0)[0]["content"]
    [ran] = tool_results(fake, 1)
    assert f"within working directory '{os.path.realpath(s['workspace'])}/sub'" in ran and f"shell={shell}\n" in ran
    refused = tool_results(fake, 2)[1]
    assert "Access denied: '/etc' is not inside the workspace." in refused


@pytest.mark.gen_test(timeout=30)
async def test_a_timeout_moves_the_command_to_the_background_until_the_task_ends(api: Api, fake: FakeOpenAI) -> None:
    marker = unique_seconds(60)
    command = f"echo server-up; sleep {marker}"
    fake.script(
        Turn(tool_calls=[call("execute_command", command=command, timeout=1)]),
        Turn(tool_calls=[call("update_todo_list", todos="[-] serve")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"execute": True, "allowed_commands": ["echo", "sleep"]})
    assert (await until(api, s, t))["status"] == "completed"
    workspace = os.path.realpath(s["workspace"])
    [result] = tool_results(fake, 1)
    assert result == (
        f"Command is still running in terminal  from '{workspace}'.\nHere's the output so far:\nserver-up\n\n\n"
        "You will be updated on the terminal status and new output in the future."
    )
    details = user_texts(fake, 1)[-1]
    assert (
        "<environment_details>\n# Actively Running Terminals\n## Terminal 1 (Active)\n"
        f"### Working Directory: `{workspace}`\n### Original command: `{command}`\n\n# Current Time\n"
    ) in details
    assert "# Actively Running Terminals\n## Terminal 1 (Active)" in user_texts(fake, 2)[-1]
    assert running(marker) == []  # the task ended: its background command with it


# -- item 11: read_command_output ------------------------------------------------

LONG = "seq 1 3000; echo Needle-In-Haystack; seq 3001 6000"


def artifact_of(request: Any) -> str:
    """The artifact id the execute_command result named."""
    return re.search(r"Artifact ID: (cmd-\d+\.txt)", json.dumps(request.body["messages"])).group(1)


@pytest.mark.parametrize("config", [{"tools": {"command_output_max_bytes": 1024}}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_a_cut_output_is_kept_as_an_artifact_to_search_and_page(config: dict, api: Api, fake: FakeOpenAI) -> None:
    fake.script(
        Turn(tool_calls=[call("execute_command", command=LONG)]),
        lambda r: Turn(tool_calls=[call("read_command_output", artifact_id=artifact_of(r), search="needle")]),
        lambda r: Turn(tool_calls=[call("read_command_output", artifact_id=artifact_of(r), offset=4, limit=6)]),
        Turn(tool_calls=[call("read_command_output", artifact_id="../../etc/passwd")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"execute": True, "allowed_commands": ["seq", "echo"]})
    assert (await until(api, s, t))["status"] == "completed"
    ran = tool_results(fake, 1)[0]
    workspace = os.path.realpath(s["workspace"])
    artifact = artifact_of(fake.requests[1])
    assert ran.startswith(f"Command executed in '{workspace}'. Exit code: 0\n\nOutput (28.2KB) persisted. ")
    assert f"Artifact ID: {artifact}\n\nPreview:\n1\n2\n" in ran and "\n[..." in ran
    assert ran.endswith("5999\n6000\n\n\nUse read_command_output tool to view full output if needed.")
    found = tool_results(fake, 2)[1]
    assert found == (
        f'[Command Output: {artifact}] (search: "needle")\nTotal matches: 1 | Showing first 1\n\n'
        " 3001 | Needle-In-Haystack"
    )
    page = tool_results(fake, 3)[2]
    header = f"[Command Output: {artifact}]\nTotal size: 28.2KB | Showing bytes 4-10 | TRUNCATED\n"
    assert page == header + "3 | 3\n4 | 4\n5 | 5\n6 | "
    assert tool_results(fake, 4)[3].startswith('Error: Invalid artifact_id format: "../../etc/passwd".')
    # Removed with the task's run.
    assert not os.path.exists(os.path.join(config["store"]["data_dir"], "command-output", t["id"]))
