"""The base of every REST handler.

In order, for each request: a request id; deny-by-default authentication
(handlers opt out with ``auth_required = False``); the scope the method
needs; the path and query parameters validated against the handler's
operation in ``openapi.yaml``; the body's size and media type checked before
it is read. Handlers then call one manager method. Every error, expected or
not, leaves through :meth:`ApiHandler.write_error` as problem+json.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import socket
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import tornado
from tornado.httputil import HTTPHeaders, format_timestamp, responses
from tornado.web import HTTPError, RequestHandler, stream_request_body

from roo_daemon import strictjson
from roo_daemon.auth import LOCAL, Principal
from roo_daemon.clientip import client_ip, unix_peer
from roo_daemon.problems import PROBLEM_CONTENT_TYPE, Problem, validation_problem
from roo_daemon.ratelimit import Verdict
from roo_daemon.spec import Operation

if TYPE_CHECKING:
    from roo_daemon.context import AppContext

log = logging.getLogger("roo_daemon.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json\s*(?:;.*)?$", re.I)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_EXPOSED = (
    "X-Request-ID, Location, Idempotent-Replayed, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
_IMPLEMENTABLE = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# Request ids correlate a request's answer with its log lines; they are not
# secrets (a client may choose its own). ``secrets`` would read the kernel's
# random source, a system call on every request: 96 bits from a generator
# seeded once from it are as unique, and do not count requests as a counter
# would.
_request_ids = random.Random()


def new_request_id() -> str:
    """24 hex digits, fresh per request."""
    return f"{_request_ids.getrandbits(96):024x}"


def header(headers: HTTPHeaders, name: str) -> str | None:
    """``headers.get(name)`` for a ``name`` spelled as Tornado normalises it
    (``X-Request-Id``, ``Content-Length``: each word capitalised). ``HTTPHeaders.get``
    normalises the name on every call and, for an absent header, raises a
    KeyError and catches it: a request asks for several headers it usually
    lacks (``Origin``, ``X-Request-ID``), and each ask cost as much as a
    small handler. Several values are joined as ``HTTPHeaders`` joins them."""
    values = headers._as_list.get(name)  # Tornado's own store, keyed by the normalised name
    if values is None:
        return None
    return values[0] if len(values) == 1 else ",".join(values)


class _HttpDate:
    """The ``Date`` header's text, formatted once a second (``email.utils``
    formatting it cost as much as the request's access line)."""

    second = -1
    text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.text = format_timestamp(second)  # whole seconds, as Tornado's own
            self.second = second
        return self.text


_http_date = _HttpDate()
_SERVER = f"TornadoServer/{tornado.version}"
_HTML = "text/html; charset=UTF-8"  # Tornado's default Content-Type
_OK = responses[200]
_new_headers = HTTPHeaders.__new__


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="roo-daemon"'}


def authenticate(ctx: AppContext, ip: str, header: str | None = None, *, token: str | None = None) -> Principal:
    """The principal for an ``Authorization`` header (REST, WebSocket
    handshake) or a bare token (the WebSocket ``auth`` op); else a 401 or 429
    problem.

    Wrong keys are limited per client address (``limits.auth_failures_per_ip``)
    so keys cannot be guessed quickly: each wrong key takes a token, and an
    address with none left gets 429 for every presented key, the right one
    included, *before* the key is checked (answering a right key with 200
    would tell a guesser it had found one). A request with no key at all
    guesses nothing: it is a plain 401 and costs no token.
    """
    auth = ctx.auth
    if auth.open:
        return LOCAL  # no keys: everyone is the local admin
    presented = token is not None or bool(header)
    if presented:
        verdict = ctx.limiter.peek("auth_failures_per_ip", ip)
        if verdict is not None and not verdict.allowed:
            ctx.metrics.rate_limited.labels("auth_failures_per_ip").inc()
            raise Problem(
                429,
                f"too many wrong API keys from this address; retry in {verdict.retry_after} s",
                headers=verdict.headers(),
            )
    principal = auth.from_token(token) if token is not None else auth.from_header(header)
    if principal is None:
        headers = dict(UNAUTHORIZED_HEADERS)
        if presented:
            # The wrong key took a token from this address's bucket: say
            # how many are left, as on any response counted against a bucket.
            taken = ctx.limiter.take("auth_failures_per_ip", ip)
            if taken is not None:
                headers.update(taken.headers())
        raise Problem(401, "a valid API key is required: send 'Authorization: Bearer <key>'", headers=headers)
    return principal


