"""What each provider sends: headers (auth from the environment), body,
and the neutral conversation converted to the provider's message format."""

from __future__ import annotations

import pytest

from roo_daemon.engine.providers.anthropic import to_anthropic_messages
from roo_daemon.engine.providers.base import ProviderRequest
from roo_daemon.engine.providers.openai import to_openai_messages
from tests.engine.fakes import Turn
from tests.engine.providers.conftest import TOOLS, collect, make_provider

PNG = "data:image/png;base64,iVBORw0KGgo="

# A conversation with everything the loop produces: a first user message
# with an image, an assistant turn with text and two parallel calls, their
# results (one an error), an assistant turn without a call, the no-tool
# reminder, guidance from the user, and a call with empty text.
CONVERSATION = [
    {"role": "user", "content": "<task>\nFix it\n</task>", "images": [PNG]},
    {
        "role": "assistant",
        "content": "Reading two files.",
        "tool_calls": [
            {"id": "c1", "name": "read_file", "args": {"path": "a.py"}},
            {"id": "c2", "name": "read_file", "args": {"path": "b.py"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "1 | x = 1", "is_error": False},
    {"role": "tool", "tool_call_id": "c2", "name": "read_file", "content": "File not found", "is_error": True},
    {"role": "assistant", "content": "Thinking out loud.", "tool_calls": []},
    {"role": "user", "content": "[ERROR] You did not use a tool"},
    {"role": "user", "content": "<user_message>\ntry harder\n</user_message>"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c3", "name": "attempt_completion", "args": {}}]},
    {"role": "tool", "tool_call_id": "c3", "name": "attempt_completion", "content": "ok", "is_error": False},
]


def test_openai_message_conversion():
    assert to_openai_messages("SYSTEM", CONVERSATION) == [
        {"role": "system", "content": "SYSTEM"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<task>\nFix it\n</task>"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": "Reading two files.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}},
                {"id": "c2", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "b.py"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1 | x = 1"},
        {"role": "tool", "tool_call_id": "c2", "content": "File not found"},
        {"role": "assistant", "content": "Thinking out loud."},
        {"role": "user", "content": "[ERROR] You did not use a tool"},
        {"role": "user", "content": "<user_message>\ntry harder\n</user_message>"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "attempt_completion", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "ok"},
    ]


def test_anthropic_message_conversion_merges_tool_results_and_marks_the_cache():
    eph = {"type": "ephemeral"}
    assert to_anthropic_messages(CONVERSATION) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<task>\nFix it\n</task>"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading two files."},
                {"type": "tool_use", "id": "c1", "name": "read_file", "input": {"path": "a.py"}},
                {"type": "tool_use", "id": "c2", "name": "read_file", "input": {"path": "b.py"}},
            ],
        },
        {  # consecutive tool results: one user turn
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "1 | x = 1"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "File not found", "is_error": True},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Thinking out loud."}]},
        {  # the reminder and the guidance: one user turn; the second-to-last user turn is cached
            "role": "user",
            "content": [
                {"type": "text", "text": "[ERROR] You did not use a tool"},
                {"type": "text", "text": "<user_message>\ntry harder\n</user_message>", "cache_control": eph},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c3", "name": "attempt_completion", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c3", "content": "ok", "cache_control": eph}],
        },
    ]


def test_anthropic_cache_marks_only_the_last_two_user_turns_and_keeps_the_input_intact():
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "a", "tool_calls": []},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "b", "tool_calls": []},
        {"role": "user", "content": "three"},
    ]
    converted = to_anthropic_messages(messages)
    marked = [m["content"][-1]["text"] for m in converted if "cache_control" in m["content"][-1]]
    assert marked == ["two", "three"]
    assert messages[0] == {"role": "user", "content": "one"}  # the neutral history is not modified
    assert to_anthropic_messages(messages[:1])[0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_an_image_given_by_url_stays_a_url():
    converted = to_anthropic_messages([{"role": "user", "content": "look", "images": ["https://x.test/a.png"]}])
    image = converted[0]["content"][1]
    assert (image["type"], image["source"]) == ("image", {"type": "url", "url": "https://x.test/a.png"})


@pytest.mark.gen_test(timeout=10)
async def test_openai_request_headers_and_body(fake_openai):
    fake_openai.script(Turn(text="hi"))
    setup = make_provider(
        fake_openai,
        headers={"HTTP-Referer": "https://roo.test", "X-Title": "roo-daemon"},
        max_tokens=1024,
        temperature=0.2,
    )
    await collect(setup.provider, ProviderRequest("SYS", CONVERSATION[:1], TOOLS))
    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {fake_openai.api_key}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["http-referer"] == "https://roo.test" and request.headers["x-title"] == "roo-daemon"
    body = request.body
    assert body["model"] == "fake-model"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 1024 and body["temperature"] == 0.2
    assert body["messages"] == to_openai_messages("SYS", CONVERSATION[:1])
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "write_to_file",
                "description": "Write a file.",
                "parameters": TOOLS[0]["parameters"],
            },
        }
    ]


@pytest.mark.gen_test(timeout=10)
async def test_openai_optional_fields_are_left_out_and_max_tokens_param_is_configurable(fake_openai):
    fake_openai.script(Turn(text="a"), Turn(text="b"))
    await collect(make_provider(fake_openai).provider, ProviderRequest("S", [{"role": "user", "content": "x"}]))
    await collect(
        make_provider(fake_openai, max_tokens=99, max_tokens_param="max_completion_tokens").provider,
        ProviderRequest("S", [{"role": "user", "content": "x"}]),
    )
    first, second = (r.body for r in fake_openai.requests)
    assert not {"tools", "max_tokens", "temperature"} & set(first)
    assert second["max_completion_tokens"] == 99 and "max_tokens" not in second


@pytest.mark.gen_test(timeout=10)
async def test_no_key_configured_sends_no_authorization(fake_openai):
    fake_openai.require_key = False
    fake_openai.script(Turn(text="a"))
    setup = make_provider(fake_openai, api_key_env=None)
    await collect(setup.provider)
    assert "authorization" not in fake_openai.requests[0].headers


@pytest.mark.gen_test(timeout=10)
async def test_anthropic_request_headers_and_body(fake_anthropic):
    fake_anthropic.script(Turn(text="hi"))
    setup = make_provider(fake_anthropic, headers={"anthropic-beta": "context-1m-2025-08-07"}, temperature=0)
    await collect(setup.provider, ProviderRequest("SYS", CONVERSATION, TOOLS))
    (request,) = fake_anthropic.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == fake_anthropic.api_key
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "context-1m-2025-08-07"
    body = request.body
    assert body["model"] == "fake-model" and body["stream"] is True
    assert body["max_tokens"] == 8192  # the API requires it: the default fills in
    assert body["temperature"] == 0
    assert body["system"] == [{"type": "text", "text": "SYS", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"] == to_anthropic_messages(CONVERSATION)
    assert body["tools"] == [
        {"name": "write_to_file", "description": "Write a file.", "input_schema": TOOLS[0]["parameters"]}
    ]
    # At most 4 cache breakpoints per request: the system prompt and two user turns.
    marks = sum("cache_control" in block for m in body["messages"] for block in m["content"])
    assert marks + 1 <= 4


def test_unknown_roles_are_refused():
    with pytest.raises(ValueError, match="unknown message role 'system'"):
        to_openai_messages("s", [{"role": "system", "content": "x"}])
    with pytest.raises(ValueError, match="unknown message role 'system'"):
        to_anthropic_messages([{"role": "system", "content": "x"}])
