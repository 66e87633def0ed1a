"""A throwaway PostgreSQL server for the tests.

Debian's ``postgresql`` package (``.ci/run`` installs it) puts ``initdb``
and ``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``. The cluster is
made in a fresh temporary directory, listens on 127.0.0.1 only (on a free
port; its Unix socket sits in the same directory) and trusts local
connections: nothing outlives the test session. PostgreSQL refuses to run
as root, and CI runs as root, so then ``initdb`` and the server run as
``nobody`` through ``runuser`` (the directory is handed to that user).
Durability is off (``fsync=off``): a test server never survives a crash.

Each test gets a database of its own (``fresh_database``), so tests never
see each other's rows and need no cleanup.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.needs import missing, module_or_skip

RUN_AS = "nobody"  # when the tests run as root


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="roo-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self.as_root = os.geteuid() == 0
        self.durable = False  # True (benchmarks): fsync and synchronous_commit as in production

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)

    def start(self) -> None:
        """Make the cluster (the first time) and start the server."""
        if self.data.exists():
            return self._start_server()
        if self.as_root:
            shutil.chown(self.dir, RUN_AS)
        done = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--locale=C",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self._start_server()

    def _start_server(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w",
            "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace") if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log[-2000:]}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def fresh_database(self) -> str:
        """A new, empty database; returns its DSN."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop_server(self) -> None:
        """Stop the server (its data stays: ``start`` brings it back on the same port)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_or_skip() -> PgServer:
    """A running server; skips (fails under CI=true) when PostgreSQL or the
    driver is not installed."""
    module_or_skip("psycopg", "pip install -e '.[test]' installs it")
    bindir = bin_dir()
    if bindir is None:
        missing("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing("running as root, PostgreSQL needs runuser (util-linux) to start as an unprivileged user")
    server = PgServer(bindir)  # type: ignore[arg-type]
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    return server
