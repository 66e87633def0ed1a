"""Logging: one JSON object per line (journald-friendly), or readable text
on a terminal; and the access log line for every request."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from roo_daemon.metrics import Metrics, bounded_method

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# Secrets never reach a log line. The code logs no header, key or hash; these
# patterns catch what a library might echo anyway (Tornado logs a malformed
# header's value, e.g. an Authorization header with a stray control character).
_SECRET_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"'\\,;]+"), r"\1\2[redacted]"),
    (
        re.compile(r"(?i)\b(authorization|x-api-key|api-key|api_key|token)(['\"]?\s*[:=]\s*['\"]?)[^\s\"'\\,;}]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?i)(invalid header (?:name|value)) [^\n\"]*"), r"\1 [redacted]"),
    (re.compile(r"\broo_[A-Za-z0-9_-]{16,}"), "roo_[redacted]"),  # our keys' shape
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-[redacted]"),  # OpenAI / Anthropic keys' shape
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "[redacted-sha256]"),  # a key's hash
]


# Words one of the patterns above needs (lowercased): text with none of them
# and shorter than a hash cannot match, and is returned without six
# substitutions (they cost a sixth of a request when run on every access line).
_TRIGGERS = ("bearer", "basic", "authorization", "api-key", "api_key", "token", "invalid header", "roo_", "sk-")


def _might_hold_secret(text: str) -> bool:
    if len(text) >= 64:
        return True
    low = text.lower()
    for word in _TRIGGERS:  # a loop: twice as fast as any() over a generator (and than one regex)
        if word in low:
            return True
    return False


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced."""
    if not _might_hold_secret(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = (
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.getMessage()}"
        )
        line = f"{line}  {extra}" if extra else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _JsonSink(logging.StreamHandler):
    """The JSON handler :func:`setup_logging` installs. Access lines
    written directly (:func:`_queue`) wait in ``pending`` until the
    loop turn ends, then leave in one write (with ``PYTHONUNBUFFERED``, as
    the systemd unit sets it, each line was a system call of its own). A
    record through ``logging`` writes them first, and so does a flush (at
    exit too: ``logging.shutdown`` flushes every handler), so the stream
    holds every line in the order the lines were made."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.pending: list[str] = []

    def write_pending(self) -> None:
        """Write the waiting lines; the caller holds ``self.lock``. The loop
        appends lines without the lock (:func:`_queue`): only the lines
        counted here are taken, so one appended meanwhile waits for the next
        write instead of being lost."""
        pending = self.pending
        count = len(pending)
        if count:
            text = pending[0] if count == 1 else "".join(pending[:count])
            del pending[:count]
            self.stream.write(text)

    def emit(self, record: logging.LogRecord) -> None:
        if self.pending:  # Handler.handle holds the lock
            try:
                self.write_pending()
            except Exception:
                self.handleError(record)
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.write_pending()
            # StreamHandler.flush, under the lock already held (it takes it again).
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()


_json_sink: _JsonSink | None = None  # the handler the access line may write to directly


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    global _json_sink
    if fmt == "auto":
        fmt = "text" if sys.stdout.isatty() else "json"
    handler = _JsonSink(sys.stdout) if fmt == "json" else logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _json_sink = handler if isinstance(handler, _JsonSink) else None
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
    # Tornado's own access log is replaced by ours.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


_access = logging.getLogger("roo_daemon.access")


# One JSON string literal, as ``json.dumps`` writes it (ASCII, escaped).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_encode = json.JSONEncoder(default=str).encode  # json.dumps(doc, default=str), for values of other types


def _json_value(value: Any) -> str:
    """``value`` as ``json.dumps(value, default=str)`` writes it, a string redacted."""
    kind = type(value)
    if kind is str:
        return _quote(redact(value))
    if kind is int or (kind is float and value - value == 0):  # finite: NaN and infinities as json writes them
        return repr(value)
    if value is None:
        return "null"
    return _encode(value)


# Client-chosen values that recur from line to line (the client's address,
# session and task ids), redacted and quoted: each check for a credential
# costs as much as the rest of the field. Bounded: emptied when full.
_rendered: dict[str, str] = {}
_RENDERED_MAX = 4096


def _recurring(value: Any) -> str:
    """``_json_value(value)`` for a value that recurs, remembered (the
    caller looks in ``_rendered`` first)."""
    if type(value) is not str:
        return _json_value(value)
    if len(_rendered) >= _RENDERED_MAX:
        _rendered.clear()
    text = _rendered[value] = _quote(redact(value))
    return text


def _direct_sink() -> _JsonSink | None:
    """The JSON handler :func:`setup_logging` installed, when a record from
    ``roo_daemon.access`` would reach that handler and nothing else: then the
    access line can be written to its stream directly, the same bytes the
    formatter would write. Anything else (a test's capture handler, a filter,
    a handler added by an embedding program, the text format) goes through
    ``logging``."""
    sink = _json_sink
    if (
        sink is None
        or sink.filters
        or type(sink.formatter) is not JsonFormatter
        or _access.handlers
        or _access.filters
        or _access.disabled
        or not _access.propagate
    ):
        return None
    parent = _access.parent
    while parent is not None and parent is not logging.root:
        if parent.handlers or not parent.propagate:
            return None
        parent = parent.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or handlers[0] is not sink:
        return None
    return sink


class _Clock:
    """``ts`` as :class:`JsonFormatter` renders it, with ``strftime`` run
    once a second instead of once a line."""

    second = -1
    prefix = ""

    def ts(self) -> str:
        now = time.time()
        whole = int(now)
        if whole != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self.second = whole
        return self.prefix + _MILLIS[int((now - whole) * 1000)]


_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))  # the end of a ts, for each millisecond
_clock = _Clock()


_INFO_HEAD = '", "level": "info", "logger": "roo_daemon.access", "msg": '


def _access_line(
    level: int,
    msg: str,
    request_id: Any,
    id_ours: bool,
    client: Any,
    route: Any,
    status: Any,
    duration: Any,
    params: list[tuple[str, Any]] | None,
    raw_method: str | None,
) -> str:
    """The access line as ``JsonFormatter`` writes the record
    :func:`access_logger` would log (``tests/ops/test_access_log.py``
    compares), rendered in one f-string: without a ``LogRecord`` (caller
    lookup, thread and process names, ``vars()``: a third of a request) or
    ``json.dumps`` of a dict (a quarter of the line). Only values a client
    chose can hold a credential, so only they are redacted (not the route, a
    template of ours, nor a request id the daemon made: hex digits), and
    recurring ones once (:func:`_recurring`)."""
    head = (
        _INFO_HEAD
        if level == logging.INFO
        else f'", "level": {_quote(logging.getLevelName(level).lower())}, "logger": "roo_daemon.access", "msg": '
    )
    rid = _quote(request_id) if id_ours and type(request_id) is str else _json_value(request_id)
    tail = ""
    if params:
        for key, value in params:
            tail += f", {_quote(key)}: {_rendered.get(value) or _recurring(value)}"
    if raw_method is not None:
        tail += f', "raw_method": {_json_value(raw_method)}'
    return (
        f'{{"ts": "{_clock.ts()}{head}{_quote(msg)}, "request_id": {rid}, '
        f'"client": {_rendered.get(client) or _recurring(client)}, '
        f'"route": {_quote(route) if type(route) is str else _json_value(route)}, '
        f'"status": {status if type(status) is int else _json_value(status)}, '
        f'"duration_ms": {_json_value(duration)}{tail}}}'
    )


def _queue(sink: _JsonSink, line: str) -> None:
    """Queue ``line`` (its terminator included) on the handler; it leaves at
    the end of the loop turn (:func:`_flush_soon`). Without the handler's
    lock: only the loop appends, and :meth:`_JsonSink.write_pending` takes
    just the lines it counted, so a thread writing meanwhile loses none."""
    sink.pending.append(line)
    if not _flush_scheduled:
        _flush_soon(sink)


_flush_scheduled = False


def _flush_soon(sink: _JsonSink) -> None:
    """Write and flush the waiting lines once the loop has run what is
    ready: the lines of all requests answered in one loop turn leave in one
    write, not one system call each. Lines are out within that turn (a test
    or journald waiting for one sees no delay worth the name)."""
    global _flush_scheduled
    if _flush_scheduled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on a loop: now
        _flush(sink)
        return
    _flush_scheduled = True
    loop.call_soon(_flush, sink)


def _flush(sink: _JsonSink) -> None:
    global _flush_scheduled
    _flush_scheduled = False
    try:
        sink.flush()
    except Exception as e:  # as logging does for a failed write: say so on stderr, carry on
        print(f"--- Logging error: writing the access log failed: {e!r}", file=sys.stderr)


_LOGGED_PARAMS = ("session_id", "task_id")  # path parameters the access line carries
_PARAM_KEYS = {key: f", {_quote(key)}: " for key in _LOGGED_PARAMS}


class _Shape:
    """The parts of an access line fixed by its method, route, status and
    level, rendered once: the line is then a few values between them
    (:func:`access_logger`). ``head`` runs from the end of ``ts`` into the
    ``msg`` string up to its duration (a quoted string's escapes are per
    character, so the quoted whole is the quoted parts joined); ``middle``
    from the route to ``duration_ms``'s value."""

    __slots__ = ("head", "middle")

    def __init__(self, level: int, method: str, route: str, status: int) -> None:
        name = "info" if level == logging.INFO else logging.getLevelName(level).lower()
        self.head = (
            f'", "level": {_quote(name)}, "logger": "roo_daemon.access", "msg": '
            + _quote(f"{method} {route} {status} ")[:-1]
        )
        self.middle = f', "route": {_quote(route)}, "status": {status}, "duration_ms": '


