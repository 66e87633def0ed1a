"""Configuration: a YAML file, then ``ROO_DAEMON_<SECTION>_<KEY>`` environment
overrides, then command-line flags, checked against ``config_schema.yaml``.

Every problem becomes a :class:`ConfigError` naming the key, so the CLI can
exit with status 2 and one readable line instead of a traceback.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import socket
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from roo_daemon.clientip import parse_networks

ENV_PREFIX = "ROO_DAEMON_"
# The client CLI's own variables (roo_daemon/client/endpoint.py): the same
# prefix, but not configuration. A shell that exports them for `roo-daemon
# run` must still be able to start `serve`.
CLIENT_VARIABLES = frozenset({ENV_PREFIX + "URL", ENV_PREFIX + "TOKEN"})
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
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path:
        raw = _read_yaml(path)
    from_env: dict[str, str] = {}
    for dotted, value, name in _env_overrides(env):
        _set_dotted(raw, dotted, value)
        from_env[dotted] = name
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    _check_keys(raw, "")
    cfg = _fill_defaults(SCHEMA, copy.deepcopy(raw))
    try:
        _validate(cfg)
    except ConfigError as e:
        if e.key in from_env:  # point at the variable, not at a file that does not say it
            raise ConfigError(f"{e.key} (from {from_env[e.key]})", e.problem) from None
        raise
    cfg["_config_dir"] = str(Path(path).resolve().parent) if path else os.getcwd()
    cfg["_config_path"] = path
    cfg["_overrides"] = dict(overrides or {})
    _check_semantics(cfg)
    return cfg


def _read_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError("", f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {path} is not valid UTF-8") from None
    except ConfigError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"config file {path} must hold a mapping of sections")
    return data


def _check_keys(value: Any, where: str) -> None:
    """YAML reads ``2001:`` or ``true:`` as non-string keys; no option has one."""
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{where}.{k}" if where else str(k)
            if not isinstance(k, str):
                raise ConfigError(key, "keys must be strings (quote this one)")
            _check_keys(v, key)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_keys(v, f"{where}.{i}")


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML
    would silently keep the last, hiding a typo or a bad merge)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(str(key), f"given twice in one mapping (second at line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """``ROO_DAEMON_ENGINE_MAX_CONCURRENT_TASKS=8`` → ``("engine.max_concurrent_tasks", 8)``.
    The section is the first word; the value is parsed as YAML so numbers and
    booleans keep their type. Unknown sections or keys are errors, like in the file."""
    out = []
    sections = SCHEMA["properties"]
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG" or name in CLIENT_VARIABLES:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or section == "providers":
            raise ConfigError(name, "not a known configuration section (providers cannot be set from the environment)")
        if key not in sections[section].get("properties", {}):
            raise ConfigError(name, f"{section} has no key {key!r}")
        if sections[section]["properties"][key].get("type") == "string":
            parsed: Any = value  # ROO_DAEMON_SERVER_HOST=1 is a host name, not a number
        else:
            try:
                parsed = yaml.safe_load(value) if value != "" else ""
            except yaml.YAMLError:
                parsed = value
        out.append((f"{section}.{key}", parsed, name))
    return out


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    section, key = dotted.split(".", 1)
    target = raw.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(section, "must be a mapping")
    target[key] = value


def _fill_defaults(schema: dict, value: Any, missing: bool = False) -> Any:
    # An explicit null stays null where the schema allows it
    # (``max_requests: null`` means no limit); elsewhere it means the default.
    types = schema.get("type")
    nullable = "null" in types if isinstance(types, list) else types == "null"
    if value is None and "default" in schema and (missing or not nullable):
        value = copy.deepcopy(schema["default"])
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value or "default" in sub:
                value[key] = _fill_defaults(sub, value.get(key), key not in value)
    return value


def _validate(cfg: dict) -> None:
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(cfg))
    if error is None:
        return
    key = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(".".join(filter(None, [key, extra[0] if extra else ""])), "unknown key")
    if key.startswith("auth.keys"):
        raise ConfigError(key, _key_problem(error))
    raise ConfigError(key or "(top level)", error.message)


def _key_problem(error: jsonschema.ValidationError) -> str:
    """What is wrong with an API key entry, without repeating the value: a
    key pasted where its hash belongs must not end up in a log or a terminal."""
    if error.validator in ("required", "additionalProperties", "uniqueItems"):
        return error.message  # names properties, not values
    if error.absolute_path and error.absolute_path[-1] == "sha256":
        return "must be the key's SHA-256 as 64 lowercase hex digits, never the key itself (see roo-daemon keys create)"
    return f"is not valid (the schema's {error.validator!r} rule: {error.validator_value!r})"


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
    from roo_daemon.engine.modes import BUILT_IN, ModeError, mode_from_config

    known = set(BUILT_IN)
    for i, entry in enumerate(cfg["engine"]["custom_modes"]):
        try:
            known.add(mode_from_config(entry, "config").slug)
        except ModeError as e:
            raise ConfigError(f"engine.custom_modes.{i}", str(e)) from None
    default_mode = cfg["engine"]["default_mode"]
    if default_mode not in known:
        raise ConfigError("engine.default_mode", f"no mode {default_mode!r} (known: {', '.join(sorted(known))})")
    for i, root in enumerate(cfg["workspaces"]["roots"]):
        if not Path(root).is_dir():
            raise ConfigError(f"workspaces.roots.{i}", f"{root} is not an existing directory")
    try:
        parse_networks(cfg["server"]["trusted_proxies"])
    except ValueError as e:
        raise ConfigError("server.trusted_proxies", str(e)) from None
    if cfg["auth"]["keys_file"]:
        cfg["auth"]["keys"] = [*cfg["auth"]["keys"], *_read_keys_file(cfg["auth"]["keys_file"], cfg["_config_dir"])]
    from roo_daemon.mcp.config import ServerConfigError, parse_servers

    try:
        parse_servers(cfg["mcp"]["servers"], "config")
    except ServerConfigError as e:
        raise ConfigError("", str(e)) from None
    names = [k["name"] for k in cfg["auth"]["keys"]]
    if len(set(names)) != len(names):
        raise ConfigError("auth.keys", "key names must be unique")
    _check_webhooks(cfg["webhooks"])


def _check_webhooks(section: dict[str, Any]) -> None:
    from roo_daemon.webhooks.hooks import shape_problems
    from roo_daemon.webhooks.policy import HostPolicy

    try:
        HostPolicy(section["allowed_hosts"])
    except ValueError as e:
        raise ConfigError("webhooks.allowed_hosts", str(e)) from None
    for i, hook in enumerate(section["default"]):
        for problem in shape_problems(hook, f"webhooks.default.{i}", session=False):
            raise ConfigError(problem["pointer"].replace("/", "."), problem["message"])


_KEYS_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA["properties"]["auth"]["properties"]["keys"])


def _read_keys_file(path: str, config_dir: str) -> list[dict[str, Any]]:
    """``auth.keys_file``: a YAML list of ``{name, sha256, scopes}``. Read at
    start and on SIGHUP (a small file; the reload accepts that brief read)."""
    full = Path(config_dir, path).expanduser()
    try:
        keys = yaml.safe_load(full.read_text(encoding="utf-8")) or []
    except OSError as e:
        raise ConfigError("auth.keys_file", f"cannot read {full}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("auth.keys_file", f"{full} is not valid UTF-8") from None
    except yaml.YAMLError:
        raise ConfigError("auth.keys_file", f"{full} is not valid YAML") from None
    error = jsonschema.exceptions.best_match(_KEYS_VALIDATOR.iter_errors(keys))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise ConfigError(f"auth.keys_file{'.' + where if where else ''}", _key_problem(error))
    for key in keys:
        key.setdefault("scopes", ["read", "write"])
    return keys


def prepare_data_dir(cfg: Config) -> Path:
    """Create the data directory and prove it is writable. Called once at
    start, before the IOLoop serves anything, so the blocking calls are fine."""
    data_dir = Path(cfg["store"]["data_dir"]).expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        managed_dir(cfg, data_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ConfigError("store.data_dir", f"{data_dir} is not writable ({e.strerror})") from None
    return data_dir


def managed_dir(cfg: Config, data_dir: Path) -> Path:
    """Where the workspaces the daemon creates live: ``workspaces.managed_dir``,
    else ``<data_dir>/workspaces``. Several daemons sharing workspaces
    (``workspaces.shared``) point it at storage they all mount."""
    configured = cfg["workspaces"]["managed_dir"]
    return Path(configured).expanduser().resolve() if configured else data_dir / "workspaces"


def checkpoints_dir(cfg: Config, data_dir: Path) -> Path:
    """Where the checkpoints' shadow repositories live: ``checkpoints.dir``;
    else, in the failover setup (``workspaces.shared`` with a
    ``workspaces.managed_dir`` on storage every node mounts), beside the
    managed workspaces in ``<managed_dir>/.checkpoints``, so the node that
    takes a session over has its tasks' earlier checkpoints; else
    ``<data_dir>/checkpoints`` (one machine: where they always were)."""
    configured = cfg["checkpoints"]["dir"]
    if configured:
        return Path(configured).expanduser().resolve()
    if cfg["workspaces"]["shared"] and cfg["workspaces"]["managed_dir"]:
        return managed_dir(cfg, data_dir) / ".checkpoints"
    return data_dir / "checkpoints"


def node_id(cfg: Config) -> str:
    """This daemon's name in a cluster: ``cluster.node_id``, else
    ``<hostname>:<server.port>`` (stable across restarts of one service)."""
    return cfg["cluster"]["node_id"] or f"{socket.gethostname()}:{cfg['server']['port']}"
