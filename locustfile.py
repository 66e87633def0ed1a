"""Load test for a running roo-daemon (the seed plan's ``test:load``).

One command, against a daemon already listening (``pip install -e '.[load]'``):

    locust -f locustfile.py --headless -u 20 -r 5 -t 1m --host http://127.0.0.1:3000

With API keys configured, export ``ROO_DAEMON_TOKEN`` (a key with the
``read`` and ``write`` scopes). ``ROO_LOAD_PROVIDER`` picks the provider
profile for the tasks (default: the daemon's ``engine.default_provider``;
the built-in ``demo`` script streams text, then asks to write a file, so a
task reaches ``waiting`` in a few milliseconds without any model).

Two kinds of user, weighted 3:1:

- ``RestUser``: creates a session, then repeatedly creates a task, polls it
  until it leaves ``queued``/``running``, lists the session's tasks, and
  cancels it (202 while it waits; 409 if it already finished is fine too).
- ``WebSocketUser``: subscribes to every event it may see and checks that
  ``seq`` strictly increases; now and then it drops the connection and
  resumes with ``after`` = the last ``seq`` it saw, and checks the replay
  continues exactly there. Each live event is reported as a ``WS event``
  request whose response time is its delivery delay (now minus the event's
  ``ts``; only meaningful when locust and the daemon share a clock). Events a
  resume replays were stored before the user subscribed: their age is not a
  delivery delay, so they are counted apart, as ``WS replayed event`` with
  no response time.

Locust exits 1 if any request failed (``--exit-code-on-error``).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any

import websocket  # websocket-client: blocking, made cooperative by locust's gevent
from locust import FastHttpUser, User, between, events, task
from locust.exception import StopUser

TOKEN = os.environ.get("ROO_DAEMON_TOKEN", "")
PROVIDER = os.environ.get("ROO_LOAD_PROVIDER", "")
POLL_INTERVAL_SECONDS = 0.05
POLL_LIMIT = 200  # 10 s: a task that has not left queued/running by then is a failure
SETTLED = {"waiting", "completed", "failed", "cancelled", "interrupted"}


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


class RestUser(FastHttpUser):
    weight = 3
    wait_time = between(0.2, 1.0)
    default_headers = auth_headers()  # sent with every request

    def on_start(self) -> None:
        with self.client.post(
            "/api/v1/sessions", json={"name": "locust"}, name="/api/v1/sessions", catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"create session: {r.status_code} {r.text[:200]}")
                raise StopUser()
            self.session_id = r.json()["id"]

    def on_stop(self) -> None:
        if getattr(self, "session_id", None):
            self.client.delete(f"/api/v1/sessions/{self.session_id}", name="/api/v1/sessions/{session_id}")

    @task(4)
    def task_lifecycle(self) -> None:
        base = f"/api/v1/sessions/{self.session_id}/tasks"
        body: dict[str, Any] = {"prompt": "Create hello.txt"}
        if PROVIDER:
            body["provider"] = PROVIDER
        with self.client.post(base, json=body, name="/api/v1/sessions/{session_id}/tasks", catch_response=True) as r:
            if r.status_code != 202:
                r.failure(f"create task: {r.status_code} {r.text[:200]}")
                return
            task_id = r.json()["id"]
        url = f"{base}/{task_id}"
        name = "/api/v1/sessions/{session_id}/tasks/{task_id}"
        status = "queued"
        for _ in range(POLL_LIMIT):
            with self.client.get(url, name=name, catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"poll: {r.status_code}")
                    return
                status = r.json()["status"]
            if status in SETTLED:
                break
            time.sleep(POLL_INTERVAL_SECONDS)  # polling is the point here; gevent makes it cooperative
        else:
            events.request.fire(
                request_type="TASK",
                name="settles",
                response_time=POLL_LIMIT * POLL_INTERVAL_SECONDS * 1000,
                response_length=0,
                exception=AssertionError(f"task {task_id} still {status} after {POLL_LIMIT} polls"),
                context={},
            )
        self.client.get(f"{base}?limit=20", name="/api/v1/sessions/{session_id}/tasks?limit=20")
        with self.client.delete(url, name=name, catch_response=True) as r:
            if r.status_code == 202 or (r.status_code == 409 and status != "waiting"):
                r.success()
            else:
                r.failure(f"cancel a {status} task: {r.status_code} {r.text[:200]}")

    @task(1)
    def list_sessions(self) -> None:
        self.client.get("/api/v1/sessions?limit=10", name="/api/v1/sessions?limit=10")


def event_time(ts: str) -> float:
    """An event's ``ts`` (RFC 3339, UTC, to the millisecond) as a Unix time."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def delivery_delay_ms(ts: str) -> float:
    """Milliseconds from an event's ``ts`` to now, at least 0."""
    return max(0.0, (time.time() - event_time(ts)) * 1000)


