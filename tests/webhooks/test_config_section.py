"""The ``webhooks`` configuration section: checked at start (and by check-config)."""

from __future__ import annotations

from typing import Any

import pytest

from roo_daemon.config import ConfigError, load_config


def load(**webhooks: Any) -> dict[str, Any]:
    return load_config(None, env={}, overrides={f"webhooks.{k}": v for k, v in webhooks.items()})


def test_the_defaults() -> None:
    section = load()["webhooks"]
    assert section["default"] == [] and section["allowed_hosts"] == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("webhooks", "key", "words"),
    [
        ({"allowed_hosts": ["http://hooks.example.com"]}, "webhooks.allowed_hosts", "neither a network nor a host"),
        (
            {"default": [{"url": "http://127.0.0.1/x", "events": ["*"], "secret_env": "ROO_NOT_SET_ANYWHERE"}]},
            "webhooks.default.0.secret_env",
            "is not set",
        ),
        (
            {"default": [{"url": "http://127.0.0.1/x", "events": ["task.done"], "secret_env": "ROO_WEBHOOK_TEST"}]},
            "webhooks.default.0.events.0",
            "no event named",
        ),
        (
            {"default": [{"url": "http://u:p@127.0.0.1/x", "events": ["*"], "secret_env": "ROO_WEBHOOK_TEST"}]},
            "webhooks.default.0.url",
            "credentials",
        ),
    ],
)
def test_mistakes_are_named_at_start(webhooks: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(**webhooks)
    assert err.value.key == key and words in err.value.problem


def test_a_default_webhook_may_use_any_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_HOOK_KEY", "k")
    hook = {"url": "https://hooks.example.com/roo", "events": ["ask"], "secret_env": "CI_HOOK_KEY"}
    assert load(default=[hook])["webhooks"]["default"] == [hook]
