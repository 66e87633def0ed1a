"""REST handlers for sessions: parse, call the manager, answer."""

from __future__ import annotations

from collections.abc import Awaitable

from roo_daemon.api.base import ApiHandler


def replay_headers(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


class SessionsHandler(ApiHandler):
    operations = {"POST": "createSession", "GET": "listSessions"}

    async def post(self) -> None:
        session, replayed = await self.ctx.sessions.create(
            self.principal, self.json_body(), self.params.get("Idempotency-Key")
        )
        headers = {"Location": f"/api/v1/sessions/{session.id}", **replay_headers(replayed)}
        self.send_json(session.to_resource(), 201, headers)

    async def get(self) -> None:
        items, cursor = await self.ctx.sessions.list(self.principal, self.params["limit"], self.params.get("cursor"))
        self.send_json({"items": [s.to_resource() for s in items], "next_cursor": cursor})


class SessionHandler(ApiHandler):
    operations = {"GET": "getSession", "PATCH": "updateSession", "DELETE": "deleteSession"}

    def get(self, session_id: str) -> Awaitable[None] | None:
        session = self.ctx.sessions.visible_now(self.principal, session_id)
        if session is None:  # several nodes: perhaps created on another a moment ago
            return self._get_stored(session_id)
        self.send_json(session.resource_json)
        return None

    async def _get_stored(self, session_id: str) -> None:
        self.send_json((await self.ctx.sessions.visible(self.principal, session_id)).resource_json)

    async def patch(self, session_id: str) -> None:
        session = await self.ctx.sessions.update(self.principal, session_id, self.json_body())
        self.send_json(session.resource_json)

    async def delete(self, session_id: str) -> None:
        await self.ctx.sessions.delete(self.principal, session_id)
        self.set_status(204)
        self.finish()
