"""systemd's notify protocol, written against the spec (sd_notify(3)): one
datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@``
means the abstract namespace). Without ``$NOTIFY_SOCKET`` every call is a
no-op, so the daemon runs the same outside systemd."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("roo_daemon.sdnotify")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = int(usec) / 2e6 if watchdog_for_us else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``FIELD=value`` lines in one datagram. Non-blocking: a
        datagram to a local socket either goes at once or is dropped."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)
                s.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as e:
            log.warning("sd_notify failed: %s", e)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=draining")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")
