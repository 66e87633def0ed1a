"""The auto-approval policy for commands: Roo-Code's command allow/deny
lists (src/core/auto-approval/commands.ts, src/shared/parse-command.ts).

:func:`command_verdict` answers ``"allow"``, ``"deny"`` or ``"ask"`` for a
command line under a session's ``auto_approve`` policy and the daemon's
global denied list:

- The line is split into its sub-commands (``&&``, ``||``, ``;``, ``|``,
  ``&``, newlines, and the commands inside ``$(...)``, backticks and
  ``<(...)``), quotes respected. Every sub-command must be allowed.
- A sub-command matching a *global* denied prefix is denied, whatever else
  matches.
- Otherwise the longest matching prefix wins between ``allowed_commands``
  and ``denied_commands`` (case-insensitive, Roo's "longest prefix match");
  a tie goes to denied. ``execute: true`` allows every command, as Roo's
  ``*`` allowlist entry does: it is the shortest possible prefix, so any
  denied prefix beats it.
- Any denied sub-command denies the whole line. A line that would be allowed
  but redirects to a file, runs something in the background or uses a
  dangerous shell substitution is asked about instead, as in Roo.

For the deny check, leading ``NAME=value`` assignments are skipped, so
``X=1 rm -rf x`` still meets a denied ``rm``; for the allow check they are
not (``LD_PRELOAD=... git status`` is not ``git status``). Prefix lists are
a convenience, not a sandbox: ``sh -c '...'`` or an absolute path to a
binary are other commands as far as a prefix is concerned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["allow", "deny", "ask"]

_FD_REDIRECT = re.compile(r"\d*[<>]&\d+(?=$|\s|[;&|()<>])")
_ASSIGNMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|\"[^\"]*\"|\S)*\s+)+")

# Roo's containsDangerousSubstitution.
_DANGEROUS = [
    re.compile(r"\$\{[^}]*@[PQEAa][^}]*\}"),
    re.compile(r"\$\{[^}]*[=+\-?][^}]*\\[0-7]{3}[^}]*\}"),
    re.compile(r"\$\{[^}]*[=+\-?][^}]*\\x[0-9a-fA-F]{2}[^}]*\}"),
    re.compile(r"\$\{[^}]*[=+\-?][^}]*\\u[0-9a-fA-F]{4}[^}]*\}"),
    re.compile(r"\$\{![^}]+\}"),
    re.compile(r"<<<\s*(\$\(|`)"),
    re.compile(r"(?:^|(?<=[\s;|&(<]))=\([^)]+\)"),
    re.compile(r"[*?+@!]\(e:[^:]+:\)"),
]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str  # for the model and the logs: which rule decided


def _scan(line: str) -> tuple[list[str], list[str], str]:
    """Split one line at unquoted chain operators. Returns the commands, the
    commands found inside substitutions, and the line with quoted text blanked
    (for the redirection and background checks)."""
    commands: list[str] = []
    inner: list[str] = []
    unquoted: list[str] = []
    current: list[str] = []
    i, n = 0, len(line)
    quote: str | None = None

    def flush() -> None:
        text = "".join(current).strip()
        if text:
            commands.append(text)
        current.clear()

    while i < n:
        ch = line[i]
        if quote == "'":
            current.append(ch)
            unquoted.append(" ")
            if ch == "'":
                quote = None
            i += 1
            continue
        if ch == "\\" and i + 1 < n:
            current.append(line[i : i + 2])
            unquoted.append("  ")
            i += 2
            continue
        if ch in "$<>" and line.startswith("(", i + 1) and not line.startswith("((", i + 1):
            end = _closing(line, i + 2)
            inner.append(line[i + 2 : end])
            current.append(line[i : end + 1])
            unquoted.append(" " * (end + 1 - i) if ch == "$" else ch + " " * (end - i))
            i = end + 1
            continue
        if ch == "`":
            end = line.find("`", i + 1)
            end = n if end == -1 else end
            inner.append(line[i + 1 : end])
            current.append(line[i : end + 1])
            unquoted.append(" " * (end + 1 - i))
            i = end + 1
            continue
        if quote == '"':
            current.append(ch)
            unquoted.append(" ")
            if ch == '"':
                quote = None
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            current.append(ch)
            unquoted.append(" ")
            i += 1
            continue
        two = line[i : i + 2]
        if two in ("&&", "||"):
            flush()
            unquoted.append("  ")
            i += 2
            continue
        if ch == ";" or (ch == "|" and two != "|&") or two == "|&":
            flush()
            step = 2 if two == "|&" else 1
            unquoted.append(" " * step)
            i += step
            continue
        if ch == "&" and not (i > 0 and line[i - 1] in "<>") and not line.startswith(">", i + 1):
            flush()
            unquoted.append("&")  # kept: it is the background operator
            i += 1
            continue
        current.append(ch)
        unquoted.append(ch)
        i += 1
    flush()
    return commands, inner, "".join(unquoted)


def _closing(line: str, start: int) -> int:
    """Index of the ``)`` closing a ``(`` just before ``start``, quote-aware."""
    depth, quote, i = 1, None, start
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(line)


def _split(command: str) -> tuple[list[str], str]:
    parts: list[str] = []
    unquoted: list[str] = []
    pending = [command]
    while pending:
        text = pending.pop(0)
        for line in re.split(r"\r\n|\r|\n", text):
            if not line.strip():
                continue
            commands, inner, bare = _scan(line)
            parts.extend(commands)
            unquoted.append(bare)
            pending.extend(inner)
    return parts, "\n".join(unquoted)


def split_command(command: str) -> list[str]:
    """The sub-commands of a command line (Roo's parseCommand)."""
    return _split(command)[0]


def longest_prefix(command: str, prefixes: Sequence[str]) -> str | None:
    """Roo's findLongestPrefixMatch: case-insensitive ``startswith``; ``*``
    matches anything and counts as one character."""
    text = command.strip().lower()
    best: str | None = None
    for prefix in prefixes:
        p = prefix.strip().lower()
        if not p:
            continue
        if (p == "*" or text.startswith(p)) and (best is None or len(p) > len(best)):
            best = p
    return best


def _deny_forms(part: str) -> list[str]:
    stripped = _ASSIGNMENT.sub("", part)
    return [part] if stripped == part else [part, stripped]


def _has_redirection(unquoted: str) -> bool:
    return bool(re.search(r"[<>]", _FD_REDIRECT.sub("", unquoted)))


def _has_background(unquoted: str) -> bool:
    return bool(re.search(r"(^|[^&><])&([^&>]|$)", unquoted))


def command_decision(policy: Mapping[str, Any], command: str, global_denied: Sequence[str] = ()) -> Decision:
    """The verdict for ``command`` with the rule that decided it."""
    parts, unquoted = _split(command)
    if not parts:
        return Decision("ask", "the command is empty")
    allowed = list(policy.get("allowed_commands") or [])
    if policy.get("execute"):
        allowed.append("*")
    denied = list(policy.get("denied_commands") or [])
    verdicts = []
    for raw in parts:
        part = _FD_REDIRECT.sub("", raw).strip()
        forms = _deny_forms(part)
        for form in forms:
            hit = longest_prefix(form, global_denied)
            if hit:
                return Decision("deny", f"'{part}' matches the daemon's denied command prefix '{hit}'")
        deny_hit = max((h for h in (longest_prefix(f, denied) for f in forms) if h), key=len, default=None)
        allow_hit = longest_prefix(part, allowed)
        if deny_hit and (not allow_hit or len(deny_hit) >= len(allow_hit)):
            return Decision("deny", f"'{part}' matches the denied command prefix '{deny_hit}'")
        verdicts.append(allow_hit is not None)
    if any(p.search(command) for p in _DANGEROUS):
        return Decision("ask", "the command uses a shell substitution that is never auto-approved")
    if _has_redirection(unquoted):
        return Decision("ask", "the command redirects input or output to a file")
    if _has_background(unquoted):
        return Decision("ask", "the command runs something in the background")
    if all(verdicts):
        return Decision("allow", "every part of the command is allowed")
    return Decision("ask", "not every part of the command is in the allowed list")


def command_verdict(policy: Mapping[str, Any], command: str, global_denied: Sequence[str] = ()) -> Verdict:
    """``"allow"``, ``"deny"`` or ``"ask"`` for ``command`` (see the module doc)."""
    return command_decision(policy, command, global_denied).verdict
