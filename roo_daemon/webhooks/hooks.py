"""What a webhook is: a URL, the event names it wants, and the environment
variable holding its HMAC key. A session's own come with its creation body;
the daemon-wide ones (``webhooks.default``) apply to every session."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The event names a webhook may ask for (the Event schema in openapi.yaml), and "*".
EVENT_NAMES = frozenset(
    {
        "session.created",
        "session.deleted",
        "session.updated",
        "task.created",
        "task.status",
        "message.delta",
        "message",
        "message.reset",
        "message.reasoning",
        "message.user",
        "message.queued",
        "tool.call",
        "tool.output",
        "tool.result",
        "ask",
        "ask.answered",
        "usage",
        "task.completed",
        "task.failed",
        "task.cancelled",
        "todos",
        "mode.switched",
        "context.truncated",
        "context.condensed",
        "checkpoint.saved",
        "checkpoint.restored",
        "mcp.server",
    }
)
ALL_EVENTS = "*"
# A session's key names a variable a tenant may use: never the daemon's
# provider keys or anything else in its environment (an HMAC under a provider
# key, on a body the tenant chose, is an oracle it should not have).
SESSION_SECRET_ENV = re.compile(r"^ROO_WEBHOOK_[A-Z0-9_]{1,64}$")


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    events: tuple[str, ...]
    secret_env: str
    source: str  # "session" or "config"

    @property
    def id(self) -> str:
        """Stable across restarts and reorderings: the cursor's key."""
        digest = hashlib.sha256("\n".join((self.source, self.url, ",".join(self.events), self.secret_env)).encode())
        return "whk_" + digest.hexdigest()[:16]

    def wants(self, event: str) -> bool:
        return ALL_EVENTS in self.events or event in self.events

    def secret(self) -> bytes | None:
        value = os.environ.get(self.secret_env)
        return value.encode() if value else None

    def public_url(self, full: bool) -> str:
        """The URL as shown to a session's owner: a daemon-wide hook's query
        (which may carry a receiver's token) only to admins."""
        if full or self.source == "session":
            return self.url
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def to_doc(self) -> dict[str, Any]:
        return {"url": self.url, "events": list(self.events), "secret_env": self.secret_env}


def from_doc(doc: dict[str, Any], source: str) -> Webhook:
    return Webhook(doc["url"], tuple(doc["events"]), doc["secret_env"], source)


def hooks_of(session_hooks: Iterable[dict[str, Any]], defaults: Iterable[Webhook]) -> list[Webhook]:
    """A session's webhooks: its own, then the daemon-wide ones (one of each id)."""
    out: dict[str, Webhook] = {}
    for hook in [from_doc(d, "session") for d in session_hooks] + list(defaults):
        out.setdefault(hook.id, hook)
    return list(out.values())


def url_problem(url: str) -> str | None:
    """What is wrong with the URL's shape, or None (its host is checked apart)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises on a bad port
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (user:password@); sign with secret_env instead"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def shape_problems(doc: dict[str, Any], pointer: str, session: bool) -> list[dict[str, str]]:
    """Problems with one hook's URL, events and secret variable, each as
    ``{pointer, message}`` (the host's addresses are checked apart, async)."""
    problems = []
    problem = url_problem(doc["url"])
    if problem:
        problems.append({"pointer": f"{pointer}/url", "message": problem})
    for i, name in enumerate(doc["events"]):
        if name != ALL_EVENTS and name not in EVENT_NAMES:
            problems.append({"pointer": f"{pointer}/events/{i}", "message": f"no event named {name!r}"})
    secret_env = doc["secret_env"]
    if session and not SESSION_SECRET_ENV.match(secret_env):
        problems.append(
            {"pointer": f"{pointer}/secret_env", "message": "must name a variable ROO_WEBHOOK_... (A-Z, 0-9, _)"}
        )
    elif not os.environ.get(secret_env):
        problems.append(
            {"pointer": f"{pointer}/secret_env", "message": f"{secret_env} is not set in the daemon's environment"}
        )
    return problems
