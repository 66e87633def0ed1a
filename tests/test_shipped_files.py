"""The files we ship stay in step with the code: the example config names
every option, and CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

import yaml

from roo_daemon.config import SCHEMA, load_config

ROOT = Path(__file__).resolve().parent.parent


def _keys(schema: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, sub in schema.get("properties", {}).items():
        if name == "providers":
            out.add(prefix + name)
            continue
        out.add(prefix + name)
        out |= _keys(sub, f"{prefix}{name}.")
    return out


def test_shipped_config_names_every_option_and_loads():
    shipped = yaml.safe_load((ROOT / "config" / "roo-daemon.yaml").read_text())
    present = set()

    def walk(doc: dict, prefix: str = "") -> None:
        for k, v in doc.items():
            present.add(prefix + k)
            if isinstance(v, dict) and k != "providers":
                walk(v, f"{prefix}{k}.")

    walk(shipped)
    missing = _keys(SCHEMA) - present
    assert not missing, f"config/roo-daemon.yaml lacks {sorted(missing)}"
    cfg = load_config(str(ROOT / "config" / "roo-daemon.yaml"), env={})
    assert cfg["server"]["port"] == 3000


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest"
    assert command in readme
    assert command + "\n" in ci


def test_systemd_unit_is_notify_with_reload_and_state_directory():
    unit = (ROOT / "systemd" / "roo-daemon.service").read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=roo-daemon",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in unit
