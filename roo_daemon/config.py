"""Configuration: a YAML file, then ``ROO_DAEMON_<SECTION>_<KEY>`` environment
overrides, then command-line flags, checked against ``config_schema.yaml``.

Every problem becomes a :class:`ConfigError` naming the key, so the CLI can
exit with status 2 and one readable line instead of a traceback.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ENV_PREFIX = "ROO_DAEMON_"
Config = dict[str, Any]


class ConfigError(Exception):
    """A configuration problem: ``key`` is the dotted path, ``problem`` says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def _schema() -> dict:
    text = resources.files("roo_daemon").joinpath("config_schema.yaml").read_text()
    return yaml.safe_load(text)


SCHEMA = _schema()
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration. ``overrides`` maps dotted keys
    (``server.port``) to values from the command line."""
    raw: dict = {}
    if path:
        raw = _read_yaml(path)
    env = os.environ if env is None else env
    for dotted, value in _env_overrides(env):
        _set_dotted(raw, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    cfg = _fill_defaults(SCHEMA, copy.deepcopy(raw))
    _validate(cfg)
    cfg["_config_dir"] = str(Path(path).resolve().parent) if path else os.getcwd()
    _check_semantics(cfg)
    return cfg


def _read_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError("", f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"config file {path} must hold a mapping of sections")
    return data


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, Any]]:
    """``ROO_DAEMON_ENGINE_MAX_CONCURRENT_TASKS=8`` → ``("engine.max_concurrent_tasks", 8)``.
    The section is the first word; the value is parsed as YAML so numbers and
    booleans keep their type. Unknown sections or keys are errors, like in the file."""
    out = []
    sections = SCHEMA["properties"]
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or section == "providers":
            raise ConfigError(name, "not a known configuration section (providers cannot be set from the environment)")
        if key not in sections[section].get("properties", {}):
            raise ConfigError(name, f"{section} has no key {key!r}")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        out.append((f"{section}.{key}", parsed))
    return out


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    section, key = dotted.split(".", 1)
    target = raw.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(section, "must be a mapping")
    target[key] = value


def _fill_defaults(schema: dict, value: Any) -> Any:
    if value is None and "default" in schema:
        value = copy.deepcopy(schema["default"])
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value or "default" in sub:
                value[key] = _fill_defaults(sub, value.get(key))
    return value


def _validate(cfg: dict) -> None:
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(cfg))
    if error is None:
        return
    key = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(".".join(filter(None, [key, extra[0] if extra else ""])), "unknown key")
    raise ConfigError(key or "(top level)", error.message)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_semantics(cfg: Config) -> None:
    """Rules a JSON Schema cannot express."""
    if not cfg["auth"]["keys"] and not is_loopback(cfg["server"]["host"]):
        raise ConfigError(
            "server.host",
            f"refusing to bind {cfg['server']['host']} with no auth.keys configured"
            " (only loopback may run without keys)",
        )
    providers = cfg["providers"]
    if cfg["engine"]["default_provider"] not in providers:
        raise ConfigError("engine.default_provider", f"no provider profile named {cfg['engine']['default_provider']!r}")
    for i, root in enumerate(cfg["workspaces"]["roots"]):
        if not Path(root).is_dir():
            raise ConfigError(f"workspaces.roots.{i}", f"{root} is not an existing directory")
    names = [k["name"] for k in cfg["auth"]["keys"]]
    if len(set(names)) != len(names):
        raise ConfigError("auth.keys", "key names must be unique")


def prepare_data_dir(cfg: Config) -> Path:
    """Create the data directory and prove it is writable. Called once at
    start, before the IOLoop serves anything, so the blocking calls are fine."""
    data_dir = Path(cfg["store"]["data_dir"]).expanduser().resolve()
    try:
        (data_dir / "workspaces").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ConfigError("store.data_dir", f"{data_dir} is not writable ({e.strerror})") from None
    return data_dir
