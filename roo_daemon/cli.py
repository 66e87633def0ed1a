"""``roo-daemon serve | check-config | openapi | keys``, and the client
commands (``watch`` in ``watch.py``, the rest in ``client/commands.py``).

Configuration problems end with exit status 2 and one line naming the key;
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from roo_daemon import __version__
from roo_daemon.client.commands import add_commands, connection_flags
from roo_daemon.config import ConfigError, load_config, prepare_data_dir
from roo_daemon.watch import add_command as add_watch

EXIT_CONFIG = 2
CLIENT_COMMANDS = ("run", "tasks", "attach", "approve", "deny", "answer", "continue")


class _Parser(argparse.ArgumentParser):
    """A usage error is one line and exit 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="roo-daemon", description="The Roo-Code agent engine as a service.")
    p.add_argument("--version", action="version", version=f"roo-daemon {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", help="YAML configuration file")
    serve.add_argument("--host", help="address to bind (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to bind, 0 for any free one (overrides server.port)")
    serve.add_argument("--data-dir", help="where the store and workspaces live (overrides store.data_dir)")
    check = sub.add_parser("check-config", help="validate a configuration and exit")
    check.add_argument("--config", help="YAML configuration file")
    sub.add_parser("openapi", help="print the OpenAPI contract (YAML)")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new random key once, with the config entry holding its hash")
    create.add_argument("name", help="the principal's name (letters, digits, _.@-)")
    create.add_argument("--scopes", default="read,write", help="comma-separated: read, write, admin")
    vacuum = sub.add_parser("vacuum", help="shrink a stopped daemon's store and let it shrink by itself from then on")
    vacuum.add_argument("--config", help="YAML configuration file")
    vacuum.add_argument("--data-dir", help="the data dir (overrides store.data_dir)")
    add_watch(sub, [connection_flags()])
    add_commands(sub)
    return p


def _config(args: argparse.Namespace) -> dict:
    overrides = {
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "store.data_dir": getattr(args, "data_dir", None),
    }
    cfg = load_config(args.config, overrides=overrides)
    data_dir = prepare_data_dir(cfg)
    if args.command == "serve" and cfg["store"]["backend"] == "sqlite":
        from roo_daemon.context import DB_FILE
        from roo_daemon.store.schema import StoreVersionError, check_data_dir

        try:
            check_data_dir(data_dir / DB_FILE)  # a newer release's store: refused before anything runs
        except StoreVersionError as e:
            raise ConfigError("store.data_dir", str(e)) from None
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        from roo_daemon.spec import load_spec_text

        sys.stdout.write(load_spec_text())
        return 0
    if args.command == "keys":
        return create_key(args.name, args.scopes)
    if args.command == "watch":
        from roo_daemon.watch import run

        return run(args)
    if args.command in CLIENT_COMMANDS:
        from roo_daemon.client.commands import main as client_main

        return client_main(args)
    try:
        cfg = _config(args)
    except ConfigError as e:
        print(f"roo-daemon: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "vacuum":
        from pathlib import Path

        from roo_daemon.store.vacuum import vacuum_store

        return vacuum_store(Path(cfg["store"]["data_dir"]).expanduser().resolve())
    if args.command == "check-config":
        print(
            f"configuration OK: listening on {cfg['server']['host']}:{cfg['server']['port']}, "
            f"data in {cfg['store']['data_dir']}, providers: {', '.join(cfg['providers'])}"
        )
        return 0
    return serve(cfg)


def create_key(name: str, scopes_arg: str) -> int:
    """Print a fresh key (shown this once) and the ``auth.keys`` entry that
    holds only its SHA-256, ready to paste into the config or keys file."""
    import json
    import re

    from roo_daemon.auth import SCOPES, hash_key, new_key

    scopes = [s.strip() for s in scopes_arg.split(",") if s.strip()]
    bad = [s for s in scopes if s not in SCOPES]
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name) or bad or not scopes:
        problem = f"unknown scope {bad[0]!r}" if bad else "no scope given" if not scopes else f"bad name {name!r}"
        print(f"roo-daemon keys create: {problem} (scopes: {', '.join(SCOPES)})", file=sys.stderr)
        return EXIT_CONFIG
    key = new_key()
    print(f"key (shown once; store it now): {key}")
    print("auth.keys entry:")
    print(f"  - {{name: {name}, sha256: {hash_key(key)}, scopes: {json.dumps(scopes)}}}")
    return 0


def serve(cfg: dict) -> int:
    from roo_daemon.context import StartupError
    from roo_daemon.engine.sandbox import make_undumpable
    from roo_daemon.logs import setup_logging
    from roo_daemon.server import Daemon

    setup_logging(cfg["log"]["level"], cfg["log"]["format"])
    if not make_undumpable():  # same-user processes must not read our memory or environ (provider keys)
        logging.getLogger("roo_daemon").warning("could not make the daemon undumpable (prctl PR_SET_DUMPABLE)")

    async def run() -> int:
        return await Daemon(cfg).run()

    try:
        status = asyncio.run(run())
    except StartupError as e:  # the port is taken, the data dir is another daemon's, its store cannot be written
        print(f"roo-daemon: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:  # unforeseen (a taken port is a StartupError): one line, no traceback
        print(f"roo-daemon: cannot serve: {e.strerror or e}", file=sys.stderr)
        return 1
    return status
