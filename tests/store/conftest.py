"""The store tests run on both backends: ``store`` is a place for a store
(a SQLite file, or a fresh PostgreSQL database) that tests open, close and
open again, and look into through a connection of their own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.events import EventBus
from roo_daemon.store import Database
from roo_daemon.store.backends import event_store, make_database

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class StorePlace:
    backend: str
    data_dir: Path
    dsn: str | None = None

    def config(self) -> dict[str, Any]:
        return {"backend": self.backend, "synchronous": "normal", "dsn_env": "ROO_TEST_DSN", "pool_size": 2}

    def database(self) -> Database:
        return make_database(self.config(), self.data_dir, env={"ROO_TEST_DSN": self.dsn or ""})

    async def open(self) -> Database:
        db = self.database()
        await db.open()
        return db

    async def open_bus(self) -> EventBus:
        db = await self.open()
        bus = EventBus(db, event_store(db))
        await bus.open()
        return bus

    def connect(self) -> Any:
        """A blocking connection of the test's own, with ``execute(sql, args)``
        taking ``?`` placeholders on both backends."""
        if self.backend == "sqlite":
            import sqlite3

            from roo_daemon.store.database import DB_FILE

            return sqlite3.connect(self.data_dir / DB_FILE)
        import psycopg

        from roo_daemon.store.postgres import PgConnection

        return PgConnection(psycopg.connect(self.dsn, autocommit=True))


def close(conn: Any) -> None:
    (conn.conn if hasattr(conn, "conn") else conn).close()


@pytest.fixture(params=BACKENDS)
def store(request: Any, tmp_path: Path) -> StorePlace:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "postgresql":
        return StorePlace("postgresql", data_dir, request.getfixturevalue("pg_dsn"))
    return StorePlace("sqlite", data_dir)
