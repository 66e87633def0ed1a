"""Which store the configuration asks for: ``store.backend``.

SQLite (the default) is the embedded store in the data dir; PostgreSQL is
a database several daemons share, reached through the DSN in the
environment variable ``store.dsn_env`` names (never in the config file: a
DSN may carry a password). psycopg is imported only for PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roo_daemon.store.database import DB_FILE, Database
from roo_daemon.store.sqlite import EventStore


class StoreConfigError(Exception):
    """The configured store cannot be used as configured (no DSN, no driver)."""


def make_database(store: Mapping[str, Any], data_dir: Path, env: Mapping[str, str] | None = None) -> Database:
    """The configured store's :class:`Database`, not opened yet."""
    if store.get("backend", "sqlite") != "postgresql":
        return Database(data_dir / DB_FILE, store["synchronous"])
    env = os.environ if env is None else env
    name = store["dsn_env"]
    dsn = env.get(name, "").strip()
    if not dsn:
        raise StoreConfigError(
            f"store.backend is postgresql, but the environment variable {name} (store.dsn_env) is not set"
        )
    try:
        from roo_daemon.store.postgres import PgDatabase
    except ImportError as e:
        raise StoreConfigError(
            f"store.backend postgresql needs psycopg and psycopg-pool ({e}): pip install 'roo-daemon[postgresql]'"
        ) from None
    return PgDatabase(dsn, store["pool_size"], where=f"the PostgreSQL database in ${name}")


def event_store(db: Database) -> EventStore:
    """The event log for ``db``: PostgreSQL's numbers events itself."""
    if db.backend == "postgresql":
        from roo_daemon.store.postgres import PgEventStore

        return PgEventStore(db)
    return EventStore(db)


def describe(db: Database) -> str:
    """Where the store is, for messages: its file, or the DSN's variable."""
    return getattr(db, "where", None) or str(db.path.parent)
