"""REST handlers for a task's checkpoints: list, diff, restore."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler
from roo_daemon.sessions.handlers import replay_headers


class CheckpointsHandler(ApiHandler):
    operations = {"GET": "listCheckpoints"}

    async def get(self, session_id: str, task_id: str) -> None:
        page = await self.ctx.checkpoints.list(
            self.principal, session_id, task_id, self.params["limit"], self.params.get("cursor")
        )
        self.send_json(page)


class CheckpointDiffHandler(ApiHandler):
    operations = {"GET": "getCheckpointDiff"}

    async def get(self, session_id: str, task_id: str) -> None:
        as_json = wants_json(self.request.headers.get("Accept", ""))
        diff = await self.ctx.checkpoints.diff(
            self.principal, session_id, task_id, self.params.get("from"), self.params.get("to"), as_json
        )
        if as_json:
            self.send_json({"files": diff})
            return
        self.set_header("Content-Type", "text/x-diff; charset=utf-8")
        self.finish(diff)


class CheckpointRestoreHandler(ApiHandler):
    operations = {"POST": "restoreCheckpoint"}

    async def post(self, session_id: str, task_id: str, checkpoint_id: str) -> None:
        doc, replayed = await self.ctx.checkpoints.restore(
            self.principal,
            session_id,
            task_id,
            checkpoint_id,
            self.json_body(),
            self.params.get("Idempotency-Key"),
        )
        self.send_json(doc, 200, replay_headers(replayed))


def wants_json(accept: str) -> bool:
    """JSON when the client asks for it ahead of (or without) ``text/x-diff``;
    the unified diff otherwise."""
    media = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for m in media:
        if m in ("text/x-diff", "text/plain", "text/*"):
            return False
        if m == "application/json":
            return True
    return False
