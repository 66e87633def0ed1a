"""``roo-daemon watch``: follow the event stream from a terminal.

A thin WebSocket client: subscribe (optionally to one session or task, and
from ``--after``), print each frame as one JSON line, stop on Ctrl-C or when
``--until`` names an event that arrives.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def watch(
    url: str,
    session_id: str | None,
    task_id: str | None,
    after: int | None,
    token: str | None,
    until: str | None,
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = await websocket_connect(HTTPRequest(url, headers=headers))
    sub: dict = {"op": "subscribe", "id": "watch"}
    for key, value in (("session_id", session_id), ("task_id", task_id), ("after", after)):
        if value is not None:
            sub[key] = value
    await conn.write_message(json.dumps(sub))
    while True:
        frame = await conn.read_message()
        if frame is None:
            print(f"connection closed ({conn.close_code} {conn.close_reason or ''})".strip(), file=sys.stderr)
            return 0 if conn.close_code in (1000, 1001) else 1
        print(frame, flush=True)
        if until and json.loads(frame).get("event") in until.split(","):
            conn.close()
            return 0


def run(args: object) -> int:
    token = getattr(args, "token", None) or os.environ.get("ROO_DAEMON_TOKEN")
    try:
        return asyncio.run(
            watch(args.url, args.session, args.task, args.after, token, args.until)  # type: ignore[attr-defined]
        )
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"roo-daemon watch: cannot connect to {args.url}: {e}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
