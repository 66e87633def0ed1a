"""Logging: one JSON object per line (journald-friendly), or readable text
on a terminal; and the access log line for every request."""

from __future__ import annotations

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


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced."""
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


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "text" if sys.stdout.isatty() else "json"
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
    # Tornado's own access log is replaced by ours.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


_access = logging.getLogger("roo_daemon.access")


def access_logger(metrics: Metrics) -> Callable[[Any], None]:
    """Tornado's ``log_function``: one line and the request metrics per request."""

    def log_request(handler: Any) -> None:
        status = handler.get_status()
        seconds = handler.request.request_time()
        route = getattr(handler, "route", "(unmatched)")
        raw_method = handler.request.method or ""
        method = bounded_method(raw_method)  # the line's text is as bounded as the metric
        metrics.observe_request(method, route, status, seconds)
        if status < 400 and not _access.isEnabledFor(logging.INFO):
            return
        level = logging.INFO if status < 500 else logging.ERROR
        path_kwargs = getattr(handler, "path_kwargs", None) or {}
        _access.log(
            level,
            "%s %s %d %.1fms",
            method,
            route,
            status,
            seconds * 1000,
            extra={
                "request_id": getattr(handler, "request_id", None),
                # The address the limits saw: forwarded only from trusted proxies; unix:uid=N on a unix socket.
                "client": getattr(handler, "client_ip", None) or handler.request.remote_ip,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                **{k: v for k, v in path_kwargs.items() if k in ("session_id", "task_id")},
                # What "other" was, for whoever reads the line (cut: the token can be as long as the headers).
                **({"raw_method": raw_method[:32]} if method != raw_method else {}),
            },
        )

    return log_request
