"""``roo-daemon watch``: follow the event stream from a terminal.

Subscribes (optionally to one session or task, and from ``--after``) through
the client library's :class:`~roo_daemon.client.EventStream`, so a dropped
connection resumes where it left off, and prints each event as one JSON
line. ``--until`` names events that end it; only live ones count, not the
history replayed by ``--after`` (stderr says when the replay is over).
Failures are one line on stderr: exit 2 when the daemon refused (a key,
an id, a URL that is not its), 1 when it could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable

from roo_daemon.client import ClientError, Endpoint, EndpointError, EventStream, resolve

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_command(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    watch = sub.add_parser("watch", parents=parents, help="print the event stream as JSON lines")
    watch.add_argument("--session", help="only this session's events")
    watch.add_argument("--task", help="only this task's events")
    watch.add_argument("--after", type=int, help="replay stored events with seq > AFTER first")
    watch.add_argument("--until", help="exit after a live event of this name (comma-separated names)")


async def watch(stream: EventStream, until: set[str]) -> int:
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, lambda: stopped.done() or stopped.set_result(None))
    reading = asyncio.ensure_future(_print(stream, until))
    try:
        await asyncio.wait([reading, stopped], return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            reading.result()  # raises what went wrong
        return EXIT_OK
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        reading.cancel()
        stream.close()


def _say_live(after: int | None) -> Callable[[], None] | None:
    if after is None:
        return None  # nothing is replayed: every event is live
    return lambda: print("roo-daemon watch: the replay is over; live events follow", file=sys.stderr, flush=True)


async def _print(stream: EventStream, until: set[str]) -> None:
    await stream.start()
    async for event in stream:
        print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)
        if stream.live and event.get("event") in until:
            return


def run(args: argparse.Namespace) -> int:
    from roo_daemon.config import ConfigError

    try:
        endpoint: Endpoint = resolve(args.url, args.token, args.config)
    except (EndpointError, ConfigError) as e:
        print(f"roo-daemon watch: {e}", file=sys.stderr)
        return EXIT_USAGE
    stream = EventStream(
        endpoint, session_id=args.session, task_id=args.task, after=args.after, on_live=_say_live(args.after)
    )
    until = {name.strip() for name in (args.until or "").split(",") if name.strip()}
    try:
        return asyncio.run(watch(stream, until))
    except ClientError as e:
        print(f"roo-daemon watch: {e}", file=sys.stderr)
        return EXIT_USAGE if e.is_client_side else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        from roo_daemon.client.commands import quiet_broken_pipe

        return quiet_broken_pipe()
