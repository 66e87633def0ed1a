"""The daemon's lifecycle: start, serve, and a graceful stop on SIGTERM/SIGINT.

Stop order: ``/readyz`` turns 503; the listener closes; requests arriving
on open connections are answered 503 ``shutting-down`` with ``Connection:
close`` (roo_daemon/drain.py); in-flight requests get up to
``server.shutdown_grace_seconds`` to finish and be written; then the idle
connections close and WebSockets close with 1001;
running tasks stop and are stored ``interrupted``; the store is flushed and
closed; exit 0. If the store could not be written (a full disk), the daemon
still exits, with status 1: tasks whose final status was lost are marked
``interrupted`` by the next start's recovery.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import signal
import socket
import time
from pathlib import Path
from typing import Any

from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from roo_daemon import __version__
from roo_daemon.app import make_app
from roo_daemon.auth import Authenticator
from roo_daemon.config import SCHEMA, Config, ConfigError, load_config
from roo_daemon.context import AppContext, StartupError, open_context
from roo_daemon.drain import DrainingHTTPServer
from roo_daemon.logs import set_level
from roo_daemon.looplag import LoopLagMonitor
from roo_daemon.sdnotify import Notifier
from roo_daemon.sockets import SocketActivationError, check_exposure, describe, listen_fds, tcp_port
from roo_daemon.store.lock import holder_of

log = logging.getLogger("roo_daemon.server")

# What a SIGHUP applies. Any other setting that changed in the file keeps its
# running value (the HTTP server, the store, the engine and the providers are
# built from it at start) and is named in a warning, never silently ignored.
LIVE_SECTIONS = ("auth", "limits")
LIVE_KEYS = ("log.level", "websocket.max_subscriptions", "mcp.servers")


def changed_settings(running: Config, fresh: Config) -> dict[str, tuple[Any, Any]]:
    """``section.key`` -> ``(running value, file value)`` for every option that
    differs (a whole provider profile counts as one key)."""
    out: dict[str, tuple[Any, Any]] = {}
    for section in SCHEMA["properties"]:
        old, new = running.get(section) or {}, fresh.get(section) or {}
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                out[f"{section}.{key}"] = (old.get(key), new.get(key))
    return out


def applies_live(setting: str) -> bool:
    return setting.split(".", 1)[0] in LIVE_SECTIONS or setting in LIVE_KEYS


def describe_changes(changed: dict[str, tuple[Any, Any]]) -> str:
    """``limits.read {"burst":200,"rate":100} -> {"burst":10,"rate":5}; auth.keys``:
    values of ``auth`` are never logged (hashes; the redactor would hide them anyway),
    nor ``mcp.servers`` (headers; the hub logs which servers changed)."""

    def show(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)

    return "; ".join(
        name if name.startswith("auth.") or name == "mcp.servers" else f"{name} {show(old)} -> {show(new)}"
        for name, (old, new) in changed.items()
    )


def listen_on(host: str, port: int) -> list[socket.socket]:
    """The listening sockets for ``host:port``; a :class:`StartupError`
    naming the address when it cannot be had (taken, not this machine's),
    which the CLI prints once and exits 2 on, as for any start-up error."""
    try:
        return bind_sockets(port, host)
    except OSError as e:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = "the address is already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        hint = " (another roo-daemon, or another program, listens there; choose another with --port)"
        raise StartupError(
            f"cannot listen on {address}: {reason}" + (hint if e.errno == errno.EADDRINUSE else "")
        ) from None


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.ctx: AppContext | None = None
        self.http: DrainingHTTPServer | None = None
        self.port: int | None = None
        self._sockets: list[socket.socket] = []
        self._stopping: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self._pruner: PeriodicCallback | None = None
        self._watchdog: PeriodicCallback | None = None
        self._loop_lag: LoopLagMonitor | None = None
        self.notifier = Notifier()
        self.exit_status = 0  # what `roo-daemon serve` exits with after a stop

    async def start(self) -> None:
        started = time.monotonic()
        # Socket activation: systemd bound the port for us. Checked before the
        # store is opened, so a wrong socket fails the start at once.
        adopted = listen_fds()
        server_cfg = self.cfg["server"]
        if adopted:
            check_exposure(adopted, bool(self.cfg["auth"]["keys"]))
            self._sockets = adopted
        else:
            # Bound before the store is opened: a taken port fails the start
            # having touched nothing (no data dir made, no task recovered).
            try:
                self._sockets = listen_on(server_cfg["host"], server_cfg["port"])
            except StartupError:
                # The same config started twice: the port is the live daemon's,
                # and naming it (pid and data dir) says more than "in use".
                live = holder_of(Path(self.cfg["store"]["data_dir"]).expanduser().resolve())
                if live is not None:
                    raise StartupError(str(live)) from None
                raise
        try:
            self.ctx = ctx = await open_context(self.cfg)
        except BaseException:
            if not adopted:
                for sock in self._sockets:
                    sock.close()
            raise
        # Everything loaded so far lives as long as the daemon: move it out of
        # the collector's way, and collect the young generation less often,
        # so long-lived state does not turn into pauses on the event stream.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        # Tornado's own cap is a backstop well above ours: the handlers answer
        # 413 themselves, before reading, for anything over max_body_bytes.
        self.http = DrainingHTTPServer(
            make_app(ctx),
            max_body_size=server_cfg["max_body_bytes"] * 4,
            max_header_size=server_cfg["max_header_bytes"],
            # Tornado applies this while waiting for a request's headers too:
            # a client that connects and sends nothing is dropped after it.
            idle_connection_timeout=server_cfg["idle_timeout_seconds"],
            body_timeout=server_cfg["body_timeout_seconds"],
        )
        if adopted:
            where = ", ".join(describe(s) for s in adopted)
        else:
            where = f"{server_cfg['host']}:{self._sockets[0].getsockname()[1]}"
        self.http.on_accept_error = lambda reason: ctx.metrics.accept_errors.labels(reason).inc()
        self.http.add_sockets(self._sockets)
        self.port = tcp_port(self._sockets)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        ev = self.cfg["events"]
        self._pruner = PeriodicCallback(self._prune, ev["prune_interval_seconds"] * 1000)
        self._pruner.start()
        self._loop_lag = LoopLagMonitor(ctx.metrics.loop_lag.observe)
        self._loop_lag.start()
        if self.notifier.watchdog_interval:
            # Sent from the loop itself: a stuck loop stops the pings and
            # systemd restarts the daemon.
            self._watchdog = PeriodicCallback(self.notifier.watchdog, self.notifier.watchdog_interval * 1000)
            self._watchdog.start()
        self.notifier.ready(f"listening on {where}")
        for name, provider in ctx.sessions.providers.items():
            if provider.kind == "scripted":
                log.info("provider %r is scripted: an offline, deterministic script, not a real model", name)
        if not ctx.db.reclaims_space:
            log.warning(
                "the store was made before incremental vacuum: it keeps the space pruned events used;"
                " stop the daemon and run `roo-daemon vacuum` once to convert it",
                extra={"store": str(ctx.db.path)},
            )
        if any(ctx.recovered.values()):
            log.info("recovered tasks from the last run", extra=ctx.recovered)
        log.info(
            "roo-daemon %s listening on %s (ready in %.0f ms)",
            __version__,
            ", ".join(w if w.startswith("unix:") else f"http://{w}" for w in where.split(", ")),
            (time.monotonic() - started) * 1000,
            extra={"port": self.port, "data_dir": str(ctx.data_dir), "socket_activated": bool(adopted)},
        )

    async def _prune(self) -> None:
        assert self.ctx is not None
        ev = self.cfg["events"]
        try:
            await self.ctx.bus.prune(ev["retention_max_events"], ev["retention_seconds"])
            await self.ctx.sessions.idempotency.prune()  # one guard, shared with the task manager
            await self.ctx.db.reclaim()  # the file shrinks too, not only the row count
        except Exception:
            log.exception("pruning failed")

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply what can change live: the
        ``auth`` section (keys, keys file, protect_metrics), the log level,
        every ``limits.*`` and ``websocket.max_subscriptions``. Connections stay
        open (but those of a removed key); a bad file changes nothing; other
        changed settings are named in a warning and wait for a restart."""
        assert self.ctx is not None
        try:
            # A small file read on the loop, once per SIGHUP: not worth a thread.
            fresh = load_config(self.cfg["_config_path"], overrides=self.cfg["_overrides"])
        except ConfigError as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            return
        try:
            # The file's check saw its own server.host, but the listener is the
            # running one (a host change waits for a restart; systemd may have
            # bound it): no keys must not open a non-loopback address to all.
            check_exposure(self._sockets, bool(fresh["auth"]["keys"]))
        except SocketActivationError as e:
            log.error("reload failed, keeping the running configuration: %s", e.strerror)
            return
        changed = changed_settings(self.cfg, fresh)  # before self.cfg takes the new values
        previous, self.ctx.auth = self.ctx.auth, Authenticator(fresh["auth"]["keys"])
        self.cfg["auth"] = fresh["auth"]
        revoked = self._recheck_websockets(previous)
        self.cfg["log"]["level"] = fresh["log"]["level"]
        set_level(fresh["log"]["level"])
        self.ctx.update_limits(fresh["limits"], fresh["websocket"]["max_subscriptions"])
        if self.ctx.mcp is not None:
            self.ctx.mcp.reload(fresh["mcp"])  # stops removed or redefined servers
            self.cfg["mcp"]["servers"] = fresh["mcp"]["servers"]
        self._log_reload(changed, revoked)

    def _log_reload(self, changed: dict[str, tuple[Any, Any]], revoked: int) -> None:
        """One line saying what the reload changed, and a warning naming what it
        could not: an operator must not believe a setting is live when it is not."""
        applied = {name: values for name, values in changed.items() if applies_live(name)}
        pending = [name for name in changed if not applies_live(name)]
        log.info(
            "configuration reloaded: %s",
            describe_changes(applied) or "no live setting changed",
            extra={
                "keys": len(self.cfg["auth"]["keys"]),
                "log_level": self.cfg["log"]["level"],  # not "level": that is the line's own severity
                "websockets_revoked": revoked,
                "changed": list(applied),
                "restart_required": pending,
            },
        )
        if pending:
            log.warning(
                "settings changed that only a restart applies; they keep their running values until then: %s",
                ", ".join(pending),
                extra={"restart_required": pending},
            )

    def _recheck_websockets(self, previous: Authenticator) -> int:
        """Open WebSockets stay open across a reload, with their key's new
        scopes; those whose key was removed (or replaced) are closed with
        1008, so revoking a key also ends its live streams."""
        assert self.ctx is not None
        revoked = 0
        for ws in list(self.ctx.websockets):
            if ws.principal is None:
                continue  # not authenticated yet: its auth op meets the new keys
            current = self.ctx.auth.carry_over(ws.principal, previous)
            if current is None:
                ws.close(1008, "API key revoked")
                revoked += 1
            else:
                ws.principal = current
        return revoked

    def request_stop(self, sig: int | None = None) -> None:
        if self._stopping is None:
            log.info("received %s: shutting down", signal.Signals(sig).name if sig else "stop request")
            self._stopping = asyncio.get_running_loop().create_task(self.stop())

    async def stop(self) -> None:
        """The whole stop; whatever fails in it, the process still exits."""
        try:
            await self._stop()
        except Exception:
            log.exception("the stop failed part way; exiting anyway")
            self.exit_status = 1
        finally:
            self._stopped.set()

    async def _stop(self) -> None:
        ctx = self.ctx
        assert ctx is not None and self.http is not None
        ctx.shutting_down = True
        self.notifier.stopping()
        for timer in (self._pruner, self._watchdog, self._loop_lag):
            if timer:
                timer.stop()
        self.http.stop()  # closes the listening sockets: no new connections
        self.http.start_drain()  # and no new requests on the open ones
        if not await self.http.drained(self.cfg["server"]["shutdown_grace_seconds"]):
            log.warning("%d requests still in flight after the grace period", self.http.in_flight)
        if self.http.refused:
            log.info("answered 503 to %d requests that arrived during the drain", self.http.refused)
        for ws in list(ctx.websockets):
            ws.close(1001, "server shutting down")
        await self.http.close_all_connections()
        await ctx.close()
        if ctx.db.unwritable is not None:
            log.error(
                "stopped, but the store could not be written (%s): the last changes, such as running tasks'"
                " final status, were lost; the next start marks those tasks interrupted",
                ctx.db.unwritable.reason,
            )
            self.exit_status = 1
            return
        log.info("stopped")

    async def run(self) -> int:
        """Serve until stopped; the exit status."""
        await self.start()
        await self._stopped.wait()
        return self.exit_status
