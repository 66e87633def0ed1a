"""The auto-approval policy for commands: Roo-Code's checkAutoApproval for
``command`` asks and its getCommandDecision (src/core/auto-approval/
index.ts and commands.ts), on a real shell parser.

:func:`command_decision` answers ``"allow"``, ``"deny"`` or ``"ask"`` for a
command line under a session's ``auto_approve`` policy and the daemon's
global denied list:

1. The line is parsed as a shell does (:mod:`roo_daemon.engine.shell`, as
   bash and as POSIX sh) into its simple commands: those chained by ``&&``,
   ``||``, ``;``, ``|``, ``&`` and newlines, inside subshells, groups,
   ``if``/``for``/``case``, and inside ``$(...)``, backticks,
   ``<(...)``/``>(...)`` and here-doc bodies. Quotes, escapes and line
   continuations are honoured, so a newline inside quotes neither splits a
   command nor hides one (Roo splits lines before parsing, which let
   ``echo 'a<newline>b' ; touch X`` through).
2. A command matching a *global* denied prefix (``tools.denied_commands``)
   is denied, whatever the session says: the daemon's own rule, not Roo's.
3. With ``execute`` off (Roo's ``alwaysAllowExecute``) every command asks;
   the session's lists are not consulted, as in Roo.
4. With ``execute`` on, each command gets Roo's getSingleCommandDecision:
   the longest matching prefix wins between ``allowed_commands`` and
   ``denied_commands`` (case-insensitive ``startswith``; ``*`` matches
   anything and only when listed, counting as one character); a tie goes to
   denied; no match asks. Prefixes are matched against the command as
   written (fd duplications such as ``2>&1`` dropped, as Roo does) and with
   its quotes removed (``r'm' x`` is ``rm x``).
5. Any denied command denies the whole line (Roo's "any denial blocks
   all"), even one the parser is unsure about. Otherwise a line with one of
   Roo's dangerous substitutions (``${x@P}``, ...) asks, and so does a line
   the parser cannot vouch for (a syntax error, ``eval``, a command name
   computed at run time, syntax that bash and ``/bin/sh`` read
   differently, ...): the daemon's addition, Roo approves what its regex
   split makes of such a line. Redirections and ``&`` do not ask by
   themselves, as in Roo: each command on the line still has to be allowed.

For the deny check, leading ``NAME=value`` assignments and an ``exec``,
``command`` or ``builtin`` prefix are skipped, so ``X=1 rm -rf x`` and
``exec rm -rf x`` still meet a denied ``rm``; for the allow check they are
not (``LD_PRELOAD=... git status`` is not ``git status``). Prefix lists are
a convenience, not a sandbox: ``sh -c '...'`` or an absolute path to a
binary are other commands as far as a prefix is concerned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from roo_daemon.engine.shell import SimpleCommand, parse

Verdict = Literal["allow", "deny", "ask"]

_FD_REDIRECT = re.compile(r"\d*[<>]&(\d+-?|-)(?=$|\s|[;&|()<>])")

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


def split_command(command: str) -> list[str]:
    """The simple commands of a command line as written (Roo's parseCommand),
    nested ones (in substitutions) after the command that holds them."""
    return [c.text for c in parse(command).commands]


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


def _allow_forms(command: SimpleCommand) -> list[str]:
    """The command as written (fd duplications such as ``2>&1`` dropped, as
    Roo does) and with its quotes removed."""
    return [_FD_REDIRECT.sub("", command.text).strip(), command.normalized]


def _deny_forms(command: SimpleCommand) -> list[str]:
    """The allow forms, the same without leading assignments, and the
    command an ``exec``/``command``/``builtin`` prefix runs."""
    forms = _allow_forms(command)
    unwrapped = command.unwrapped
    if unwrapped != command.argv:
        forms.append(" ".join(v for v in unwrapped if v is not None))
    if command.assignments:
        forms.append(" ".join(w.raw for w in command.words))
        bare = command.text
        for word in command.assignments:
            bare = bare.replace(word.raw, "", 1)
        forms.append(_FD_REDIRECT.sub("", bare).strip())
    return forms


def _longest(forms: Sequence[str], prefixes: Sequence[str]) -> str | None:
    return max((h for h in (longest_prefix(f, prefixes) for f in forms) if h), key=len, default=None)


def command_decision(policy: Mapping[str, Any], command: str, global_denied: Sequence[str] = ()) -> Decision:
    """The verdict for ``command`` with the rule that decided it."""
    script = parse(command)
    if not script.commands:
        return Decision("ask", "the command is empty" if not script.unsure else script.unsure[0])
    for part in script.commands:
        hit = _longest(_deny_forms(part), global_denied)
        if hit:
            shown = part.text or part.normalized
            return Decision("deny", f"'{shown}' matches the daemon's denied command prefix '{hit}'")
    if not policy.get("execute"):
        return Decision("ask", "commands are not auto-approved (auto_approve.execute is off)")
    allowed = list(policy.get("allowed_commands") or [])
    denied = list(policy.get("denied_commands") or [])
    verdicts = []
    for part in script.commands:
        deny_hit = _longest(_deny_forms(part), denied)
        allow_hit = _longest(_allow_forms(part), allowed)
        if deny_hit and (not allow_hit or len(deny_hit) >= len(allow_hit)):
            shown = part.text or part.normalized
            return Decision("deny", f"'{shown}' matches the denied command prefix '{deny_hit}'")
        verdicts.append(allow_hit is not None)
    if script.unsure:
        return Decision("ask", f"the command cannot be checked safely: {script.unsure[0]}")
    if any(p.search(command) for p in _DANGEROUS):
        return Decision("ask", "the command uses a shell substitution that is never auto-approved")
    if all(verdicts):
        return Decision("allow", "every part of the command is allowed")
    return Decision("ask", "not every part of the command is in the allowed list")


def command_verdict(policy: Mapping[str, Any], command: str, global_denied: Sequence[str] = ()) -> Verdict:
    """``"allow"``, ``"deny"`` or ``"ask"`` for ``command`` (see the module doc)."""
    return command_decision(policy, command, global_denied).verdict
