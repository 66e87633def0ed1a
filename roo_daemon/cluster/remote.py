"""The mutations handed to a session's owner, both ends of each.

:class:`Remote` is the requester's end: a manager whose session another
node owns calls it instead of acting, and gets back what its own method
would have returned (a :class:`Task`, a :class:`Session`, a flag saying an
Idempotency-Key replayed), or the problem the owner raised. :func:`serve`
is the owner's end: each op runs the SAME manager method a request made to
the owner runs, so idempotency, 404s, 409s and 422s are the owner's.

The managers look at ``remote`` only when it is set (PostgreSQL, several
nodes); on SQLite every session is local and nothing here runs.
"""

from __future__ import annotations

import base64
from dataclasses import fields
from typing import Any

from roo_daemon.auth import Principal
from roo_daemon.cluster.handoff import Handoff
from roo_daemon.models import Session, Task

# The ops (also the ``op`` label of the hand-off metrics: metrics.HANDOFF_OPS
# pre-creates their series; tests/ops/test_cluster_metrics.py keeps the two lists equal).
CREATE_TASK = "create_task"
CANCEL_TASK = "cancel_task"
RESPOND = "respond"
POST_MESSAGE = "post_message"
UPDATE_SESSION = "update_session"
DELETE_SESSION = "delete_session"
RESTORE = "restore_checkpoint"
DIFF = "checkpoint_diff"  # a read, but of the shadow repository in the owner's data dir
MODES = "list_modes"  # a read of the workspace's .roomodes, on the owner's disk unless workspaces are shared


class Remote:
    """The requester's end: each mutation, run by the session's owner."""

    def __init__(self, handoff: Handoff, sessions: Any) -> None:
        self.handoff = handoff
        self.sessions = sessions  # SessionManager: its cache follows what the owner did

    def elsewhere(self, session_id: str) -> bool:
        """Whether another node runs this session (then hand the request to it)."""
        return not self.handoff.ownership.is_local(session_id)

    async def _call(self, session_id: str, op: str, principal: Principal, **args: Any) -> Any:
        return await self.handoff.forward(session_id, op, principal, {"session_id": session_id, **args})

    async def create_task(
        self, principal: Principal, session_id: str, body: dict[str, Any], key: str | None
    ) -> tuple[Task, bool]:
        out = await self._call(session_id, CREATE_TASK, principal, body=body, key=key)
        return Task.from_doc(out["task"]), out["replayed"]

    async def cancel_task(self, principal: Principal, session_id: str, task_id: str) -> Task:
        out = await self._call(session_id, CANCEL_TASK, principal, task_id=task_id)
        return Task.from_doc(out["task"])

    async def respond(
        self,
        principal: Principal,
        session_id: str,
        task_id: str,
        ask_id: str,
        approve: bool,
        text: str | None,
        images: list[str] | None,
        suggestion: int | None,
    ) -> Task:
        out = await self._call(
            session_id,
            RESPOND,
            principal,
            task_id=task_id,
            ask_id=ask_id,
            approve=approve,
            text=text,
            images=images,
            suggestion=suggestion,
        )
        return Task.from_doc(out["task"])

    async def post_message(
        self, principal: Principal, session_id: str, task_id: str, body: dict[str, Any], key: str | None
    ) -> tuple[Task, bool]:
        out = await self._call(session_id, POST_MESSAGE, principal, task_id=task_id, body=body, key=key)
        return Task.from_doc(out["task"]), out["replayed"]

    async def update_session(self, principal: Principal, session_id: str, body: dict[str, Any]) -> Session:
        out = await self._call(session_id, UPDATE_SESSION, principal, body=body)
        updated = Session.from_doc(out["session"])
        # This node's copy follows at once (the owner's session.updated event
        # reaches it too, a moment later): a GET here after the PATCH sees it.
        cached = self.sessions.sessions.get(session_id)
        if cached is None:
            return updated
        cached.apply({f.name: getattr(updated, f.name) for f in fields(Session)})
        return cached

    async def delete_session(self, principal: Principal, session_id: str) -> None:
        await self._call(session_id, DELETE_SESSION, principal)
        self.sessions.sessions.pop(session_id, None)  # gone here too, at once

    async def restore(
        self,
        principal: Principal,
        session_id: str,
        task_id: str,
        checkpoint_id: str,
        body: dict[str, Any],
        key: str | None,
    ) -> tuple[dict[str, Any], bool]:
        out = await self._call(
            session_id, RESTORE, principal, task_id=task_id, checkpoint_id=checkpoint_id, body=body, key=key
        )
        return out["restore"], out["replayed"]

    async def diff(
        self, principal: Principal, session_id: str, task_id: str, start: str | None, end: str | None, as_json: bool
    ) -> bytes | list[dict[str, Any]]:
        out = await self._call(session_id, DIFF, principal, task_id=task_id, start=start, end=end, as_json=as_json)
        return out["files"] if as_json else base64.b64decode(out["patch"])  # a patch's bytes, as git gave them

    async def modes(self, principal: Principal, session_id: str) -> list[dict[str, Any]]:
        return (await self._call(session_id, MODES, principal))["items"]


