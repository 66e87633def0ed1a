"""N real ``roo-daemon serve`` processes on one PostgreSQL database.

Each node is a process of its own (``tests/server/daemon_process.py``) with
its own port, ``cluster.node_id`` and data dir, all on one database of the
session's throwaway server (``tests/pgserver.py``). They share one
workspaces root and one ``workspaces.managed_dir`` under the test's
temporary directory, which stands for storage every node mounts at the same
path (``workspaces.shared: true``, the supported failover setup of
docs/cluster.md); ``Cluster(shared=False)`` gives each node directories of
its own instead. The model is the scripted provider, and the lease is short
(3 s) so that a takeover happens within a test's patience.

Tests wait for conditions (a log record, an event, a state read through
the API), with generous deadlines, and never assert how long anything took.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.conftest import PROVIDERS, Api, WsClient
from tests.server.daemon_process import REPO_ROOT, DaemonProcess

T = TypeVar("T")

DSN_ENV = "ROO_CLUSTER_TEST_DSN"  # the DSN reaches the nodes through their environment, as in production
LEASE_SECONDS = 3
HANDOFF_TIMEOUT = 10  # a request for a dead owner's session waits this long for a claim, then 503
START_TIMEOUT = 60.0  # a node starting while others are busy on 2 shared cores
DEADLINE = 60.0  # the patience of every wait: generous, never asserted

# The scripted models of the cluster tests. ``slow`` streams for a while (a
# takeover happens mid-stream); every turn completes, so a resumed run
# completes whichever turn of the script it is on.
SLOW_TEXT = "Streaming a long answer, a few characters at a time, slowly. " * 6
CLUSTER_PROVIDERS: dict[str, Any] = {
    **{name: PROVIDERS[name] for name in ("demo", "hang", "followup", "instant")},
    "slow": {
        "kind": "scripted",
        "delta_ms": 100,
        "chunk_chars": 8,
        "turns": [{"text": SLOW_TEXT, "tool_calls": [{"name": "attempt_completion", "args": {"result": "streamed"}}]}]
        * 4,
    },
    # Writes a file (a checkpoint after it), then completes: "undo" after a takeover.
    "writes": {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "write_to_file", "args": {"path": "notes.txt", "content": "written on A\n"}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "wrote"}}]},
        ],
    },
}


@cache
def schema_keys() -> frozenset[str]:
    """Every configuration key this version knows (``section.key``), from
    roo_daemon/config_schema.yaml: the harness sets the cluster keys only
    once the version under test has them."""
    schema = yaml.safe_load((REPO_ROOT / "roo_daemon" / "config_schema.yaml").read_text())
    keys = set()
    for section, spec in schema["properties"].items():
        for key in spec.get("properties") or {}:
            keys.add(f"{section}.{key}")
    return frozenset(keys)


def has_leases() -> bool:
    """Several nodes may serve one database (session leases have landed)."""
    return "cluster.node_id" in schema_keys()


class Node(DaemonProcess):
    """One run of one node; :meth:`Cluster.restart` makes the next run."""

    def __init__(self, name: str, run: int, workdir: Path, config: dict[str, Any], data_dir: Path, dsn: str) -> None:
        super().__init__(workdir, config, data_dir, env={DSN_ENV: dsn})
        self.name = name
        self.run = run

    @property
    def api(self) -> Api:
        return Api(self.base_url)

    async def ws(self) -> WsClient:
        """A WebSocket to this node; every frame is checked against the spec."""
        return await WsClient.connect(self.base_url)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9``: no drain, no last writes; the lease simply stops being renewed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    async def stop(self) -> int:
        """SIGTERM and the exit status (the node drains as in production)."""
        self.send_signal(signal.SIGTERM)
        return await self.await_exit(60)


class Cluster:
    """Nodes named ``a``, ``b``, ``c``, ... on one database."""

    def __init__(self, tmp_path: Path, dsn: str, *, shared: bool = True, lease_seconds: int = LEASE_SECONDS) -> None:
        self.tmp_path = tmp_path
        self.dsn = dsn
        self.shared = shared
        self.lease_seconds = lease_seconds
        self.nodes: dict[str, Node] = {}
        self._all: list[Node] = []
        self.shared_dir = tmp_path / "shared"  # the storage every node mounts at the same path
        (self.shared_dir / "roots").mkdir(parents=True)
        (self.shared_dir / "managed").mkdir()

    # -- paths --------------------------------------------------------------

    def root(self, name: str) -> Path:
        """The workspaces root of node ``name`` (the same for every node when shared)."""
        if self.shared:
            return self.shared_dir / "roots"
        path = self.tmp_path / "nodes" / name / "roots"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def workspace(self, label: str, node: str = "a") -> str:
        """A new workspace directory under ``node``'s root (every node's, if shared)."""
        path = self.root(node) / label
        path.mkdir()
        return str(path)

    # -- configuration --------------------------------------------------------

    def config(self, name: str, **sections: dict[str, Any]) -> dict[str, Any]:
        node_dir = self.tmp_path / "nodes" / name
        keys = schema_keys()
        workspaces: dict[str, Any] = {"roots": [str(self.root(name))]}
        if "workspaces.managed_dir" in keys:
            managed = self.shared_dir / "managed" if self.shared else node_dir / "managed"
            workspaces["managed_dir"] = str(managed)
        if "workspaces.shared" in keys:
            workspaces["shared"] = self.shared
        cfg: dict[str, Any] = {
            "server": {"host": "127.0.0.1"},
            "store": {"backend": "postgresql", "dsn_env": DSN_ENV, "pool_size": 2},
            "workspaces": workspaces,
            "engine": {"delta_coalesce_ms": 0, "max_concurrent_tasks": 50},
            "websocket": {"ping_interval_seconds": 0},
            "log": {"level": "info", "format": "json"},
            "providers": copy.deepcopy(CLUSTER_PROVIDERS),
        }
        if "cluster.node_id" in keys:
            cfg["cluster"] = {"node_id": name}
            if "cluster.lease_seconds" in keys:
                cfg["cluster"]["lease_seconds"] = self.lease_seconds
            if "cluster.handoff_timeout_seconds" in keys:
                cfg["cluster"]["handoff_timeout_seconds"] = HANDOFF_TIMEOUT
        for section, values in sections.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    # -- lifecycle ------------------------------------------------------------

    def node(self, name: str, **sections: dict[str, Any]) -> Node:
        """The next run of node ``name`` (not started): its data dir persists across runs."""
        run = sum(1 for n in self._all if n.name == name)
        workdir = self.tmp_path / "nodes" / name / f"run{run}"
        workdir.mkdir(parents=True)
        data_dir = self.tmp_path / "nodes" / name / "data"
        node = Node(name, run, workdir, self.config(name, **sections), data_dir, self.dsn)
        self._all.append(node)
        self.nodes[name] = node
        return node

    async def start(self, *names: str, **sections: dict[str, Any]) -> list[Node]:
        """Start nodes together (nodes starting at once migrate the schema one
        at a time, under a lock) and wait until each listens; returns them."""
        started = [self.node(name, **sections) for name in names]
        await asyncio.gather(*(node.astart(START_TIMEOUT) for node in started))
        return started

    async def restart(self, name: str, **sections: dict[str, Any]) -> Node:
        """A new run of ``name`` with the same node id and data dir (the old one must be gone)."""
        old = self.nodes.get(name)
        assert old is None or not old.alive(), f"node {name} still runs"
        (node,) = await self.start(name, **sections)
        return node

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def close(self) -> None:
        """Teardown: every run still alive is killed."""
        for node in self._all:
            node.kill()


# -- waiting ------------------------------------------------------------------


async def wait_until(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``check`` (an API read) until it returns something truthy; fails
    naming ``what`` after ``timeout`` (generous: a deadline, not a measurement)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except (OSError, ConnectionError) as e:  # a node still starting or just killed
            last = e
        if last:
            return last
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s (last: {last!r})"
        await asyncio.sleep(0.1)  # polling state the daemons report: there is nothing to await


async def task_state(api: Api, session_id: str, task_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}")
    assert r.status == 200, r.body
    return r.json


async def wait_task(api: Api, session_id: str, task_id: str, *statuses: str, timeout: float = DEADLINE) -> dict:
    """The task, once it has one of ``statuses`` (read through ``api``'s node)."""

    async def check() -> dict[str, Any] | None:
        task = await task_state(api, session_id, task_id)
        return task if task["status"] in statuses else None

    return await wait_until(check, f"task {task_id} {'/'.join(statuses)}", timeout)


class Recorder:
    """Every frame a WebSocket receives, in the background, for checks of
    order and completeness after the fact (the connection stays open across
    another node's death)."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (frame := await self.ws.recv()) is not None:
            self.frames.append(frame)
            self._changed.set()
        self.closed = True
        self._changed.set()

    @classmethod
    async def subscribe(cls, node: Node, after: int = 0, **filters: str) -> Recorder:
        ws = await node.ws()
        await ws.send({"op": "subscribe", "id": "rec", "after": after, **filters})
        first = await ws.recv()
        assert first is not None and first.get("event") == "subscribed", first
        return cls(ws)

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = DEADLINE) -> dict:
        """The first event frame (received so far or to come) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((f for f in self.events() if predicate(f)), None)
            if found is not None:
                return found
            assert not self.closed, f"{what}: the WebSocket closed; last frames {self.frames[-3:]}"
            left = deadline - time.monotonic()
            assert left > 0, f"{what}: not within {timeout}s; last frames {self.frames[-3:]}"
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def assert_in_order_once(self) -> list[int]:
        """The event frames' seqs rise strictly: none repeated, none out of order; returns them."""
        seqs = [f["seq"] for f in self.events()]
        assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), f"seqs out of order or repeated: {seqs}"
        gaps = [f for f in self.frames if f.get("event") == "gap"]
        assert not gaps, f"gap frames: {gaps}"
        return seqs

    def close(self) -> None:
        self._reader.cancel()
        self.ws.close()
