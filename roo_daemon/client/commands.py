"""The client commands: ``run``, ``tasks``, ``attach``, ``approve``, ``deny``,
``answer``, ``continue`` (``watch`` is in ``roo_daemon/watch.py``).

Exit statuses, for scripts and CI: 0 the task completed (or the command did
what it said), 1 the task failed or the daemon could not be reached or
failed (5xx), 2 a usage or configuration error (bad flags or URL, a refused
key, an unknown id, a request the daemon refused with a 4xx), 3 the task
was cancelled or interrupted (or Ctrl-C), 4 the task waits for an answer
and ``--no-input`` (or the end of input) says nobody will give one. Every
error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from roo_daemon.client.api import STATUSES, DaemonClient
from roo_daemon.client.endpoint import Endpoint, EndpointError, resolve
from roo_daemon.client.errors import ClientError
from roo_daemon.client.follow import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Follower, FollowOptions
from roo_daemon.client.render import shorten

Command = Callable[[DaemonClient, argparse.Namespace, TextIO, TextIO], Awaitable[int]]


class UsageError(Exception):
    """Flags that contradict each other or the daemon's state: exit 2."""


def connection_flags() -> argparse.ArgumentParser:
    """``--url``, ``--token``, ``--config``: shared by every client command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", help="the daemon (default: $ROO_DAEMON_URL, else server.host/port of the local config)")
    p.add_argument("--token", help="API key (default: $ROO_DAEMON_TOKEN)")
    p.add_argument("--config", help="the local daemon config to take host and port from (default: $ROO_DAEMON_CONFIG)")
    return p


def _follow_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print each event as one JSON line instead of a transcript")
    p.add_argument("--yes", action="store_true", help="approve every tool and command the agent asks to run")
    p.add_argument("--no-input", action="store_true", help="never prompt: exit 4 when the task waits for an answer")
    p.add_argument("--follow", action="store_true", help="keep following after the task ends (continuations)")


def add_commands(sub: Any) -> None:
    conn = connection_flags()
    run = sub.add_parser("run", parents=[conn], help="run a task and stream its transcript")
    run.add_argument("prompt", help="what the agent should do")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--session", help="an existing session to run in")
    where.add_argument("--workspace", help="a directory for a new session (under workspaces.roots)")
    run.add_argument("--mode", help="agent mode (code, architect, ask, debug, orchestrator, or custom)")
    run.add_argument("--provider", help="provider profile name")
    _follow_flags(run)
    run.add_argument("--approve-reads", action="store_true", help="a new session auto-approves read-only tools")

    tasks = sub.add_parser("tasks", parents=[conn], help="list tasks (all sessions, newest first)")
    tasks.add_argument("--status", choices=STATUSES, help="only tasks with this status (e.g. waiting)")
    tasks.add_argument("--session", help="only this session's tasks")
    tasks.add_argument("--json", action="store_true", help="one task JSON object per line")

    attach = sub.add_parser("attach", parents=[conn], help="show a task's transcript and follow it")
    attach.add_argument("task")
    attach.add_argument("--session", help="the task's session (saves looking it up)")
    _follow_flags(attach)

    for verb, what in (("approve", "approve"), ("deny", "reject")):
        p = sub.add_parser(verb, parents=[conn], help=f"{what} a task's pending ask")
        p.add_argument("task")
        p.add_argument("--text", help="feedback or guidance the model sees")
        p.add_argument("--session", help="the task's session (saves looking it up)")

    answer = sub.add_parser("answer", parents=[conn], help="answer a task's pending question")
    answer.add_argument("task")
    answer.add_argument("text")
    answer.add_argument("--session", help="the task's session (saves looking it up)")

    cont = sub.add_parser("continue", parents=[conn], help="send a task a new message and follow it")
    cont.add_argument("task")
    cont.add_argument("text")
    cont.add_argument("--session", help="the task's session (saves looking it up)")
    cont.add_argument("--detach", action="store_true", help="send the message and return at once")
    _follow_flags(cont)


def main(args: argparse.Namespace) -> int:
    """Run one client command with the shared error handling."""
    name = f"roo-daemon {args.command}"
    from roo_daemon.config import ConfigError

    if args.command == "run" and args.yes and args.approve_reads:
        return _error(name, "--yes already approves reads; give one of --yes and --approve-reads")
    try:
        endpoint = resolve(args.url, args.token, args.config)
    except EndpointError as e:
        return _error(name, str(e))
    except ConfigError as e:
        return _error(name, f"configuration error: {e}")
    return execute(name, COMMANDS[args.command], endpoint, args)


def execute(name: str, command: Command, endpoint: Endpoint, args: argparse.Namespace) -> int:
    async def go() -> int:
        async with DaemonClient(endpoint) as client:
            return await command(client, args, sys.stdout, sys.stderr)

    try:
        return asyncio.run(go())
    except UsageError as e:
        return _error(name, str(e))
    except ClientError as e:
        return _error(name, str(e), EXIT_USAGE if e.is_client_side else EXIT_FAILED)
    except KeyboardInterrupt:  # before the follower took over Ctrl-C
        return EXIT_CANCELLED
    except BrokenPipeError:
        return quiet_broken_pipe()


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (``| head``): stop without a word. The
    interpreter's last flush must not fail on the same pipe."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_FAILED


def _error(name: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{name}: {message}", file=sys.stderr)
    return code


def _options(args: argparse.Namespace, **extra: Any) -> FollowOptions:
    return FollowOptions(json=args.json, yes=args.yes, no_input=args.no_input, follow=args.follow, **extra)


async def _locate(client: DaemonClient, args: argparse.Namespace) -> dict[str, Any]:
    if args.session:
        return await client.get_task(args.session, args.task)
    return await client.find_task(args.task)


async def _follow_from_start(
    client: DaemonClient, task: dict[str, Any], opts: FollowOptions, out: TextIO, err: TextIO
) -> int:
    """Follow a task from its first event: the session's stream (subtasks
    are tasks of the same session), replayed from just before the task."""
    sid, tid = task["session_id"], task["id"]
    first = await client.first_seq(sid, tid)
    stream = client.events(session_id=sid, after=(first - 1) if first else 0)
    await stream.start()
    return await Follower(client, sid, tid, opts, out, err).follow(stream)


async def cmd_run(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    task_fields = {k: v for k, v in (("mode", args.mode), ("provider", args.provider)) if v}
    if args.session:
        if args.approve_reads:
            raise UsageError("--approve-reads sets a new session's policy; the session given keeps its own")
        session = await client.get_session(args.session)
    else:
        policy: dict[str, Any] = {}
        if args.approve_reads:
            policy = {"read_only": True}
        elif args.yes:
            policy = {
                "read_only": True,
                "write": True,
                "execute": True,
                "allowed_commands": ["*"],  # Roo: execute approves only what the allow list names
                "mode_switch": True,
                "subtasks": True,
            }
        fields: dict[str, Any] = {"name": shorten(args.prompt, 60), **task_fields}
        if args.workspace:
            fields["workspace"] = os.path.abspath(args.workspace)
        if policy:
            fields["auto_approve"] = policy
        session = await client.create_session(**fields)
        task_fields = {}
    task = await client.create_task(session["id"], args.prompt, **task_fields)
    err.write(f"task {task['id']} in session {session['id']} ({session['workspace']})\n")
    return await _follow_from_start(client, task, _options(args), out, err)


async def cmd_attach(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    task = await _locate(client, args)
    return await _follow_from_start(client, task, _options(args, cancel_on_interrupt=False), out, err)


async def cmd_continue(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    task = await _locate(client, args)
    sid, tid = task["session_id"], task["id"]
    # Subscribed before sending: every event of the continuation is live.
    stream = client.events(session_id=sid)
    await stream.start()
    try:
        sent = await client.continue_task(sid, tid, args.text)
    except BaseException:
        stream.close()
        raise
    if args.detach:
        stream.close()
        out.write(f"task {tid}: message sent (status {sent['status']})\n")
        return EXIT_OK
    return await Follower(client, sid, tid, _options(args), out, err).follow(stream)


async def cmd_tasks(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    found = client.tasks(args.session, args.status) if args.session else client.all_tasks(args.status)
    rows = []
    async for task in found:
        if args.json:
            out.write(json.dumps(task, ensure_ascii=False, separators=(",", ":")) + "\n")
            continue
        ask = task.get("pending_ask")
        what = f"asks {ask['kind']}: {_ask_line(ask)}" if ask else task["prompt"]
        rows.append((task["id"], task["status"], task["session_id"], task["created_at"][:19], shorten(what, 60)))
    if not args.json:
        if not rows:
            err.write("no tasks\n")
            return EXIT_OK
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4] + "\n")
    return EXIT_OK


def _ask_line(ask: dict[str, Any]) -> str:
    return str(ask.get("command") or ask.get("question") or ask.get("tool") or ask.get("message") or "")


async def _respond(client: DaemonClient, args: argparse.Namespace, out: TextIO, approve: bool, text: str | None) -> int:
    task = await _locate(client, args)
    sid, tid = task["session_id"], task["id"]
    _, ask = await client.pending_ask(sid, tid)
    if ask["kind"] == "followup" and approve and not text:
        raise UsageError(f"task {tid} asks a question: roo-daemon answer {tid} TEXT")
    await client.respond(sid, tid, ask["id"], approve, text)
    verb = "answered" if args.command == "answer" else "approved" if approve else "denied"
    out.write(f"{verb} the {ask['kind']} ask of task {tid}\n")
    return EXIT_OK


async def cmd_approve(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _respond(client, args, out, True, args.text)


async def cmd_deny(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _respond(client, args, out, False, args.text)


async def cmd_answer(client: DaemonClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _respond(client, args, out, True, args.text)


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "tasks": cmd_tasks,
    "attach": cmd_attach,
    "continue": cmd_continue,
    "approve": cmd_approve,
    "deny": cmd_deny,
    "answer": cmd_answer,
}
