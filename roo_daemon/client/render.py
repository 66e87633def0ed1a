"""The human-readable transcript of a task, from its events.

Assistant text is written as it streams; tool calls are one line with their
arguments shortened; a proposed edit shows its diff (coloured only when the
output is a terminal and ``NO_COLOR`` is unset); a subtask's lines carry
its label. ``--json`` bypasses all this: each event is printed as it came.
"""

from __future__ import annotations

import json
import os
from typing import Any, TextIO

# Shown by the ask, the answer or the final line instead of a tool line of their own.
_QUIET_TOOLS = {"attempt_completion", "ask_followup_question"}
ARG_CHARS = 48
LINE_CHARS = 160


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters; says how much was cut."""
    lines = text.splitlines() or [""]
    first = lines[0]
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    if len(first) > limit:
        first = first[: limit - 1] + "…"
    return first + more


def short_args(args: dict[str, Any]) -> str:
    parts = []
    for key, value in args.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shorten(text, ARG_CHARS)}")
    return shorten(", ".join(parts), LINE_CHARS)


class Style:
    def __init__(self, on: bool) -> None:
        self.on = on

    def _sgr(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def red(self, text: str) -> str:
        return self._sgr("31", text)

    def green(self, text: str) -> str:
        return self._sgr("32", text)

    def yellow(self, text: str) -> str:
        return self._sgr("33", text)

    def cyan(self, text: str) -> str:
        return self._sgr("36", text)

    def diff(self, text: str) -> str:
        out = []
        for line in text.splitlines():
            if line.startswith(("+++", "---")):
                out.append(self.bold(line))
            elif line.startswith("+"):
                out.append(self.green(line))
            elif line.startswith("-"):
                out.append(self.red(line))
            elif line.startswith("@@"):
                out.append(self.cyan(line))
            else:
                out.append(line)
        return "\n".join(out)


class Transcript:
    """Writes events of a task tree to ``out``. ``label(task_id)`` is the
    prefix of a subtask's lines ("" for the task being followed)."""

    def __init__(self, out: TextIO, color: bool | None = None) -> None:
        self.out = out
        self.style = Style(use_color(out) if color is None else color)
        self.labels: dict[str, str] = {}
        self._at_start = True
        self._line_owner: str | None = None
        self._streamed: set[str] = set()  # tasks whose current message was streamed as deltas
        self._thinking: set[str] = set()  # tasks whose model is streaming its reasoning
        self.usage: dict[str, Any] = {}

    # -- output primitives ----------------------------------------------------

    def _write(self, task_id: str, text: str) -> None:
        """Text that may stop mid-line (streamed deltas, command output)."""
        if not text:
            return
        if not self._at_start and self._line_owner != task_id:
            self.out.write("\n")
            self._at_start = True
        prefix = self.labels.get(task_id, "")
        for piece in text.splitlines(keepends=True):
            if self._at_start and prefix:
                self.out.write(self.style.dim(prefix))
            self.out.write(piece)
            self._at_start = piece.endswith("\n")
        self._line_owner = task_id
        self.out.flush()

    def line(self, task_id: str, text: str) -> None:
        """Whole lines, starting on a fresh one."""
        if not self._at_start:
            self.out.write("\n")
            self._at_start = True
        self._write(task_id, text + "\n")

    # -- events -----------------------------------------------------------------

    def event(self, ev: dict[str, Any]) -> None:
        name = ev.get("event", "")
        tid = ev.get("task_id") or ""
        if tid in self._thinking and name != "message.reasoning":
            self._thinking.discard(tid)  # the reasoning ended: what follows starts on its own line
            if not self._at_start and self._line_owner == tid:
                self._write(tid, "\n")
        handler = getattr(self, "_on_" + name.replace(".", "_"), None)
        if handler is not None:
            handler(ev.get("task_id") or "", ev.get("data") or {})

    def _on_task_created(self, tid: str, data: dict[str, Any]) -> None:
        parent = data.get("parent_task_id")
        if parent:  # only subtasks, said by their parent: the followed task's prompt is the user's own
            text = f"subtask {tid} ({data.get('mode')}): {shorten(data.get('prompt', ''), 100)}"
            self.line(parent, self.style.cyan(text))

    def _on_message_delta(self, tid: str, data: dict[str, Any]) -> None:
        self._streamed.add(tid)
        self._write(tid, data.get("text", ""))

    def _on_message_reasoning(self, tid: str, data: dict[str, Any]) -> None:
        """The model's thinking, dim, after a ``thinking:`` label, before its answer."""
        text = data.get("text", "")
        if tid not in self._thinking:
            self._thinking.add(tid)
            if not self._at_start:
                self._write(tid, "\n")
            text = "thinking: " + text
        self._write(tid, self.style.dim(text))

    def _on_message(self, tid: str, data: dict[str, Any]) -> None:
        if tid not in self._streamed and data.get("text"):
            self._write(tid, data["text"])
        self._streamed.discard(tid)
        if not self._at_start:
            self._write(tid, "\n")

    def _on_message_reset(self, tid: str, data: dict[str, Any]) -> None:
        self._streamed.discard(tid)
        self.line(tid, self.style.dim("(the model's stream broke; the turn starts over)"))

    def _on_message_user(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.bold("you: ") + shorten(data.get("text", ""), LINE_CHARS))

    def _on_message_queued(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.dim("(the message waits for the task's next turn)"))

    def _on_context_condensed(self, tid: str, data: dict[str, Any]) -> None:
        before, after = data.get("tokens_before"), data.get("tokens_after")
        self.line(tid, self.style.dim(f"(older turns were summarised: {before} → {after} tokens)"))

    def _on_tool_call(self, tid: str, data: dict[str, Any]) -> None:
        if data.get("tool") not in _QUIET_TOOLS:
            self.line(tid, self.style.bold(f"▸ {data.get('tool')}") + f"({short_args(data.get('args') or {})})")

    def _on_tool_output(self, tid: str, data: dict[str, Any]) -> None:
        self._write(tid, self.style.dim(data.get("text", "")))

    def _on_tool_result(self, tid: str, data: dict[str, Any]) -> None:
        if data.get("tool") in _QUIET_TOOLS:
            return
        content = shorten(str(data.get("content", "")), LINE_CHARS - 4)
        if data.get("is_error"):
            self.line(tid, self.style.red(f"  ✗ {content}"))
        else:
            self.line(tid, self.style.dim(f"  ✓ {content}"))

    def _on_ask(self, tid: str, data: dict[str, Any]) -> None:
        kind = data.get("kind")
        st = self.style
        if kind == "command":
            cwd = data.get("cwd")
            self.line(tid, st.yellow("? run: ") + data.get("command", "") + (f"  (in {cwd})" if cwd else ""))
        elif kind == "tool":
            self.line(tid, st.yellow(f"? approve {data.get('tool')}"))  # its arguments are on the call's line
            if data.get("diff"):
                self.line(tid, st.diff(data["diff"].rstrip("\n")))
        elif kind == "followup":
            self.line(tid, st.yellow("? ") + data.get("question", ""))
            for i, suggestion in enumerate(data.get("suggestions") or [], 1):
                self.line(tid, f"  {i}. {suggestion}")
        elif kind == "subtask":
            self.line(tid, st.dim(f"… waiting for subtask {data.get('task_id')} ({data.get('mode')})"))
        else:  # mistake_limit, limit_reached, resume, and kinds newer than this client
            self.line(tid, st.yellow(f"? {kind}: ") + str(data.get("message", "")))

    def _on_ask_answered(self, tid: str, data: dict[str, Any]) -> None:
        if data.get("kind") == "subtask":
            return
        text = data.get("text")
        if data.get("kind") == "followup" and data.get("approve"):
            self.line(tid, self.style.green("  answer: ") + shorten(text or "", LINE_CHARS))
        elif data.get("approve"):
            self.line(tid, self.style.green("  ✓ approved") + (f": {shorten(text, LINE_CHARS)}" if text else ""))
        else:
            self.line(tid, self.style.red("  ✗ denied") + (f": {shorten(text, LINE_CHARS)}" if text else ""))

    def _on_todos(self, tid: str, data: dict[str, Any]) -> None:
        marks = {"completed": "[x]", "in_progress": "[-]"}
        for todo in data.get("todos") or []:
            self.line(tid, self.style.dim(f"  {marks.get(todo.get('status'), '[ ]')} {todo.get('content', '')}"))

    def _on_mode_switched(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.cyan(f"mode: {data.get('from')} → {data.get('to')}"))

    def _on_context_truncated(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.dim("(older turns were dropped to fit the model's context window)"))

    def _on_usage(self, tid: str, data: dict[str, Any]) -> None:
        if not self.labels.get(tid):
            self.usage = data.get("total") or self.usage

    def _on_task_completed(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.green("✔ completed") + (f": {data['result']}" if data.get("result") else ""))

    def _on_task_failed(self, tid: str, data: dict[str, Any]) -> None:
        error = data.get("error") or {}
        self.line(tid, self.style.red(f"✘ failed: {error.get('message', '')} ({error.get('code', 'error')})"))

    def _on_task_cancelled(self, tid: str, data: dict[str, Any]) -> None:
        self.line(tid, self.style.yellow("cancelled"))

    def _on_task_status(self, tid: str, data: dict[str, Any]) -> None:
        if data.get("status") == "interrupted":
            self.line(tid, self.style.yellow("interrupted (the daemon stopped while the task ran)"))

    def _on_gap(self, tid: str, data: dict[str, Any]) -> None:
        self.line(
            tid, self.style.dim(f"(events {data.get('after', 0) + 1}..{data.get('first_seq', 1) - 1} were pruned)")
        )

    def summary(self) -> str:
        u = self.usage
        if not u:
            return ""
        return f"tokens in {u.get('tokens_in', 0)}, out {u.get('tokens_out', 0)}, cost ${u.get('cost_usd', 0):.4f}"