_shapes: dict[tuple[str, str, int, int], _Shape] = {}
_SHAPES_MAX = 1024  # methods and statuses are bounded, routes the table's: never reached but by a bug


def _shape(method: str, route: str, status: int, level: int) -> _Shape:
    if len(_shapes) >= _SHAPES_MAX:
        _shapes.clear()
    shape = _shapes[method, route, status, level] = _Shape(level, method, route, status)
    return shape


def access_logger(metrics: Metrics) -> Callable[[Any], None]:
    """Tornado's ``log_function``: one line and the request metrics per request."""

    def log_request(handler: Any) -> None:
        request = handler.request
        status = handler.get_status()
        seconds = request.request_time()
        route = getattr(handler, "route", "(unmatched)")
        raw_method = request.method or ""
        method = bounded_method(raw_method)  # the line's text is as bounded as the metric
        metrics.observe_request(method, route, status, seconds)
        level = logging.INFO if status < 500 else logging.ERROR
        if not _access.isEnabledFor(level):
            return
        request_id = getattr(handler, "request_id", None)
        # The address the limits saw: forwarded only from trusted proxies; unix:uid=N on a unix socket.
        client = getattr(handler, "client_ip", None) or request.remote_ip
        duration = round(seconds * 1000, 2)
        path_kwargs = getattr(handler, "path_kwargs", None)
        # What "other" was, for whoever reads the line (cut: the token can be as long as the headers).
        raw = raw_method[:32] if method != raw_method else None
        sink = _direct_sink()
        if sink is not None:
            if level < sink.level:
                return
            if type(route) is not str or type(status) is not int:  # never ours; rendered field by field
                params = [(k, v) for k, v in (path_kwargs or {}).items() if k in _LOGGED_PARAMS] or None
                msg = f"{method} {route} {status} {seconds * 1000:.1f}ms"
                ours = getattr(handler, "request_id_generated", False)
                line = _access_line(level, msg, request_id, ours, client, route, status, duration, params, raw)
                _queue(sink, line + sink.terminator)
                return
            # The line as _access_line renders it (tests/ops/test_access_log.py
            # compares with logging's), its fixed parts from _Shape.
            shape = _shapes.get((method, route, status, level)) or _shape(method, route, status, level)
            # A request id the daemon made is hex digits: nothing in it to redact.
            if type(request_id) is str and getattr(handler, "request_id_generated", False):
                rid = f'"{request_id}"'
            else:
                rid = _json_value(request_id)
            tail = ""
            if path_kwargs:
                for key, value in path_kwargs.items():
                    if key in _PARAM_KEYS:
                        tail += _PARAM_KEYS[key] + (_rendered.get(value) or _recurring(value))
            if raw is not None:
                tail += f', "raw_method": {_json_value(raw)}'
            _queue(
                sink,
                f'{{"ts": "{_clock.ts()}{shape.head}{seconds * 1000:.1f}ms", "request_id": {rid}, '
                f'"client": {_rendered.get(client) or _recurring(client)}{shape.middle}'
                f"{repr(duration) if duration - duration == 0 else _json_value(duration)}{tail}}}{sink.terminator}",
            )
            return
        params = [(k, v) for k, v in (path_kwargs or {}).items() if k in _LOGGED_PARAMS]
        extra = {
            "request_id": request_id,
            "client": client,
            "route": route,
            "status": status,
            "duration_ms": duration,
            **dict(params),
            **({"raw_method": raw} if raw is not None else {}),
        }
        _access.log(level, "%s %s %d %.1fms", method, route, status, seconds * 1000, extra=extra)

    return log_request
