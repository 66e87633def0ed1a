"""Lone UTF-16 surrogates in model output. JSON lets a provider stream
``"\\ud800"``, which decodes to a str that is not Unicode text: no UTF-8
encoder, SQLite or client can take it. Each is replaced by U+FFFD at the
provider's edge (text, tool arguments, reasoning), as a JavaScript client
such as Roo-Code ends up writing it; a pair split across two escapes in one
string stays the character it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import make_config
from tests.engine.fakes import Turn, call
from tests.tasks.helpers import all_events, settle


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["real"] = fake.profile()
    cfg["providers"]["odd"] = {
        "kind": "scripted",
        "turns": [{"text": "a\ud800b", "tool_calls": [{"name": "attempt_completion", "args": {"result": "r\udfff"}}]}],
    }
    return cfg


@pytest.mark.gen_test(timeout=20)
async def test_lone_surrogates_from_the_model_are_replaced_and_the_task_completes(api, fake):
    write = call("write_to_file", path="odd\udc80.txt", content="hi \ud800 there \U0001f600\n")
    fake.script(
        Turn(text="Writing \ud83d it.", tool_calls=[write], piece_chars=40),
        Turn(tool_calls=[call("attempt_completion", result="done \udfff")]),
    )
    session = await api.session(provider="real", auto_approve={"write": True})
    task = await api.task(session["id"], "Write it")
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "done \ufffd"
    with open(f"{session['workspace']}/odd\ufffd.txt", encoding="utf-8") as f:
        assert f.read() == "hi \ufffd there \U0001f600\n"
    events = await all_events(api, session["id"], task["id"])
    messages = [e["data"]["text"] for e in events if e["event"] == "message"]
    assert messages == ["Writing \ufffd it."]
    # What went back to the model is the replaced text, as valid JSON in UTF-8.
    second = fake.requests[1].body
    assert "Writing \ufffd it." in str(second) and "\ud83d" not in str(second)
    assert sent_args(second) == {"path": "odd\ufffd.txt", "content": "hi \ufffd there \U0001f600\n"}


def sent_args(body: dict[str, Any]) -> dict[str, Any]:
    """The arguments of the first tool call the request carries back (either dialect)."""
    for message in body["messages"]:
        if message["role"] != "assistant":
            continue
        if message.get("tool_calls"):  # openai
            return json.loads(message["tool_calls"][0]["function"]["arguments"])
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] == "tool_use":  # anthropic
                return block["input"]
    raise AssertionError("no tool call in the request")


def test_wire_json_replaces_only_lone_surrogates() -> None:
    from roo_daemon.engine.providers import wire_json

    assert wire_json.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert wire_json.loads('{"\\udc00k": ["a\\ud800", 1, null]}') == {"\ufffdk": ["a\ufffd", 1, None]}
    assert wire_json.loads('"\\\\ud800"') == "\\ud800"  # an escaped backslash: plain ASCII text


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_a_scripted_turn_is_replaced_the_same_way(api, fake):
    # A script's YAML can spell "\ud800" too; it is model output like any other.
    session = await api.session(provider="odd")
    task = await api.task(session["id"], "Go")
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "r\ufffd"
    events = await all_events(api, session["id"], task["id"])
    assert [e["data"]["text"] for e in events if e["event"] == "message"] == ["a\ufffdb"]
