"""The store's schema, its version, and the in-place migrations between versions.

``meta.schema_version`` says which version a data dir holds. A data dir
without it was written by the first release (version 1: sessions, tasks,
events, idempotency). Opening one migrates it forward, each step in one
transaction, so a crash mid-migration leaves the previous version intact. A
data dir from a *newer* release is refused before anything is written: an
older daemon cannot know what the newer one stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 7

# Version N's statements turn version N-1 into N.
MIGRATIONS: dict[int, str] = {
    # The conversation: each task's messages, appended once each (never
    # rewritten), and the user messages waiting for the task's next turn.
    2: """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (task_id, n)
);
CREATE INDEX messages_markers ON messages (task_id, kind, n);
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    ts REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX inbox_by_task ON inbox (task_id, seq);
""",
    # Checkpoints (roo_daemon/checkpoints/store.py): each task's, with the
    # shadow repository commit and the conversation row it follows, and
    # each restore's answer (kept for Idempotency-Key replays).
    3: """
CREATE TABLE checkpoints (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    message_n INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX checkpoints_by_task ON checkpoints (task_id, n);
CREATE INDEX checkpoints_by_session ON checkpoints (session_id);
CREATE TABLE checkpoint_restores (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
""",
    # Webhooks (roo_daemon/webhooks/store.py): each (session, webhook)'s
    # cursor, the seq of the last event it is done with, and its counters.
    4: """
CREATE TABLE webhook_cursors (
    session_id TEXT NOT NULL,
    hook_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (session_id, hook_id)
);
""",
    # Hand-off (roo_daemon/cluster/handoff.py): a request for a session
    # another node owns, stored by the node that took it for the owner to
    # claim, run, and answer in ``reply``. Used on PostgreSQL only; SQLite
    # has it too so the two schemas stay one.
    5: """
CREATE TABLE node_requests (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    op TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at REAL NOT NULL,
    claimed_by TEXT,
    reply TEXT
);
CREATE INDEX node_requests_unclaimed ON node_requests (created_at) WHERE claimed_by IS NULL;
""",
    # Cluster-wide caps (roo_daemon/cluster/caps.py): each open WebSocket
    # connection, by node and key, and the per-key counts' indexes.
    6: """
CREATE TABLE ws_connections (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    opened_at REAL NOT NULL
);
CREATE INDEX ws_connections_by_principal ON ws_connections (principal);
CREATE INDEX ws_connections_by_node ON ws_connections (node_id);
CREATE INDEX sessions_by_owner ON sessions (owner);
""",
    # Cluster membership and session ownership (roo_daemon/cluster/): each
    # daemon's lease (times from the database's clock), and which node owns
    # each session with its fencing token. Used on PostgreSQL only; on
    # SQLite the one daemon owns everything and the tables stay empty.
    7: """
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL,
    lease_until REAL NOT NULL,
    started_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE session_owners (
    session_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    fence INTEGER NOT NULL
);
CREATE INDEX session_owners_by_node ON session_owners (node_id);
""",
}


class StoreVersionError(Exception):
    """The data dir was written by a newer release than this one."""


def stored_version(conn: sqlite3.Connection) -> int:
    """The data dir's schema version: 0 for an empty file, 1 for the first
    release (which recorded none)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        return 1 if "tasks" in tables else 0
    row = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
    return int(row[0]) if row else 1


def refuse_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{where} was written by a newer roo-daemon (store schema version {version}; this release "
            f"reads up to {SCHEMA_VERSION}): run that release, or point store.data_dir elsewhere"
        )


def migrate(conn: sqlite3.Connection, base: str, where: str = "the data dir") -> int:
    """Bring the store to :data:`SCHEMA_VERSION`; returns the version it had.
    ``base`` (``CREATE ... IF NOT EXISTS`` only) is the first release's
    schema, run on every open as before; each later step commits alone,
    with its version number."""
    found = stored_version(conn)
    refuse_newer(found, where)
    conn.executescript(base)
    found = max(found, 1)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (k, v) VALUES ('schema_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (str(version),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def check_data_dir(path: Path) -> None:
    """Refuse a store a newer release wrote, before the daemon starts
    (read-only: nothing is created or changed here). Blocking: called once
    at start, before the IOLoop serves."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = stored_version(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return  # cannot even be read (a full disk for its -shm): the store's own open says why
    refuse_newer(version, str(path.parent))
