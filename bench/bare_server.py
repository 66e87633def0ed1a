"""The baseline: a bare Tornado handler answering a session-sized JSON body,
with nothing of ours in front of it (no auth, validation, metrics or logs)."""

import asyncio
import json
import sys

import tornado.web

BODY = {
    "id": "ses_0123456789abcdef0123456789abcdef",
    "name": "bench",
    "workspace": "/var/lib/roo-daemon/workspaces/ses_0123456789abcdef0123456789abcdef",
    "workspace_managed": True,
    "mode": "code",
    "provider": "demo",
    "provider_kind": "scripted",
    "auto_approve": {
        "read_only": False,
        "write": False,
        "execute": False,
        "allowed_commands": [],
        "denied_commands": [],
        "mode_switch": False,
        "subtasks": False,
    },
    "metadata": {},
    "created_at": "2026-11-26T00:00:00.000Z",
}


BODY_BYTES = json.dumps(BODY).encode()


class Bare(tornado.web.RequestHandler):
    def get(self, session_id: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(BODY_BYTES)


async def main() -> None:
    app = tornado.web.Application([(r"/api/v1/sessions/([^/]+)", Bare)], log_function=lambda h: None)
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
