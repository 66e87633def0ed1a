"""Socket activation: adopt the listening sockets systemd passes in, as
sd_listen_fds(3) describes, instead of binding our own.

systemd (a ``.socket`` unit) binds the port, starts the service and hands
it the sockets as file descriptors 3, 4, ... with ``LISTEN_FDS=<count>`` and
``LISTEN_PID=<the daemon's pid>`` (the pid check stops a child that inherited
the environment from taking them too). The daemon then serves on them; the
port stays bound across restarts, so connections queue instead of being
refused while it restarts.

The variables are removed from the environment once read, and the
descriptors made close-on-exec, so commands the agent runs inherit neither.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger("roo_daemon.sockets")

SD_LISTEN_FDS_START = 3
_ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class SocketActivationError(OSError):
    """The passed-in sockets cannot be served (the CLI reports it and exits 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINVAL, message)


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets passed to this process, or ``[]`` when none were
    (no ``LISTEN_FDS``, or ``LISTEN_PID`` names another process)."""
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    if not pid or not count:
        return []
    if pid != str(os.getpid()):
        log.info("ignoring LISTEN_FDS meant for pid %s", pid)
        return []
    names = env.get("LISTEN_FDNAMES", "").split(":")
    for var in _ACTIVATION_VARS:
        env.pop(var, None)
    if not count.isdigit() or int(count) < 1:
        raise SocketActivationError(f"LISTEN_FDS={count!r} is not a positive count of sockets")
    adopted = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
        except OSError as e:
            raise SocketActivationError(f"passed descriptor {fd} is not a socket: {e.strerror}") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            raise SocketActivationError(
                f"passed descriptor {fd} is not a listening stream socket (use ListenStream= in the .socket unit)"
            )
        sock.setblocking(False)
        adopted.append(sock)
        name = names[fd - SD_LISTEN_FDS_START] if fd - SD_LISTEN_FDS_START < len(names) else ""
        log.info("adopted socket %s from systemd", describe(sock), extra={"fd": fd, "fd_name": name or None})
    return adopted


def describe(sock: socket.socket) -> str:
    """``host:port`` (``[v6]:port``) or ``unix:/path`` of a listening socket."""
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{addr if isinstance(addr, str) else addr.decode(errors='replace')}"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def tcp_port(sockets: list[socket.socket]) -> int | None:
    """The port of the first TCP socket, if any."""
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return sock.getsockname()[1]
    return None


def check_exposure(sockets: list[socket.socket], keys_configured: bool) -> None:
    """Without API keys the daemon serves loopback (or a local unix socket)
    only, the same rule config.py applies to ``server.host``: a passed-in
    socket must not widen it."""
    if keys_configured:
        return
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = sock.getsockname()[0]
            if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                raise SocketActivationError(
                    f"refusing to serve on {describe(sock)} without API keys (only loopback may run without keys)"
                )
