"""A small async client for roo-daemon, on Tornado's HTTP and WebSocket clients.

The ``roo-daemon run | tasks | attach | approve | deny | answer | continue
| watch`` commands are built on it; programs that drive the daemon can use it
too::

    from roo_daemon.client import ClientError, DaemonClient

    async with DaemonClient("http://127.0.0.1:3000", token) as daemon:
        session = await daemon.create_session(auto_approve={"read_only": True})
        task = await daemon.create_task(session["id"], "Create hello.txt")
        async with daemon.events(task_id=task["id"], after=0) as events:
            async for event in events:  # reconnects and resumes by itself
                if event["event"] == "ask":
                    await daemon.respond(session["id"], task["id"], event["data"]["id"], True)
                elif event["event"] in ("task.completed", "task.failed", "task.cancelled"):
                    break

Every failure is a :class:`ClientError` carrying the daemon's problem+json.
"""

from roo_daemon.client.api import FINAL, DaemonClient
from roo_daemon.client.endpoint import Endpoint, EndpointError, resolve
from roo_daemon.client.errors import ClientError
from roo_daemon.client.events import EventStream

__all__ = ["FINAL", "ClientError", "DaemonClient", "Endpoint", "EndpointError", "EventStream", "resolve"]
