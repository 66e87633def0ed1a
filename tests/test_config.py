"""``load_config``: defaults, the file < environment < flags precedence,
typed environment values, and the rules JSON Schema cannot express."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from roo_daemon.config import ConfigError, checkpoints_dir, is_loopback, load_config, prepare_data_dir

SHA = "0" * 64


def write(tmp_path: Path, doc: Any, name: str = "cfg.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def error_of(*args: Any, **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kw)
    return info.value


# -- defaults ----------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No file, no environment: loopback port 3000, ./.roo-daemon, the demo
    scripted provider, no keys; and loading touches nothing on disk."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert (cfg["server"]["host"], cfg["server"]["port"]) == ("127.0.0.1", 3000)
    assert cfg["server"]["shutdown_grace_seconds"] == 10
    assert cfg["store"] == {
        "data_dir": "./.roo-daemon",
        "synchronous": "normal",
        "backend": "sqlite",
        "dsn_env": "ROO_DAEMON_DATABASE_URL",
        "pool_size": 4,
    }
    assert cfg["providers"] == {"demo": {"kind": "scripted"}}
    assert cfg["engine"]["default_provider"] == "demo"
    assert cfg["engine"]["default_mode"] == "code"
    assert cfg["engine"]["max_concurrent_tasks"] == 4
    assert cfg["engine"]["max_requests"] == 100 and cfg["engine"]["max_cost_usd"] is None
    assert cfg["auth"]["keys"] == [] and cfg["workspaces"]["roots"] == []
    assert cfg["log"] == {"level": "info", "format": "auto"}
    assert cfg["websocket"]["max_message_bytes"] == 65536
    assert cfg["_config_dir"] == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # load_config never creates the data dir


def test_an_empty_file_and_empty_sections_mean_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    sections = write(tmp_path, {"server": None, "engine": {}}, "sections.yaml")
    base = load_config(None, env={})
    for path in (str(empty), sections):
        cfg = load_config(path, env={})
        assert {k: v for k, v in cfg.items() if not k.startswith("_")} == {
            k: v for k, v in base.items() if not k.startswith("_")
        }


def test_file_values_keep_the_other_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"server": {"port": 4567}}), env={})
    assert cfg["server"]["port"] == 4567
    assert cfg["server"]["host"] == "127.0.0.1"
    assert cfg["_config_dir"] == str(tmp_path)  # relative script paths resolve from here


def test_explicit_null_means_no_limit_where_the_schema_allows_null(tmp_path: Path) -> None:
    """``max_requests: null`` disables the limit (as config/roo-daemon.yaml
    documents); a null where null is not allowed means the default."""
    cfg = load_config(write(tmp_path, {"engine": {"max_requests": None}, "server": {"port": None}}), env={})
    assert cfg["engine"]["max_requests"] is None
    assert cfg["server"]["port"] == 3000
    assert load_config(write(tmp_path, {"engine": {}}), env={})["engine"]["max_requests"] == 100


# -- environment ---------------------------------------------------------------


def test_environment_values_are_parsed_as_yaml_scalars(tmp_path: Path) -> None:
    """``ROO_DAEMON_<SECTION>_<KEY>``: numbers, floats, null and lists keep
    their types; the rest stays a string."""
    root = tmp_path / "root"
    root.mkdir()
    cfg = load_config(
        None,
        env={
            "ROO_DAEMON_ENGINE_MAX_CONCURRENT_TASKS": "8",
            "ROO_DAEMON_SERVER_SHUTDOWN_GRACE_SECONDS": "2.5",
            "ROO_DAEMON_ENGINE_MAX_REQUESTS": "null",
            "ROO_DAEMON_ENGINE_MAX_COST_USD": "0.25",
            "ROO_DAEMON_LOG_LEVEL": "debug",
            "ROO_DAEMON_STORE_DATA_DIR": "/var/lib/x",
            "ROO_DAEMON_WORKSPACES_ROOTS": f"[{root}]",
            "ROO_DAEMON_SERVER_HOST": "::1",
        },
    )
    assert cfg["engine"]["max_concurrent_tasks"] == 8 and type(cfg["engine"]["max_concurrent_tasks"]) is int
    assert cfg["server"]["shutdown_grace_seconds"] == 2.5
    assert cfg["engine"]["max_requests"] is None
    assert cfg["engine"]["max_cost_usd"] == 0.25
    assert cfg["log"]["level"] == "debug"
    assert cfg["store"]["data_dir"] == "/var/lib/x"
    assert cfg["workspaces"]["roots"] == [str(root)]
    assert cfg["server"]["host"] == "::1"


def test_environment_value_that_is_not_yaml_stays_a_string() -> None:
    cfg = load_config(None, env={"ROO_DAEMON_STORE_DATA_DIR": "[not-closed"})
    assert cfg["store"]["data_dir"] == "[not-closed"


def test_unrelated_environment_is_ignored() -> None:
    cfg = load_config(None, env={"HOME": "/root", "ROO_DAEMONX": "1"})
    assert cfg["server"]["port"] == 3000


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    """ROO_DAEMON_CONFIG names the file when --config is not given; --config wins."""
    path = write(tmp_path, {"server": {"port": 4444}})
    assert load_config(None, env={"ROO_DAEMON_CONFIG": path})["server"]["port"] == 4444
    other = tmp_path / "other.yaml"
    other.write_text("server: {port: 5555}\n")
    assert load_config(str(other), env={"ROO_DAEMON_CONFIG": path})["server"]["port"] == 5555


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("server:\n  port: 1\nserver:\n  port: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path), env={})
    assert e.value.key == "server" and "twice" in e.value.problem


def test_string_options_from_the_environment_stay_strings() -> None:
    assert load_config(None, env={"ROO_DAEMON_SERVER_HOST": "127.0.0.1"})["server"]["host"] == "127.0.0.1"
    assert load_config(None, env={"ROO_DAEMON_STORE_DATA_DIR": "123"})["store"]["data_dir"] == "123"


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("ROO_DAEMON_NOPE_X", "1", "ROO_DAEMON_NOPE_X"),
        ("ROO_DAEMON_SERVER_PROT", "1", "ROO_DAEMON_SERVER_PROT"),
        ("ROO_DAEMON_SERVER", "1", "ROO_DAEMON_SERVER"),
        ("ROO_DAEMON_PROVIDERS_DEMO", "x", "ROO_DAEMON_PROVIDERS_DEMO"),
        ("ROO_DAEMON_SERVER_PORT", "abc", "server.port"),
        ("ROO_DAEMON_SERVER_PORT", "", "server.port"),
        ("ROO_DAEMON_LOG_LEVEL", "loud", "log.level"),
    ],
)
def test_bad_environment_override_names_the_variable_or_key(name: str, value: str, key: str) -> None:
    err = error_of(None, env={name: value})
    assert err.key.startswith(key)
    if err.key != key:
        assert name in err.key  # a bad value from the environment names its variable


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    """Each later source wins, key by key; a flag left unset (None) changes nothing."""
    path = write(tmp_path, {"server": {"port": 1111, "host": "localhost"}, "store": {"data_dir": "/from/file"}})
    cfg = load_config(path, env={})
    assert (cfg["server"]["port"], cfg["server"]["host"], cfg["store"]["data_dir"]) == (1111, "localhost", "/from/file")

    env = {"ROO_DAEMON_SERVER_PORT": "2222", "ROO_DAEMON_STORE_DATA_DIR": "/from/env"}
    cfg = load_config(path, env=env)
    assert (cfg["server"]["port"], cfg["server"]["host"], cfg["store"]["data_dir"]) == (2222, "localhost", "/from/env")

    flags = {"server.port": 3333, "server.host": None, "store.data_dir": None}
    cfg = load_config(path, env=env, overrides=flags)
    assert (cfg["server"]["port"], cfg["server"]["host"], cfg["store"]["data_dir"]) == (3333, "localhost", "/from/env")


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROO_DAEMON_SERVER_PORT", "4321")
    assert load_config(None)["server"]["port"] == 4321


# -- semantic rules --------------------------------------------------------------


def test_default_provider_must_exist(tmp_path: Path) -> None:
    """Replacing the providers drops ``demo``: the default must then name one of them."""
    only_x = {"providers": {"x": {"kind": "scripted"}}}
    e = error_of(write(tmp_path, only_x), env={})
    assert e.key == "engine.default_provider" and "'demo'" in e.problem
    cfg = load_config(write(tmp_path, {**only_x, "engine": {"default_provider": "x"}}), env={})
    assert cfg["engine"]["default_provider"] == "x"
    e = error_of(None, env={"ROO_DAEMON_ENGINE_DEFAULT_PROVIDER": "ghost"})
    assert e.key == "engine.default_provider"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_keys(host: str) -> None:
    assert is_loopback(host)
    assert load_config(None, env={}, overrides={"server.host": host})["server"]["host"] == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_other_hosts_need_keys(host: str) -> None:
    assert not is_loopback(host)
    e = error_of(None, env={}, overrides={"server.host": host})
    assert e.key == "server.host" and "auth.keys" in e.problem
    keys = [{"name": "ci", "sha256": SHA}]
    cfg = load_config(None, env={}, overrides={"server.host": host, "auth.keys": keys})
    assert cfg["auth"]["keys"] == keys


def test_key_names_must_be_unique() -> None:
    keys = [{"name": "ci", "sha256": SHA}, {"name": "ci", "sha256": "1" * 64}]
    assert error_of(None, env={}, overrides={"auth.keys": keys}).key == "auth.keys"


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"server": {"prot": 1}}, "server.prot"),
        ({"bogus": {}}, "bogus"),
        ({"server": {"port": "abc"}}, "server.port"),
        ({"server": {"port": -1}}, "server.port"),
        ({"server": 5}, "server"),
        ({"store": {"synchronous": "off"}}, "store.synchronous"),
        ({"auth": {"keys": [{"name": "ci"}]}}, "auth.keys.0"),
        ({"auth": {"keys": [{"name": "ci", "sha256": "xyz"}]}}, "auth.keys.0.sha256"),
        ({"providers": {"demo": {"kind": "scripted", "model": "gpt"}}}, "providers.demo.model"),
        ({"providers": {"bad name!": {"kind": "scripted"}}}, "providers"),
        ({"workspaces": {"roots": ["/no/such/dir"]}}, "workspaces.roots.0"),
        ({"engine": {"default_mode": "yolo"}}, "engine.default_mode"),
        ({2001: 1}, "2001"),
    ],
)
def test_file_errors_name_the_key(tmp_path: Path, doc: dict, key: str) -> None:
    e = error_of(write(tmp_path, doc), env={})
    assert e.key == key, str(e)
    assert str(e).startswith(key)


def test_file_problems(tmp_path: Path) -> None:
    assert "does not exist" in error_of(str(tmp_path / "missing.yaml"), env={}).problem
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: 1\n")
    assert "not valid YAML at line" in error_of(str(bad), env={}).problem
    assert "cannot read" in error_of(str(tmp_path), env={}).problem  # a directory


# -- data dir --------------------------------------------------------------------


def test_prepare_data_dir_creates_it_and_resolves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={}, overrides={"store.data_dir": "rel/data"})
    path = prepare_data_dir(cfg)
    assert path == tmp_path / "rel" / "data"
    assert (path / "workspaces").is_dir()
    assert [p.name for p in path.iterdir()] == ["workspaces"]  # the write probe cleaned up after itself


def test_prepare_data_dir_rejects_what_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = load_config(None, env={}, overrides={"store.data_dir": str(blocker / "data")})
    with pytest.raises(ConfigError) as info:
        prepare_data_dir(cfg)
    assert info.value.key == "store.data_dir"
    assert os.fspath(blocker) in info.value.problem


@pytest.mark.parametrize(
    "overrides, where",
    [
        ({}, "data/checkpoints"),  # one machine: where they always were
        ({"workspaces.shared": True}, "data/checkpoints"),  # no shared managed_dir to derive it from
        ({"workspaces.shared": True, "workspaces.managed_dir": "{tmp}/shared/managed"}, "shared/managed/.checkpoints"),
        ({"workspaces.managed_dir": "{tmp}/shared/managed"}, "data/checkpoints"),  # not shared: each node's own
        ({"workspaces.shared": True, "workspaces.managed_dir": "{tmp}/m", "checkpoints.dir": "{tmp}/c"}, "c"),
    ],
)
def test_where_the_checkpoints_live(tmp_path: Path, overrides: dict[str, Any], where: str) -> None:
    """A failover cluster's checkpoints default to its shared storage, beside the managed workspaces."""
    values = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
    cfg = load_config(None, env={}, overrides={"store.data_dir": str(tmp_path / "data"), **values})
    assert checkpoints_dir(cfg, tmp_path / "data") == tmp_path / where
