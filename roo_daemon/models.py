"""The daemon's resources as plain dataclasses.

``to_resource()`` gives exactly the JSON shape ``openapi.yaml`` documents;
the store keeps that same shape as the row's document, so there is one
representation to keep in step with the spec.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

LIVE_STATUSES = frozenset({"queued", "running", "waiting"})
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "interrupted"})
AUTO_APPROVE_DEFAULTS: dict[str, Any] = {
    "read_only": False,
    "write": False,
    "write_protected": False,
    "execute": False,
    "allowed_commands": [],
    "denied_commands": [],
    "mode_switch": False,
    "subtasks": False,
    "mcp": False,
}
SANDBOX_DEFAULTS: dict[str, Any] = {"network": True}
CHECKPOINTS_DEFAULTS: dict[str, Any] = {"enabled": True}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds; ``None`` stays ``None``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(time.time())  # type: ignore[return-value]


@dataclass
class Session:
    id: str
    workspace: str
    workspace_managed: bool
    mode: str
    provider: str
    provider_kind: str
    created_at: str
    owner: str
    name: str | None = None
    auto_approve: dict[str, Any] = field(default_factory=lambda: dict(AUTO_APPROVE_DEFAULTS))
    metadata: dict[str, str] = field(default_factory=dict)
    sandbox: dict[str, Any] = field(default_factory=lambda: dict(SANDBOX_DEFAULTS))
    ask_timeouts: dict[str, int] = field(default_factory=dict)  # ask kind -> seconds; none: asks wait forever
    checkpoints: dict[str, Any] = field(default_factory=lambda: dict(CHECKPOINTS_DEFAULTS))
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # its own [{url, events, secret_env}]

    def to_resource(self) -> dict[str, Any]:
        # A shallow dict, not dataclasses.asdict (a deep copy, and the single
        # biggest cost of a GET): callers serialise it at once.
        return {name: getattr(self, name) for name in _SESSION_FIELDS}

    @property
    def resource_json(self) -> bytes:
        """The serialised resource, cached: a session changes only by
        :meth:`apply` (PATCH), which drops the cache."""
        cached = self.__dict__.get("_json")
        if cached is None:
            cached = self.__dict__["_json"] = json.dumps(self.to_resource(), separators=(",", ":")).encode()
        return cached

    def apply(self, changes: dict[str, Any]) -> None:
        """Change fields in place: the session's live tasks hold this very
        object, so they see a new ``auto_approve`` or ``ask_timeouts`` at
        their next tool call or ask."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.__dict__.pop("_json", None)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Session:
        # Sessions stored before a policy key existed get its default.
        return cls(**{**doc, "auto_approve": {**AUTO_APPROVE_DEFAULTS, **doc.get("auto_approve", {})}})


def empty_usage() -> dict[str, Any]:
    return {"tokens_in": 0, "tokens_out": 0, "cache_reads": 0, "cache_writes": 0, "cost_usd": 0.0}


@dataclass
class Task:
    id: str
    session_id: str
    prompt: str
    mode: str
    provider: str
    provider_kind: str
    created_at: str
    status: str = "queued"
    image_count: int = 0
    limits: dict[str, Any] = field(default_factory=lambda: {"max_requests": None, "max_cost_usd": None})
    started_at: str | None = None
    finished_at: str | None = None
    result: str | None = None
    error: dict[str, str] | None = None
    pending_ask: dict[str, Any] | None = None
    todos: list[dict[str, str]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=empty_usage)
    parent_task_id: str | None = None
    child_task_ids: list[str] = field(default_factory=list)
    ask_timeouts: dict[str, int] = field(default_factory=dict)  # over the session's, per ask kind
    # The engine's loop state (request and mistake counts, a durable answer
    # not yet acted on, why the next start resumes): stored with the task so
    # any start of the daemon can pick the task up; not part of the resource.
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def to_resource(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TASK_FIELDS}

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Task:
        return cls(**doc)


_SESSION_FIELDS = tuple(f.name for f in fields(Session) if f.name != "owner")
_TASK_FIELDS = tuple(f.name for f in fields(Task) if f.name != "state")
