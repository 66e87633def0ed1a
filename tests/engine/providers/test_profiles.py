"""Provider profiles in the configuration: the schema, the defaults, the
docs/providers.md's examples, and build_providers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from roo_daemon.config import SCHEMA, ConfigError, load_config
from roo_daemon.engine.providers import build_providers
from roo_daemon.engine.providers.anthropic import AnthropicProvider
from roo_daemon.engine.providers.network import DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_REQUEST_TIMEOUT_SECONDS
from roo_daemon.engine.providers.openai import OpenAIProvider
from roo_daemon.engine.providers.retry import RetryPolicy
from roo_daemon.engine.providers.scripted import ScriptedProvider
from roo_daemon.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]


def _load(tmp_path: Path, providers: dict) -> dict:
    path = tmp_path / "roo-daemon.yaml"
    default = next(iter(providers))
    path.write_text(yaml.safe_dump({"engine": {"default_provider": default}, "providers": providers}))
    return load_config(str(path), env={})


def _kind_schema(kind: str) -> dict:
    for rule in SCHEMA["properties"]["providers"]["additionalProperties"]["allOf"]:
        if rule["if"]["properties"]["kind"]["const"] == kind:
            return rule["then"]["properties"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_schema_defaults_are_the_code_defaults(kind):
    props = _kind_schema(kind)
    assert props["request_timeout_seconds"]["default"] == DEFAULT_REQUEST_TIMEOUT_SECONDS
    assert props["idle_timeout_seconds"]["default"] == DEFAULT_IDLE_TIMEOUT_SECONDS
    policy = RetryPolicy()
    assert props["max_retries"]["default"] == policy.max_retries
    assert props["backoff_base_seconds"]["default"] == policy.backoff_base_seconds
    assert props["backoff_max_seconds"]["default"] == policy.backoff_max_seconds


def test_build_providers_makes_each_kind(tmp_path):
    cfg = _load(
        tmp_path,
        {
            "gpt": {
                "kind": "openai",
                "model": "gpt-4.1",
                "api_key_env": "ROO_TEST_NOT_SET_KEY",
                "context_window": 1047576,
            },
            "claude": {"kind": "anthropic", "model": "claude-sonnet-4-5", "prices": {"input": 3, "output": 15}},
            "demo": {"kind": "scripted"},
        },
    )
    metrics = Metrics()
    built = build_providers(cfg["providers"], cfg["_config_dir"], metrics)
    gpt, claude = built["gpt"], built["claude"]
    assert isinstance(gpt, OpenAIProvider) and isinstance(claude, AnthropicProvider)
    assert isinstance(built["demo"], ScriptedProvider)
    assert (gpt.kind, gpt.model, gpt.base_url, gpt.context_window) == (
        "openai",
        "gpt-4.1",
        "https://api.openai.com/v1",
        1047576,
    )
    assert gpt.max_tokens is None and gpt.metrics is metrics
    assert (claude.base_url, claude.max_tokens, claude.context_window) == ("https://api.anthropic.com", 8192, 200_000)
    assert claude.prices is not None and claude.prices.cache_read == 3


def test_reasoning_options_load_and_the_thinking_budget_is_held_under_max_tokens(tmp_path):
    cfg = _load(
        tmp_path,
        {
            "o": {"kind": "openai", "model": "o4-mini", "reasoning_effort": "medium"},
            "c": {"kind": "anthropic", "model": "claude-sonnet-4-5", "thinking_budget_tokens": 32000},
            "d": {
                "kind": "anthropic",
                "model": "claude-sonnet-4-5",
                "max_tokens": 64000,
                "thinking_budget_tokens": 32000,
            },
        },
    )
    built = build_providers(cfg["providers"], cfg["_config_dir"])
    assert built["o"].reasoning_effort == "medium"
    assert built["c"].thinking_budget == 6553  # 80 % of the default 8192, as Roo caps it
    assert built["d"].thinking_budget == 32000


@pytest.mark.parametrize(
    ("profile", "key", "problem"),
    [
        ({"kind": "openai"}, "providers.p", "'model' is a required property"),
        ({"kind": "openai", "model": "m", "api_key": "sk-123"}, "providers.p.api_key", "unknown key"),
        (
            {"kind": "anthropic", "model": "m", "max_tokens_param": "max_tokens"},
            "providers.p.max_tokens_param",
            "unknown key",
        ),
        ({"kind": "openai", "model": "m", "api_key_env": "sk-abc"}, "providers.p.api_key_env", "does not match"),
        ({"kind": "openai", "model": "m", "base_url": "api.openai.com"}, "providers.p.base_url", "does not match"),
        ({"kind": "openai", "model": "m", "max_retries": -1}, "providers.p.max_retries", "less than the minimum"),
        ({"kind": "openai", "model": "m", "prices": {"inptu": 1}}, "providers.p.prices.inptu", "unknown key"),
        ({"kind": "gemini", "model": "m"}, "providers.p.kind", "is not one of"),
        ({"kind": "openai", "model": "m", "reasoning_effort": "max"}, "providers.p.reasoning_effort", "is not one of"),
        (
            {"kind": "openai", "model": "m", "thinking_budget_tokens": 2048},
            "providers.p.thinking_budget_tokens",
            "unknown key",
        ),
        (
            {"kind": "anthropic", "model": "m", "thinking_budget_tokens": 100},
            "providers.p.thinking_budget_tokens",
            "less than",
        ),
        ({"kind": "anthropic", "model": "m", "reasoning_effort": "low"}, "providers.p.reasoning_effort", "unknown key"),
        ({"kind": "openai", "model": "m", "prompt_caching": "always"}, "providers.p.prompt_caching", "is not one of"),
        ({"kind": "anthropic", "model": "m", "prompt_caching": "auto"}, "providers.p.prompt_caching", "unknown key"),
    ],
)
def test_bad_profiles_are_configuration_errors(tmp_path, profile, key, problem):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"p": profile})
    assert err.value.key == key
    assert problem in err.value.problem


def test_a_missing_key_variable_is_a_warning_at_start_not_a_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("ROO_TEST_UNSET_KEY", raising=False)
    cfg = _load(tmp_path, {"gpt": {"kind": "openai", "model": "m", "api_key_env": "ROO_TEST_UNSET_KEY"}})
    build_providers(cfg["providers"], cfg["_config_dir"])
    assert "ROO_TEST_UNSET_KEY (api_key_env) is not set" in caplog.text


def _readme_provider_examples() -> list[dict]:
    section = (ROOT / "docs" / "providers.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    return [yaml.safe_load(b) for b in blocks]


def test_readme_provider_examples_are_valid_configs(tmp_path):
    examples = _readme_provider_examples()
    kinds = set()
    for example in examples:
        cfg = _load(tmp_path, example["providers"])
        built = build_providers(cfg["providers"], cfg["_config_dir"])
        kinds |= {p.kind for p in built.values()}
    assert kinds == {"openai", "anthropic"}
    urls = {p["base_url"] for e in examples for p in e["providers"].values() if "base_url" in p}
    assert {"https://openrouter.ai/api/v1", "http://localhost:11434/v1"} <= urls
