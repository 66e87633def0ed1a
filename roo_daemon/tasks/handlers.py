"""REST handlers for tasks, their asks and their event pages."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler
from roo_daemon.sessions.handlers import replay_headers


class TasksHandler(ApiHandler):
    operations = {"POST": "createTask", "GET": "listTasks"}
    rate_classes = {"POST": "task_create"}

    async def post(self, session_id: str) -> None:
        task, replayed = await self.ctx.tasks.create(
            self.principal, session_id, self.json_body(), self.params.get("Idempotency-Key")
        )
        headers = {"Location": f"/api/v1/sessions/{session_id}/tasks/{task.id}", **replay_headers(replayed)}
        self.send_json(task.to_resource(), 202, headers)

    async def get(self, session_id: str) -> None:
        p = self.params
        items, cursor = await self.ctx.tasks.list(
            self.principal, session_id, p["limit"], p.get("cursor"), p.get("status")
        )
        self.send_json({"items": [t.to_resource() for t in items], "next_cursor": cursor})


class AllTasksHandler(ApiHandler):
    operations = {"GET": "listAllTasks"}

    async def get(self) -> None:
        p = self.params
        items, cursor = await self.ctx.tasks.list_all(
            self.principal, p.get("session_id"), p.get("status"), p["limit"], p.get("cursor")
        )
        self.send_json({"items": [t.to_resource() for t in items], "next_cursor": cursor})


class TaskHandler(ApiHandler):
    operations = {"GET": "getTask", "DELETE": "cancelTask"}

    async def get(self, session_id: str, task_id: str) -> None:
        task = await self.ctx.tasks.get(self.principal, session_id, task_id)
        self.send_json(task.to_resource())

    async def delete(self, session_id: str, task_id: str) -> None:
        task = await self.ctx.tasks.cancel(self.principal, session_id, task_id)
        self.send_json(task.to_resource(), 202)


class TaskResponsesHandler(ApiHandler):
    operations = {"POST": "respondToAsk"}

    async def post(self, session_id: str, task_id: str) -> None:
        body = self.json_body()
        task = await self.ctx.tasks.respond(
            self.principal,
            session_id,
            task_id,
            body["ask_id"],
            body["approve"],
            body.get("text"),
            body.get("images"),
            suggestion=body.get("suggestion"),
        )
        self.send_json(task.to_resource())


class TaskEventsHandler(ApiHandler):
    operations = {"GET": "listTaskEvents"}

    async def get(self, session_id: str, task_id: str) -> None:
        page = await self.ctx.tasks.event_page(
            self.principal, session_id, task_id, self.params["after"], self.params["limit"]
        )
        self.send_json(page)


class TaskMessagesHandler(ApiHandler):
    operations = {"GET": "listTaskMessages", "POST": "postTaskMessage"}

    async def get(self, session_id: str, task_id: str) -> None:
        page = await self.ctx.tasks.message_page(
            self.principal, session_id, task_id, self.params["after"], self.params["limit"]
        )
        self.send_json(page)

    async def post(self, session_id: str, task_id: str) -> None:
        task, replayed = await self.ctx.tasks.post_message(
            self.principal, session_id, task_id, self.json_body(), self.params.get("Idempotency-Key")
        )
        self.send_json(task.to_resource(), 202, replay_headers(replayed))
