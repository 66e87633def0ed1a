"""Accepting connections, with a backoff when the process runs out of
file descriptors.

Tornado's accept handler lets ``accept()``'s EMFILE escape: the listening
socket stays readable (the client waits in the backlog), so the loop calls
the handler again at once, forever: one core busy and a traceback per try.
:class:`Acceptor` stops watching the socket instead, for 50 ms at first and
doubling to 1 s while it keeps failing; the clients wait in the kernel's
backlog meanwhile and are accepted once descriptors are free. Each failure
is counted (``accept_errors_total{reason}``); the log says it once per
``LOG_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

log = logging.getLogger("roo_daemon.accept")

# Out of a resource the kernel will have again later: wait, do not spin.
RESOURCE_ERRNOS = {errno.EMFILE: "emfile", errno.ENFILE: "enfile", errno.ENOBUFS: "enobufs", errno.ENOMEM: "enomem"}
MIN_PAUSE_SECONDS = 0.05
MAX_PAUSE_SECONDS = 1.0
LOG_INTERVAL_SECONDS = 10.0
_BATCH = 128  # accepts per readiness event, as Tornado does


class Acceptor:
    """``callback(connection, address)`` for each connection on ``sock``."""

    def __init__(
        self,
        sock: socket.socket,
        callback: Callable[[socket.socket, Any], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.sock = sock
        self.callback = callback
        self.on_error = on_error  # gets the bounded reason ("emfile"...), for a metric
        self.loop = IOLoop.current()
        self._pause = MIN_PAUSE_SECONDS
        self._resume_at: object | None = None  # the timeout handle while paused
        self._removed = False
        self._logged_at = -LOG_INTERVAL_SECONDS
        self._unlogged = 0
        self.loop.add_handler(sock, self._ready, IOLoop.READ)

    def _ready(self, fd: Any, events: int) -> None:
        for _ in range(_BATCH):
            if self._removed or self._resume_at is not None:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # the client gave up while it waited
            except OSError as e:
                reason = RESOURCE_ERRNOS.get(e.errno or 0)
                if reason is None:
                    raise
                self._back_off(e, reason)
                return
            self._pause = MIN_PAUSE_SECONDS
            self.callback(connection, address)

    def _back_off(self, e: OSError, reason: str) -> None:
        self.loop.remove_handler(self.sock)
        self._resume_at = self.loop.call_later(self._pause, self._resume)
        if self.on_error is not None:
            self.on_error(reason)
        self._say(e, reason)
        self._pause = min(self._pause * 2, MAX_PAUSE_SECONDS)

    def _say(self, e: OSError, reason: str) -> None:
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL_SECONDS:
            self._unlogged += 1
            return
        since = f"; {self._unlogged} more times since the last line" if self._unlogged else ""
        log.warning(
            "cannot accept connections: %s (%s); they wait in the backlog, retrying in %.2f s%s",
            e.strerror,
            reason.upper(),
            self._pause,
            since,
            extra={"errno": reason, "retry_seconds": self._pause},
        )
        self._logged_at, self._unlogged = now, 0

    def _resume(self) -> None:
        self._resume_at = None
        if not self._removed:
            self.loop.add_handler(self.sock, self._ready, IOLoop.READ)  # still readable if clients wait

    def remove(self) -> None:
        """Stop accepting (the server is stopping)."""
        if self._removed:
            return
        self._removed = True
        if self._resume_at is not None:
            self.loop.remove_timeout(self._resume_at)
            self._resume_at = None
        else:
            self.loop.remove_handler(self.sock)