def is_live(ts: str, subscribed_at: float) -> bool:
    """Whether an event was stored after the subscribe was sent (sent live,
    or held back during the replay: both waited on delivery), rather than
    replayed from the log. ``ts`` has millisecond precision: compared at it."""
    return event_time(ts) >= int(subscribed_at * 1000) / 1000


class WebSocketUser(User):
    weight = 1
    wait_time = between(0.0, 0.1)
    RECEIVE_SECONDS = 2.0  # one @task call listens this long

    def on_start(self) -> None:
        self.last_seq = 0
        self.subscribed_at = 0.0  # when the current subscription was asked for
        self.ws: websocket.WebSocket | None = None
        self._connect(after=None)

    def on_stop(self) -> None:
        if self.ws is not None:
            self.ws.close()

    def _fire(self, name: str, started: float, length: int = 0, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    def _connect(self, after: int | None) -> None:
        """Connect and subscribe; with ``after``, the replay must start right after it."""
        url = self.host.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(url, header=[f"{k}: {v}" for k, v in auth_headers().items()], timeout=10)
            frame: dict[str, Any] = {"op": "subscribe", "id": "all"}
            if after is not None:
                frame["after"] = after
            self.subscribed_at = time.time()
            ws.send(json.dumps(frame))
            reply = json.loads(ws.recv())
            if reply.get("event") != "subscribed":
                raise AssertionError(f"subscribe answered {reply}")
        except Exception as e:
            self._fire("subscribe" if after is None else "resubscribe", started, exception=e)
            raise StopUser() from e
        self._fire("subscribe" if after is None else "resubscribe", started)
        ws.settimeout(0.5)
        self.ws = ws

    def _receive(self, seconds: float) -> None:
        assert self.ws is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketConnectionClosedException as e:
                self._fire("connection", started, exception=e)
                self._connect(after=self.last_seq)
                continue
            frame = json.loads(raw)
            seq = frame.get("seq")
            if seq is None:  # a reply, gap or error frame
                if frame.get("event") == "error":
                    self._fire("error frame", started, exception=AssertionError(str(frame)))
                continue
            if seq <= self.last_seq:
                error = AssertionError(f"seq went backwards or repeated: {seq} after {self.last_seq}")
                self._fire("seq order", started, exception=error)
            self.last_seq = max(self.last_seq, seq)
            live = is_live(frame["ts"], self.subscribed_at)
            self.environment.events.request.fire(
                request_type="WS",
                name="event" if live else "replayed event",
                response_time=delivery_delay_ms(frame["ts"]) if live else 0,
                response_length=len(raw),
                exception=None,
                context={},
            )

    @task(5)
    def listen(self) -> None:
        self._receive(self.RECEIVE_SECONDS)

    @task(1)
    def reconnect_and_resume(self) -> None:
        """Drop the connection and resume from the last seq seen: the replay
        must continue with no gap in order and no duplicate."""
        assert self.ws is not None
        self.ws.close()
        self._connect(after=self.last_seq)
        self._receive(self.RECEIVE_SECONDS / 2)
