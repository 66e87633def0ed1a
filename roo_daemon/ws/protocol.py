"""The ``/ws`` protocol: client frames in, replies out, and who may connect.

Client ops (schemas ``WsClientMessage`` in ``openapi.yaml``): ``auth``,
``subscribe``, ``unsubscribe``, ``respond``, ``ping``; each is answered
with a reply frame (``subscribed``, ``pong``, ...) or an ``error`` frame.
This module decodes and checks frames and builds replies; it holds no
connection state, so it is tested without a socket and imports nothing of
the HTTP layer (``roo_daemon.context`` builds a :class:`FrameValidator`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from roo_daemon import strictjson
from roo_daemon.auth import Principal

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class FrameValidator:
    """Checks client frames against the ``Ws*`` schemas of ``openapi.yaml``,
    choosing the schema by ``op`` so the error names the real problem."""

    OPS = {
        "auth": "WsAuth",
        "subscribe": "WsSubscribe",
        "unsubscribe": "WsUnsubscribe",
        "respond": "WsRespond",
        "ping": "WsPing",
    }

    def __init__(self, spec: Any) -> None:
        self.validators = {op: spec.schema_validator(name) for op, name in self.OPS.items()}

    def error(self, frame: Any) -> str | None:
        if not isinstance(frame, dict):
            return "a frame must be a JSON object"
        validator = self.validators.get(frame.get("op"))  # type: ignore[arg-type]
        if validator is None:
            return f"unknown op {frame.get('op')!r}; expected one of {', '.join(self.OPS)}"
        for err in validator.iter_errors(frame):
            where = "/".join(map(str, err.absolute_path))
            return f"{where + ': ' if where else ''}{err.message}"
        return None


@dataclass(frozen=True, slots=True)
class Refused:
    """A client frame that cannot be acted on: the ``error`` frame's fields."""

    op_id: str | None
    code: str
    detail: str


def decode(message: str | bytes, validator: FrameValidator, authenticated: bool) -> dict[str, Any] | Refused:
    """A client frame as a checked op, or why it is refused. Only ``auth``
    is accepted before the connection is authenticated."""
    if isinstance(message, bytes):
        return Refused(None, "bad-frame", "binary frames are not supported; send JSON text frames")
    try:
        frame = strictjson.loads(message)
    except strictjson.JsonInputError as e:
        if e.syntax:
            return Refused(None, "bad-json", f"the frame is {e.message}")
        # No id is echoed: it may be the very string that cannot be sent.
        return Refused(None, "bad-frame", str(e))
    op_id = frame.get("id") if isinstance(frame, dict) and isinstance(frame.get("id"), str) else None
    error = validator.error(frame)
    if error:
        return Refused(op_id, "bad-frame", error)
    if not authenticated and frame["op"] != "auth":
        return Refused(op_id, "unauthenticated", 'send {"op": "auth", "token": ...} first')
    return frame


def reply(event: str, op_id: str | None, data: dict[str, Any] | None = None) -> str:
    """A reply frame: ``{"event", "id", "data"}``."""
    return _dumps({"event": event, "id": op_id, "data": data or {}})


def error(op_id: str | None, code: str, detail: str) -> str:
    return reply("error", op_id, {"code": code, "detail": detail})


class Connection(Protocol):
    principal: Principal | None


def too_many(connections: Iterable[Connection], me: Connection, principal: Principal, cap: int) -> bool:
    """Whether ``principal`` already holds ``cap`` connections besides ``me``
    (``limits.ws_connections_per_principal``)."""
    mine = sum(1 for w in connections if w is not me and w.principal and w.principal.name == principal.name)
    return mine >= cap
