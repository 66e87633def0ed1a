"""The embedded durable store: SQLite in WAL mode, never touched on the IOLoop."""

from roo_daemon.store.conversation import InboxStore, MessageStore, Row
from roo_daemon.store.database import Database
from roo_daemon.store.sqlite import EventStore, IdempotencyStore, SessionStore, TaskStore

__all__ = [
    "Database",
    "EventStore",
    "IdempotencyStore",
    "InboxStore",
    "MessageStore",
    "Row",
    "SessionStore",
    "TaskStore",
]
