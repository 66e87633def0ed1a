"""A provider key never reaches an error in any shape a server may echo it
(issue #9 item 14): whole, truncated, or base64-encoded (standard and
URL-safe, alone or inside a longer value such as a Basic credential).

The check is independent of the redaction code: no 8 consecutive characters
of the text are 8 consecutive characters of the key, and no 8 consecutive
characters decode (either base64 alphabet) to 6 consecutive bytes of it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import pytest

from roo_daemon.engine.providers.base import ProviderError
from roo_daemon.engine.providers.network import _redact
from tests.conftest import make_config
from tests.engine.fakes import HttpError
from tests.engine.providers.conftest import collect, make_provider
from tests.tasks.helpers import all_events, settle

KEY = "sk-live-0123456789-THE-KEY-MUST-NOT-LEAK-abcdef"


def shapes(key: str) -> dict[str, str]:
    raw = key.encode()
    return {
        "whole": key,
        "head": key[:12],
        "middle": key[9:27],
        "tail": key[-10:],
        "base64": base64.b64encode(raw).decode(),
        "base64 of user:key": base64.b64encode(b"user:" + raw).decode(),
        "base64 shifted by two": base64.b64encode(b"ab" + raw + b"z").decode(),
        "urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "urlsafe shifted by one": base64.urlsafe_b64encode(b"\xff" + raw).decode(),
        "truncated base64": base64.b64encode(raw).decode()[4:24],
    }


def leaks(text: str, key: str) -> list[str]:
    """The 8-character windows of ``text`` that give away part of ``key``."""
    raw = key.encode()
    found = []
    for i in range(len(text) - 7):
        window = text[i : i + 8]
        if window in key:
            found.append(window)
            continue
        for altchars in (b"+/", b"-_"):
            try:
                decoded = base64.b64decode(window.encode(), altchars=altchars, validate=True)
            except (binascii.Error, ValueError):
                continue
            if decoded in raw:
                found.append(window)
    return found


def test_the_leak_check_sees_every_shape():
    for name, shape in shapes(KEY).items():
        assert leaks(f"error: {shape}.", KEY), name


@pytest.mark.parametrize("name", list(shapes(KEY)))
def test_redact_scrubs_every_shape(name):
    shape = shapes(KEY)[name]
    text = _redact(f"HTTP 401: invalid key {shape} (check your settings)", KEY)
    assert not leaks(text, KEY), (name, text)
    assert text.startswith("HTTP 401: invalid key ") and text.endswith(" (check your settings)")
    assert "[redacted]" in text


def test_short_runs_and_other_text_stay():
    text = "HTTP 429: rate limited for sk-live (org 0123456), retry later"
    assert _redact(text, KEY) == text


@pytest.fixture
def keyed(fake, monkeypatch):
    monkeypatch.setenv(fake.api_key_env, KEY)
    fake.api_key = KEY
    return fake


def echo_all(key: str) -> str:
    return "; ".join(f"{name}: {shape}" for name, shape in shapes(key).items())


@pytest.mark.gen_test(timeout=10)
async def test_provider_errors_and_retry_logs_carry_no_shape_of_the_key(keyed, caplog):
    keyed.script(HttpError(500, echo_all(KEY)), HttpError(401, echo_all(KEY)))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as err:
        await collect(make_provider(keyed).provider)
    assert "HTTP 401" in str(err.value) and "[redacted]" in str(err.value)
    assert not leaks(str(err.value), KEY), str(err.value)
    assert "retrying" in caplog.text and not leaks(caplog.text, KEY)


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["real"] = fake.profile()
    return cfg


@pytest.mark.gen_test(timeout=20)
async def test_task_failed_events_carry_no_shape_of_the_key(api, keyed):
    keyed.script(HttpError(401, echo_all(KEY)))
    session = await api.session(provider="real")
    task = await api.task(session["id"])
    failed = await settle(api, session["id"], task["id"], "failed")
    assert failed["error"]["code"] == "provider_error" and "HTTP 401" in failed["error"]["message"]
    events = await all_events(api, session["id"], task["id"])
    assert [e for e in events if e["event"] == "task.failed"]
    everything = str(failed) + str(events)
    assert not leaks(everything, KEY), everything
