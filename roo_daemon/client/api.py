"""``DaemonClient``: the daemon's REST API as async methods, on Tornado's
``AsyncHTTPClient``.

Every method returns the JSON document the contract (``openapi.yaml``)
describes, as plain dicts, or raises :class:`ClientError`. The event
stream is :meth:`DaemonClient.events` (see ``events.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from roo_daemon.client.endpoint import Endpoint
from roo_daemon.client.errors import ClientError
from roo_daemon.client.events import EventStream

API = "/api/v1"
STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled", "interrupted")  # TaskStatus
FINAL = frozenset(STATUSES[3:])
_LOOKUP_BATCH = 8  # sessions searched at once for a task id


def _q(value: str) -> str:
    return quote(value, safe="")


class DaemonClient:
    """One daemon, one key. Use as ``async with DaemonClient(url, token) as c:``
    or call :meth:`close` when done."""

    def __init__(self, url: str | Endpoint = "http://127.0.0.1:3000", token: str | None = None, *, timeout: float = 60):
        self.endpoint = url if isinstance(url, Endpoint) else Endpoint.parse(url, token)
        self.timeout = timeout
        self._http = AsyncHTTPClient(force_instance=True)

    async def __aenter__(self) -> DaemonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.endpoint.token}"} if self.endpoint.token else {}

    # -- transport ----------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call; the decoded JSON body (None for 204)."""
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.endpoint.url(path) + (f"?{urlencode(query)}" if query else "")
        all_headers = {**self.headers(), **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        req = HTTPRequest(
            url,
            method=method,
            headers=all_headers,
            body=json.dumps(body) if body is not None else None,
            request_timeout=self.timeout,
            connect_timeout=min(self.timeout, 10),
        )
        try:
            resp = await self._http.fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as e:  # refused, no such host, TLS
            raise ClientError.unreachable(self.endpoint.base, e) from None
        if resp.code == 599:  # no HTTP answer: timeout or a dropped connection
            raise ClientError.unreachable(self.endpoint.base, resp.error or Exception("no answer"))
        if resp.code >= 400:
            ctype = resp.headers.get("Content-Type", "")
            raise ClientError.from_response(method, url, resp.code, ctype, resp.body or b"")
        if resp.code == 204 or not resp.body:
            return None
        try:
            return json.loads(resp.body)
        except ValueError:
            raise ClientError(f"{method} {url} answered {resp.code} with a body that is not JSON") from None

    async def pages(self, path: str, query: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paginated list."""
        query = {**(query or {}), "limit": 200}
        while True:
            page = await self.request("GET", path, query=query)
            for item in page["items"]:
                yield item
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    # -- sessions -------------------------------------------------------------

    async def create_session(self, *, idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
        """``fields``: ``name``, ``workspace``, ``mode``, ``provider``, ``auto_approve``, ``metadata``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self.request("POST", f"{API}/sessions", body=fields, headers=headers)

    async def get_session(self, session_id: str) -> dict[str, Any]:
        return await self.request("GET", f"{API}/sessions/{_q(session_id)}")

    def sessions(self) -> AsyncIterator[dict[str, Any]]:
        return self.pages(f"{API}/sessions")

    async def delete_session(self, session_id: str) -> None:
        await self.request("DELETE", f"{API}/sessions/{_q(session_id)}")

    # -- tasks ----------------------------------------------------------------

    def _task_path(self, session_id: str, task_id: str, tail: str = "") -> str:
        return f"{API}/sessions/{_q(session_id)}/tasks/{_q(task_id)}{tail}"

    async def create_task(
        self, session_id: str, prompt: str, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Queue a task; ``fields``: ``mode``, ``provider``, ``images``, ``limits``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"prompt": prompt, **fields}
        return await self.request("POST", f"{API}/sessions/{_q(session_id)}/tasks", body=body, headers=headers)

    async def get_task(self, session_id: str, task_id: str) -> dict[str, Any]:
        return await self.request("GET", self._task_path(session_id, task_id))

    def tasks(self, session_id: str, status: str | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.pages(f"{API}/sessions/{_q(session_id)}/tasks", {"status": status})

    def all_tasks(self, status: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """The tasks of every session the key can see, newest first: one
        paged list (``GET /api/v1/tasks``), not a request per session."""
        return self.pages(f"{API}/tasks", {"status": status})

    async def find_task(self, task_id: str) -> dict[str, Any]:
        """A task by its id alone: the API addresses tasks under their
        session, so this asks each visible session in turn (a few at once)."""
        batch: list[str] = []

        async def look() -> dict[str, Any] | None:
            found = await asyncio.gather(*(self._task_or_none(s, task_id) for s in batch))
            return next((t for t in found if t is not None), None)

        async for session in self.sessions():
            batch.append(session["id"])
            if len(batch) == _LOOKUP_BATCH:
                if (task := await look()) is not None:
                    return task
                batch = []
        if batch and (task := await look()) is not None:
            return task
        raise ClientError(f"no task {task_id} in any session this key can see", status=404)

    async def _task_or_none(self, session_id: str, task_id: str) -> dict[str, Any] | None:
        try:
            return await self.get_task(session_id, task_id)
        except ClientError as e:
            if e.status == 404:
                return None
            raise

    async def cancel_task(self, session_id: str, task_id: str) -> dict[str, Any]:
        return await self.request("DELETE", self._task_path(session_id, task_id))

    async def respond(
        self, session_id: str, task_id: str, ask_id: str, approve: bool, text: str | None = None
    ) -> dict[str, Any]:
        """Answer the pending ask ``ask_id`` (approve or reject, with feedback)."""
        body: dict[str, Any] = {"ask_id": ask_id, "approve": approve}
        if text is not None:
            body["text"] = text
        return await self.request("POST", self._task_path(session_id, task_id, "/responses"), body=body)

    async def pending_ask(self, session_id: str, task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task and its pending ask; a task with none is a 409-like error."""
        task = await self.get_task(session_id, task_id)
        if task.get("pending_ask") is None:
            raise ClientError(f"task {task_id} has no pending ask (status {task['status']})", status=409)
        return task, task["pending_ask"]

    async def answer(self, session_id: str, task_id: str, text: str) -> dict[str, Any]:
        """Answer the task's pending ask with ``text`` (a followup question's answer)."""
        _, ask = await self.pending_ask(session_id, task_id)
        return await self.respond(session_id, task_id, ask["id"], True, text)

    async def continue_task(
        self,
        session_id: str,
        task_id: str,
        text: str,
        images: list[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send the task a new user message: a finished task runs again from
        its conversation; a running one gets it at its next turn."""
        body: dict[str, Any] = {"text": text}
        if images:
            body["images"] = images
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self.request("POST", self._task_path(session_id, task_id, "/messages"), body=body, headers=headers)

    async def task_events(self, session_id: str, task_id: str, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the task's stored events (``items``, ``next_after``, ``has_more``)."""
        return await self.request(
            "GET", self._task_path(session_id, task_id, "/events"), query={"after": after, "limit": limit}
        )

    async def first_seq(self, session_id: str, task_id: str) -> int | None:
        """The seq of the task's first stored event (its ``task.created``)."""
        page = await self.task_events(session_id, task_id, 0, 1)
        return page["items"][0]["seq"] if page["items"] else None

    # -- events ---------------------------------------------------------------

    def events(
        self, *, session_id: str | None = None, task_id: str | None = None, after: int | None = None
    ) -> EventStream:
        """The event stream (``async with client.events(...) as stream: async for event in stream``)."""
        return EventStream(self.endpoint, session_id=session_id, task_id=task_id, after=after)
