"""One exception type for everything that can go wrong talking to a daemon.

A program driving the daemon catches :class:`ClientError` and nothing else:
an RFC 9457 problem the daemon answered (``status`` and ``problem`` set), a
rejected WebSocket op (``problem`` holds its ``code`` and ``detail``), or no
answer at all (a refused connection, a wrong URL, a timeout: ``status`` is
None). ``str(error)`` is one line fit for a terminal.
"""

from __future__ import annotations

import json
from typing import Any

# WebSocket error codes (``WsError.data.code``) as the HTTP status they stand for.
_WS_CODES = {
    "unauthorized": 401,
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
    "bad-frame": 400,
    "bad-json": 400,
    "too-many-requests": 429,
    "rate-limited": 429,
}


class ClientError(Exception):
    """A request to the daemon failed.

    ``status``: the HTTP status (or the one a WebSocket error code stands
    for), None when the daemon could not be reached. ``problem``: the
    problem+json document, ``{}`` when there was none."""

    def __init__(self, message: str, *, status: int | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self)

    @property
    def is_client_side(self) -> bool:
        """True for a 4xx: the request was wrong (key, id, input), not the daemon."""
        return self.status is not None and 400 <= self.status < 500

    @classmethod
    def from_response(cls, method: str, url: str, status: int, content_type: str, body: bytes) -> ClientError:
        """A non-2xx answer. A problem+json body gives the line its detail;
        anything else did not come from a roo-daemon (a proxy, another
        service on that port), which the line says."""
        if content_type.split(";", 1)[0].strip().lower() == "application/problem+json":
            try:
                problem = json.loads(body)
            except ValueError:
                problem = None
            if isinstance(problem, dict):
                title = problem.get("title") or "Error"
                detail = problem.get("detail") or ""
                return cls(f"{status} {title}: {detail}".rstrip(": "), status=status, problem=problem)
        return cls(
            f"{method} {url} answered HTTP {status}, not as a roo-daemon would (is the URL right?)", status=status
        )

    @classmethod
    def from_ws_error(cls, data: dict[str, Any]) -> ClientError:
        code = str(data.get("code") or "error")
        return cls(f"{code}: {data.get('detail') or ''}".rstrip(": "), status=_WS_CODES.get(code), problem=dict(data))

    @classmethod
    def unreachable(cls, url: str, error: BaseException) -> ClientError:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return cls(f"cannot connect to {url}: {reason}")
