"""The base of every REST handler.

In order, for each request: a request id; deny-by-default authentication
(handlers opt out with ``auth_required = False``); the scope the method
needs; the path and query parameters validated against the handler's
operation in ``openapi.yaml``; the body's size and media type checked before
it is read. Handlers then call one manager method. Every error, expected or
not, leaves through :meth:`ApiHandler.write_error` as problem+json.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.web import HTTPError, RequestHandler, stream_request_body

from roo_daemon.auth import Principal
from roo_daemon.problems import PROBLEM_CONTENT_TYPE, Problem, validation_problem
from roo_daemon.spec import Operation

if TYPE_CHECKING:
    from roo_daemon.context import AppContext

log = logging.getLogger("roo_daemon.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json\s*(?:;.*)?$", re.I)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_IMPLEMENTABLE = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")


def new_request_id() -> str:
    return secrets.token_hex(12)


class ProblemWriter(RequestHandler):
    """Request ids, the default headers and the one problem+json writer,
    shared by REST handlers and the WebSocket handshake."""

    route: ClassVar[str] = "(unmatched)"  # the route template, for metrics and logs

    @property
    def request_id(self) -> str:
        rid = getattr(self, "_request_id", None)
        if rid is None:
            given = self.request.headers.get("X-Request-ID", "")
            rid = self._request_id = given if _REQUEST_ID.match(given) else new_request_id()
        return rid

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", self.request_id)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self) -> None:
        return None  # API answers are no-store; hashing every body buys nothing

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The one place any error becomes an RFC 9457 problem."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Problem):
            problem = exc
        elif isinstance(exc, HTTPError) and status_code < 500:
            problem = Problem(status_code, exc.log_message % exc.args if exc.log_message else self._reason)
        else:
            problem = Problem(
                status_code,
                f"the daemon failed to handle this request; quote request id {self.request_id} when reporting it",
                request_id=self.request_id,
            )
        if status_code == 405:
            allow = ", ".join(self.SUPPORTED_METHODS)
            problem.headers.setdefault("Allow", allow)
            problem.extra["allow"] = list(self.SUPPORTED_METHODS)
            problem.detail = f"{self.request.method} is not allowed here; allowed: {allow}"
        for name, value in problem.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", PROBLEM_CONTENT_TYPE)
        self.finish(_dumps(problem.body()))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, HTTPError):
            return  # an answer, not a failure; the access log has the line
        log.error(
            "request %s %s %s failed", self.request_id, self.request.method, self.route, exc_info=(typ, value, tb)
        )


@stream_request_body
class ApiHandler(ProblemWriter):
    operations: ClassVar[dict[str, str]] = {}  # HTTP method -> operationId
    auth_required: ClassVar[bool] = True

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "SUPPORTED_METHODS" in cls.__dict__:
            return
        # Methods a class does not implement are 405 before prepare(), so an
        # unauthenticated PUT learns only that PUT is not allowed.
        cls.SUPPORTED_METHODS = (
            tuple(  # type: ignore[assignment]
                m for m in _IMPLEMENTABLE if getattr(cls, m.lower()) is not getattr(RequestHandler, m.lower())
            )
            or _IMPLEMENTABLE
        )

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.principal: Principal | None = None
        self.params: dict[str, Any] = {}
        self.op: Operation | None = None
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._body_too_large = False
        ctx.inflight.add(self)

    # -- the request pipeline -------------------------------------------

    async def prepare(self) -> None:
        if self.auth_required:
            self.principal = self._authenticate()
        op_id = self.operations.get(self.request.method or "")
        if op_id is None:
            return
        self.op = op = self.ctx.spec.operations[op_id]
        errors: list[dict[str, str]] = []
        if op.path_params:
            values, errs = op.check_params("path", self.path_kwargs)
            self.params.update(values)
            errors += errs
        if op.query_params:
            query = {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()}
            values, errs = op.check_params("query", query)
            self.params.update(values)
            errors += errs
        if op.header_params:
            values, errs = op.check_params("header", dict(self.request.headers))
            self.params.update(values)
            errors += errs
        if errors:
            raise validation_problem(errors)
        if op.has_body:
            self._check_body_headers()

    def _authenticate(self) -> Principal:
        principal = self.ctx.auth.from_header(self.request.headers.get("Authorization"))
        if principal is None:
            raise Problem(
                401,
                "a valid API key is required: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="roo-daemon"'},
            )
        scope = "read" if self.request.method in ("GET", "HEAD") else "write"
        if not principal.has(scope):
            raise Problem(403, f"the key {principal.name!r} lacks the {scope!r} scope")
        return principal

    def _check_body_headers(self) -> None:
        limit = self.ctx.config["server"]["max_body_bytes"]
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            # Answer before reading the body; the connection cannot be reused.
            self.set_header("Connection", "close")
            raise Problem(413, f"the request body is {length} bytes; the limit is {limit}")
        has_body = (length not in (None, "0")) or "Transfer-Encoding" in self.request.headers
        ctype = self.request.headers.get("Content-Type")
        # An empty body has no media type to refuse: clients (curl -d '',
        # Tornado's own) label even an empty POST form-urlencoded.
        if has_body and not (ctype and _JSON_TYPE.match(ctype)):
            raise Problem(415, f"the request body must be application/json, not {ctype or 'unspecified'}")

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > self.ctx.config["server"]["max_body_bytes"]:
            self._body_too_large = True  # chunked upload: keep draining, answer 413 once it ends
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    def json_body(self) -> dict[str, Any]:
        """The request body, parsed and validated against the operation."""
        op = self.op
        assert op is not None and op.has_body
        if self._body_too_large:
            self.set_header("Connection", "close")
            raise Problem(413, f"the request body exceeds {self.ctx.config['server']['max_body_bytes']} bytes")
        raw = b"".join(self._chunks)
        if not raw.strip():
            if op.body_required:
                raise validation_problem([{"pointer": "/body", "message": "a JSON request body is required"}])
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise Problem(400, f"the request body is not valid JSON: {e}") from None
        errors = op.check_body(body)
        if errors:
            raise validation_problem(errors)
        return body

    # -- answers --------------------------------------------------------

    def send_json(self, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(doc if isinstance(doc, bytes) else _dumps(doc))

    def on_finish(self) -> None:
        self.ctx.inflight.discard(self)

    def on_connection_close(self) -> None:
        self.ctx.inflight.discard(self)


class NotFoundHandler(ApiHandler):
    """Every unmatched path, any method: 404 problem."""

    auth_required = False
    SUPPORTED_METHODS = _IMPLEMENTABLE  # type: ignore[assignment]

    def prepare(self) -> None:  # type: ignore[override]
        raise Problem(404, f"no route matches {self.request.path}")
