"""Images to the model (issue #11 item 17): in a follow-up answer, in a
message posted to a task, and from ``read_file`` of an image file when the
profile's model takes images (``supports_images``), as Roo-Code's
ReadFileTool and imageHelpers do. What the provider receives is asserted."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.engine.fakes import Turn, call
from tests.tasks.helpers import follow, named, settle, task_path


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


PNG = png()
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
ANSWER_URL = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ=="


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["vision"] = fake.profile(supports_images=True)
    cfg["providers"]["blind"] = fake.profile(supports_images=False)
    return cfg


def images_after_tool(body: dict[str, Any], kind: str) -> tuple[str, list[str]]:
    """The first tool result's text and the images the model gets with it."""
    messages = body["messages"]
    if kind == "openai":
        for i, m in enumerate(messages):
            if m["role"] == "tool":
                nxt = messages[i + 1] if i + 1 < len(messages) else {}
                parts = nxt.get("content") if nxt.get("role") == "user" else None
                urls = [
                    p["image_url"]["url"] for p in parts or [] if isinstance(p, dict) and p.get("type") == "image_url"
                ]
                return m["content"], urls
    else:
        for m in messages:
            for block in m["content"] if isinstance(m["content"], list) else []:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    if isinstance(content, str):
                        return content, []
                    text = "".join(b["text"] for b in content if b["type"] == "text")
                    urls = [
                        f"data:{b['source']['media_type']};base64,{b['source']['data']}"
                        for b in content
                        if b["type"] == "image"
                    ]
                    return text, urls
    raise AssertionError("no tool result in the request")


def user_images(body: dict[str, Any], kind: str) -> list[str]:
    """Every image in the request's user messages."""
    out = []
    for m in body["messages"]:
        if m["role"] != "user" or not isinstance(m["content"], list):
            continue
        for p in m["content"]:
            if p.get("type") == "image_url":
                out.append(p["image_url"]["url"])
            elif p.get("type") == "image":
                out.append(f"data:{p['source']['media_type']};base64,{p['source']['data']}")
    return out


async def read_picture(api, fake, provider: str, picture: bytes = PNG) -> dict[str, Any]:
    fake.script(
        Turn(tool_calls=[call("read_file", path="pic.png")]),
        Turn(tool_calls=[call("attempt_completion", result="seen")]),
    )
    session = await api.session(provider=provider, auto_approve={"read_only": True})
    Path(session["workspace"], "pic.png").write_bytes(picture)
    task = await api.task(session["id"], "Look at pic.png")
    await settle(api, session["id"], task["id"], "completed")
    return fake.requests[1].body


@pytest.mark.gen_test(timeout=20)
async def test_read_file_gives_a_vision_model_the_image(api, fake):
    text, urls = images_after_tool(await read_picture(api, fake, "vision"), fake.kind)
    assert text.startswith("File: pic.png\nNote: Image file (0 KB)")  # Roo's imageWithSize, rounded KB
    assert urls == [PNG_URL]


@pytest.mark.gen_test(timeout=20)
async def test_read_file_tells_a_blind_model_it_skipped_the_image(api, fake):
    text, urls = images_after_tool(await read_picture(api, fake, "blind"), fake.kind)
    assert text == (
        "File: pic.png\nNote: Image file detected but current model does not support images. Skipping image processing."
    )
    assert urls == []


@pytest.mark.gen_test(timeout=30)
async def test_an_image_over_the_size_limit_is_not_sent(api, fake):
    big = PNG + b"\x00" * (5 * 1024 * 1024)
    text, urls = images_after_tool(await read_picture(api, fake, "vision", big), fake.kind)
    assert text == "File: pic.png\nNote: Image file is too large (5.00 MB). The maximum allowed size is 5 MB."
    assert urls == []


@pytest.mark.gen_test(timeout=20)
async def test_a_followup_answer_carries_its_images_to_the_model(api, fake):
    question = call("ask_followup_question", question="Which logo?", follow_up=[{"text": "the red one"}])
    fake.script(Turn(tool_calls=[question]), Turn(tool_calls=[call("attempt_completion", result="ok")]))
    session = await api.session(provider="vision")
    task = await api.task(session["id"], "Pick a logo")
    frames = await follow(api, task["id"], named("ask"))
    ask_id = frames[-1]["data"]["id"]
    r = await api.post(
        task_path(session["id"], task["id"], "/responses"),
        {"ask_id": ask_id, "approve": True, "text": "This one", "images": [ANSWER_URL]},
    )
    assert r.status == 200, r.body
    await settle(api, session["id"], task["id"], "completed")
    text, urls = images_after_tool(fake.requests[1].body, fake.kind)
    assert "This one" in text and urls == [ANSWER_URL]
    events = [f for f in await follow(api, task["id"], named("task.completed")) if f["event"] == "ask.answered"]
    assert events[0]["data"]["image_count"] == 1 and ANSWER_URL not in str(events[0])


@pytest.mark.gen_test(timeout=20)
async def test_images_answer_only_a_followup_question(api, fake):
    fake.script(Turn(tool_calls=[call("write_to_file", path="a.txt", content="a")]))
    session = await api.session(provider="vision")
    task = await api.task(session["id"], "Write a.txt")
    frames = await follow(api, task["id"], named("ask"))
    r = await api.post(
        task_path(session["id"], task["id"], "/responses"),
        {"ask_id": frames[-1]["data"]["id"], "approve": False, "images": [ANSWER_URL]},
    )
    assert r.status == 422, r.body
    assert r.json["errors"][0]["pointer"] == "/body/images"


@pytest.mark.gen_test(timeout=20)
async def test_a_message_posted_to_a_finished_task_carries_its_images(api, fake):
    fake.script(
        Turn(tool_calls=[call("attempt_completion", result="first")]),
        Turn(tool_calls=[call("attempt_completion", result="second")]),
    )
    session = await api.session(provider="vision")
    task = await api.task(session["id"], "Start")
    await settle(api, session["id"], task["id"], "completed")
    r = await api.post(task_path(session["id"], task["id"], "/messages"), {"text": "And this?", "images": [PNG_URL]})
    assert r.status in (200, 202), r.body
    await fake.wait_requests(2)
    assert user_images(fake.requests[1].body, fake.kind) == [PNG_URL]