def serve(handoff: Handoff, sessions: Any, tasks: Any, checkpoints: Any) -> None:
    """The owner's end: register every op on ``handoff``, each calling the
    manager method a local request calls (the session is local here, so the
    method acts instead of handing it on)."""

    async def create_task(p: Principal, a: dict[str, Any]) -> Any:
        task, replayed = await tasks.create(p, a["session_id"], a["body"], a["key"])
        return {"task": task.to_doc(), "replayed": replayed}

    async def cancel_task(p: Principal, a: dict[str, Any]) -> Any:
        return {"task": (await tasks.cancel(p, a["session_id"], a["task_id"])).to_doc()}

    async def respond(p: Principal, a: dict[str, Any]) -> Any:
        task = await tasks.respond(
            p,
            a["session_id"],
            a["task_id"],
            a["ask_id"],
            a["approve"],
            a["text"],
            a["images"],
            suggestion=a["suggestion"],
        )
        return {"task": task.to_doc()}

    async def post_message(p: Principal, a: dict[str, Any]) -> Any:
        task, replayed = await tasks.post_message(p, a["session_id"], a["task_id"], a["body"], a["key"])
        return {"task": task.to_doc(), "replayed": replayed}

    async def update_session(p: Principal, a: dict[str, Any]) -> Any:
        return {"session": (await sessions.update(p, a["session_id"], a["body"])).to_doc()}

    async def delete_session(p: Principal, a: dict[str, Any]) -> Any:
        await sessions.delete(p, a["session_id"])
        return {}

    async def restore(p: Principal, a: dict[str, Any]) -> Any:
        doc, replayed = await checkpoints.restore(
            p, a["session_id"], a["task_id"], a["checkpoint_id"], a["body"], a["key"]
        )
        return {"restore": doc, "replayed": replayed}

    async def diff(p: Principal, a: dict[str, Any]) -> Any:
        found = await checkpoints.diff(p, a["session_id"], a["task_id"], a["start"], a["end"], a["as_json"])
        return {"files": found} if a["as_json"] else {"patch": base64.b64encode(found).decode()}

    async def modes(p: Principal, a: dict[str, Any]) -> Any:
        return {"items": await sessions.modes(p, a["session_id"])}

    for op, run in (
        (CREATE_TASK, create_task),
        (CANCEL_TASK, cancel_task),
        (RESPOND, respond),
        (POST_MESSAGE, post_message),
        (UPDATE_SESSION, update_session),
        (DELETE_SESSION, delete_session),
        (RESTORE, restore),
        (DIFF, diff),
        (MODES, modes),
    ):
        handoff.register(op, run)


async def start(
    db: Any, ownership: Any, sessions: Any, tasks: Any, checkpoints: Any, timeout_seconds: float
) -> Handoff:
    """The daemon's hand-off (PostgreSQL): this node serves the ops handed to
    it, and its managers hand on what belongs to other nodes."""
    handoff = Handoff(db, ownership, timeout_seconds)
    serve(handoff, sessions, tasks, checkpoints)
    remote = Remote(handoff, sessions)
    sessions.remote = tasks.remote = checkpoints.remote = remote
    await handoff.start()
    return handoff
