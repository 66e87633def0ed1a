"""RFC 9457 problem details: the one shape every 4xx and 5xx takes.

Handlers and managers raise :class:`Problem`; ``api.base.ApiHandler.write_error``
is the one place that turns it (or any other exception) into a response.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from tornado.web import HTTPError

PROBLEM_TYPE_PREFIX = "urn:roo-daemon:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# The problem type slug for each status we answer with when nothing more
# specific applies.
_DEFAULT_SLUGS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    426: "upgrade-required",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


class Problem(HTTPError):
    """An error answer. ``extra`` members (``errors``, ``task_status``,
    ``request_id``...) are added to the body as RFC 9457 extension members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, log_message=None)
        self.detail = detail
        self.slug = slug or _DEFAULT_SLUGS.get(status, "error")
        self.title = title or _reason(status)
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        doc = {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status_code,
            "detail": self.detail,
        }
        doc.update(self.extra)
        return doc

    def __str__(self) -> str:
        return f"{self.status_code} {self.title}: {self.detail}"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def validation_problem(errors: list[dict[str, str]], detail: str | None = None) -> Problem:
    """A 422 carrying ``errors``: ``[{pointer, message}]``."""
    if detail is None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"{first['pointer'] or '/'}: {first['message']}{more}"
    return Problem(422, detail, errors=errors)


def not_found(kind: str, ident: str) -> Problem:
    return Problem(404, f"no {kind} with id {ident}")


STORAGE_RETRY_AFTER_SECONDS = 10


class StorageUnavailable(Problem):
    """The store cannot be written: a full disk, an I/O error, a read-only
    file system. 503 with ``Retry-After``: nothing of the request was stored
    (the transaction was rolled back), so it is safe to send again once an
    operator has freed space.

    The store raises it itself (``store.database.storage_error``), so every
    path that writes (REST handlers, WebSocket ops, tasks) reports the same
    problem without a mapping of its own; a WebSocket op gets an ``error``
    frame with code ``storage-unavailable``. ``retry`` says when to send
    again (the PostgreSQL store: once the database is back)."""

    def __init__(self, reason: str, retry: str = "once the disk has room") -> None:
        super().__init__(
            503,
            f"the daemon cannot write its store ({reason}); nothing was stored, retry {retry}",
            slug="storage-unavailable",
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
        )
        self.reason = reason
        self.retry = retry