class ProblemWriter(RequestHandler):
    """Request ids, the default headers and the one problem+json writer,
    shared by REST handlers and the WebSocket handshake."""

    route: ClassVar[str] = "(unmatched)"  # the route template, for metrics and logs
    # The bucket this request was counted against, if any: its RateLimit-*
    # headers go on the answer, errors included (send_error clears headers).
    rate_verdict: Verdict | None = None
    request_id_generated = False  # True when request_id is new_request_id()'s, not the client's

    @property
    def request_id(self) -> str:
        rid = getattr(self, "_request_id", None)
        if rid is None:
            given = header(self.request.headers, "X-Request-Id")
            # Both attributes, in the same order either way: instances whose
            # attributes come in different orders leave CPython's fast path.
            if given is not None and _REQUEST_ID.match(given):
                rid = self._request_id = given
                self.request_id_generated = False
            else:
                rid = self._request_id = new_request_id()
                self.request_id_generated = True
        return rid

    @property
    def client_ip(self) -> str:
        """The address the per-IP limits see (forwarding headers only from trusted proxies)."""
        connection = self.request.connection
        context = getattr(connection, "context", None)
        if getattr(context, "address_family", None) == socket.AF_UNIX:
            # Tornado calls every unix-socket peer 0.0.0.0; ask the kernel
            # once per connection who it is.
            peer = getattr(context, "roo_unix_peer", None)
            if peer is None:
                # A WebSocket's connection hands its stream to the protocol.
                stream = getattr(connection, "stream", None) or getattr(
                    getattr(self, "ws_connection", None), "stream", None
                )
                peer = context.roo_unix_peer = unix_peer(getattr(stream, "socket", None))  # type: ignore[union-attr]
            return peer
        ctx = getattr(self, "ctx", None)
        trusted = ctx.trusted_proxies if ctx is not None else []
        return client_ip(self.request.remote_ip or "", self.request.headers, trusted)

    def origin_allowed(self, origin: str) -> bool:
        """Same-origin pages (like /docs) and the configured ``server.cors_origins``."""
        if origin in self.ctx.config["server"]["cors_origins"]:
            return True
        return urlsplit(origin).netloc.lower() == (self.request.headers.get("Host") or "").lower()

    def check_host(self) -> None:
        """Without API keys anyone who reaches the port is the admin, which
        loopback-only binding confines to this machine, but a web page can
        reach loopback too by DNS rebinding (its own name re-pointed at
        127.0.0.1). Such requests carry that foreign name in ``Host``: in
        keyless mode only loopback names are served over TCP."""
        ctx = self.ctx
        if not ctx.auth.open:
            return
        family = getattr(getattr(self.request.connection, "context", None), "address_family", None)
        if family not in (socket.AF_INET, socket.AF_INET6):
            return  # a unix socket: no browser reaches it
        host = self.request.host_name.strip("[]").lower()
        if host in ("localhost", ctx.config["server"]["host"].lower()) or host.endswith(".localhost"):
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise Problem(
            403,
            f"Host {host!r} is not a loopback name; without API keys only requests to localhost are served",
        )

    def clear(self) -> None:
        """Tornado's ``RequestHandler.clear`` (the same headers and state;
        tests/api/test_hot_path.py compares), with the ``Date`` text from
        :class:`_HttpDate` and the headers made without ``HTTPHeaders``'
        constructor: it goes through ``MutableMapping.update`` (an ABC check,
        then ``__setitem__`` and a name normalisation per header), which with
        :meth:`set_default_headers` cost a fortieth of a request. The names
        are spelled as Tornado normalises them, and each value is a list of
        its own (``add()`` appends to it)."""
        headers = _new_headers(HTTPHeaders)
        headers._combined_cache = {}  # HTTPHeaders' own two stores, as its __init__ makes them
        headers._as_list = {"Server": [_SERVER], "Content-Type": [_HTML], "Date": [_http_date.now()]}
        self._headers = headers
        self.set_default_headers()
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = _OK

    def set_default_headers(self) -> None:
        # Straight into the headers' store: set_header() checks each value
        # for characters a header cannot hold, and these have none (the
        # request id is ours or matched _REQUEST_ID); clear() made the
        # headers a moment ago, with nothing combined to forget.
        as_list = self._headers._as_list
        as_list["X-Request-Id"] = [self.request_id]
        as_list["X-Content-Type-Options"] = ["nosniff"]
        as_list["Cache-Control"] = ["no-store"]
        self._cors_headers()

    def _cors_headers(self) -> None:
        """CORS headers for an allowed origin; REST handlers fill this in."""

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
            ctx = getattr(self, "ctx", None)
            cors = bool(ctx and ctx.config["server"]["cors_origins"])
            methods = [m for m in self.SUPPORTED_METHODS if m != "OPTIONS" or cors]
            allow = ", ".join(methods)
            problem.headers.setdefault("Allow", allow)
            problem.extra["allow"] = methods
            problem.detail = f"{self.request.method} is not allowed here; allowed: {allow}"
        # A copy: one exception may answer several requests (a failed group
        # commit fails every write in it); this request's headers are its own.
        headers = dict(problem.headers)
        if self.rate_verdict is not None:
            for name, value in self.rate_verdict.headers().items():
                headers.setdefault(name, value)
        for name, value in headers.items():
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
    rate_classes: ClassVar[dict[str, str]] = {}  # HTTP method -> rate-limit class, when not read/write
    _client_ip: str | None = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "SUPPORTED_METHODS" in cls.__dict__:
            return
        # Methods a class does not implement are 405 before prepare(), so an
        # unauthenticated PUT learns only that PUT is not allowed.
        # OPTIONS is always routed: it answers CORS preflights (or 405).
        # HEAD comes with GET (head() below runs the GET without its body).
        implemented = tuple(
            m
            for m in _IMPLEMENTABLE
            if m != "OPTIONS"
            and getattr(cls, "get" if m == "HEAD" else m.lower()) is not getattr(RequestHandler, m.lower())
        )
        cls.SUPPORTED_METHODS = (*implemented, "OPTIONS") if implemented else _IMPLEMENTABLE  # type: ignore[assignment]

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._cors_headers()  # set_default_headers ran before ctx existed
        self.principal: Principal | None = None
        self.params: dict[str, Any] = {}
        self.op: Operation | None = None
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._body_too_large = False
        ctx.inflight.add(self)

    @property
    def client_ip(self) -> str:
        """As for any handler, found once per request: the limits ask, then the access line."""
        ip = self._client_ip
        if ip is None:
            ip = self._client_ip = ProblemWriter.client_ip.fget(self)  # type: ignore[attr-defined]
        return ip

    def head(self, *args: Any, **kwargs: Any) -> Any:
        """HEAD is the GET without its body: Tornado sends the headers
        (Content-Length included) and drops the body of a HEAD answer."""
        return self.get(*args, **kwargs)

    # -- the request pipeline -------------------------------------------

    def prepare(self) -> None:
        # Not a coroutine: nothing here waits, and Tornado runs a plain
        # prepare() without making and stepping a coroutine per request.
        if self.request.method == "OPTIONS":
            return  # a CORS preflight carries no credentials; options() answers it
        self.check_host()
        origin = header(self.request.headers, "Origin")
        if origin is not None and self.request.method not in _SAFE_METHODS and not self.origin_allowed(origin):
            # Browsers send Origin with every cross-site POST or DELETE, even
            # a form's that needed no preflight: refuse what came from elsewhere.
            raise Problem(403, f"requests from origin {origin} are not allowed")
        if self.auth_required:
            self.principal = self._authenticate()
            self._rate_limit(self.principal)
        method = self.request.method or ""
        op_id = self.operations.get("GET" if method == "HEAD" else method)
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

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """A path parameter that is not UTF-8 (``%ED%A0%80``, a surrogate's
        bytes) decodes with U+FFFD, as query parameters do, so its schema
        refuses it with a 422 and its pointer (Tornado's own is a bare 400)."""
        return value.decode("utf-8", "replace")

    def _authenticate(self) -> Principal:
        principal = authenticate(self.ctx, self.client_ip, header(self.request.headers, "Authorization"))
        scope = "read" if self.request.method in ("GET", "HEAD") else "write"
        if not principal.has(scope):
            raise Problem(403, f"the key {principal.name!r} lacks the {scope!r} scope")
        return principal

    def _rate_limit(self, principal: Principal) -> None:
        if self.ctx.auth.open:
            return  # no keys: a single local user on loopback, nobody to share with
        method = self.request.method or "GET"
        cls = self.rate_classes.get(method) or ("read" if method in ("GET", "HEAD") else "write")
        verdict = self.ctx.limiter.take(cls, principal.name)
        if verdict is None:
            return  # the class is unlimited (rate 0): no bucket, no headers
        self.rate_verdict = verdict
        if not verdict.allowed:
            self.ctx.metrics.rate_limited.labels(cls).inc()
            raise Problem(
                429,
                f"rate limit for {cls} requests exceeded; retry in {verdict.retry_after} s",
                headers=verdict.headers(),
            )
        # Every answer tells the client where it stands, so it can slow down
        # before a 429 (IETF RateLimit header fields). On every limited
        # request: str() values (Tornado's int path is an ABC check, slower), no dict.
        self.set_header("RateLimit-Limit", str(verdict.limit))
        self.set_header("RateLimit-Remaining", str(verdict.remaining))
        self.set_header("RateLimit-Reset", str(verdict.reset_seconds))

    # -- CORS -------------------------------------------------------------

    def _cors_headers(self) -> None:
        ctx = getattr(self, "ctx", None)
        if ctx is None:
            return  # set_default_headers, before initialize(): it calls this again
        origin = header(self.request.headers, "Origin")
        if origin and origin in ctx.config["server"]["cors_origins"]:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")
            self.set_header("Access-Control-Expose-Headers", _EXPOSED)

    def options(self, *args: Any, **kwargs: Any) -> None:
        """A CORS preflight from an allowed origin: 204 with what may follow."""
        origin = self.request.headers.get("Origin")
        if not (
            origin
            and origin in self.ctx.config["server"]["cors_origins"]
            and "Access-Control-Request-Method" in self.request.headers
        ):
            raise Problem(405, "OPTIONS answers CORS preflights from allowed origins only")
        self.set_status(204)
        self.set_header("Access-Control-Allow-Methods", ", ".join(m for m in self.SUPPORTED_METHODS))
        self.set_header("Access-Control-Allow-Headers", _ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", "600")
        self.finish()

    def _check_body_headers(self) -> None:
        limit = self.ctx.config["server"]["max_body_bytes"]
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            # Answer before reading the body; the connection cannot be reused.
            # (The header goes on the problem: sending an error clears headers set before.)
            raise Problem(
                413, f"the request body is {length} bytes; the limit is {limit}", headers={"Connection": "close"}
            )
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
            raise Problem(
                413,
                f"the request body exceeds {self.ctx.config['server']['max_body_bytes']} bytes",
                headers={"Connection": "close"},
            )
        raw = b"".join(self._chunks)
        if not raw.strip():
            if op.body_required:
                raise validation_problem([{"pointer": "/body", "message": "a JSON request body is required"}])
            return {}
        try:
            body = strictjson.loads(raw, "/body")
        except strictjson.JsonInputError as e:
            if e.syntax:
                raise Problem(400, f"the request body is {e.message}") from None
            # Lone surrogates, NaN/Infinity, nesting past the limit: valid
            # enough to parse, never to store or echo (roo_daemon/strictjson.py).
            raise validation_problem([{"pointer": e.pointer, "message": e.message}]) from None
        errors = op.check_body(body)
        if errors:
            raise validation_problem(errors)
        return body

    # -- answers --------------------------------------------------------

    def send_json(self, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        self._headers["Content-Type"] = (
            "application/json"  # a constant: set_header's check is for values from elsewhere
        )
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(doc if isinstance(doc, bytes) else _dumps(doc))

    def on_finish(self) -> None:
        self.ctx.inflight.discard(self)

    def on_connection_close(self) -> None:
        self.ctx.inflight.discard(self)
        # Tornado's own ends a request whose body was still streaming in (a
        # client gone mid-body, or a body Tornado refused as malformed);
        # without it the handler waited for that body until shutdown.
        super().on_connection_close()


class NotFoundHandler(ApiHandler):
    """Every unmatched path, any method: 404 problem."""

    auth_required = False
    SUPPORTED_METHODS = _IMPLEMENTABLE  # type: ignore[assignment]

    def prepare(self) -> None:
        raise Problem(404, f"no route matches {self.request.path}")
