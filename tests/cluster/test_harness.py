"""The harness itself: a node is a real ``roo-daemon serve`` on the test's
PostgreSQL database, whose tasks run and whose events a WebSocket follows;
a second process with the same node's configuration is refused (one
process per node id, whatever else the cluster allows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, Node, Recorder, wait_task
from tests.tasks.helpers import all_events


@pytest.mark.gen_test(timeout=180)
async def test_a_node_runs_a_task_on_the_shared_database(cluster: Cluster) -> None:
    (a,) = await cluster.start("a")
    assert (await a.api.get("/readyz")).status == 200
    session = await a.api.session(workspace=cluster.workspace("w1"))
    rec = await Recorder.subscribe(a, session_id=session["id"])
    try:
        task = await a.api.task(session["id"], provider="instant")
        done = await wait_task(a.api, session["id"], task["id"], "completed")
        assert done["result"] == "ok"
        await rec.wait_for(lambda f: f["event"] == "task.completed", "task.completed on the WebSocket")
        rec.assert_in_order_once()
        stored = await all_events(a.api, session["id"], task["id"])
        assert [f for f in rec.events() if f.get("task_id") == task["id"]] == stored  # what the cluster tests compare
    finally:
        rec.close()
    # The node's state is in the database: a restart of the node (same id,
    # same data dir) serves the same session.
    assert await a.stop() == 0
    a2 = await cluster.restart("a")
    r = await a2.api.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")
    assert r.status == 200 and r.json["status"] == "completed"


@pytest.mark.gen_test(timeout=180)
async def test_the_same_node_id_started_twice_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    """A second process with node ``a``'s configuration but a data dir of
    its own (so the data dir's lock is not what stops it) exits 2: the
    database says node ``a`` is served already."""
    (a,) = await cluster.start("a")
    twin_dir = tmp_path / "twin"
    twin_dir.mkdir()
    twin = Node("a", 0, twin_dir, cluster.config("a"), twin_dir / "data", cluster.dsn)
    try:
        twin.launch()
        assert await twin.await_exit(60) == 2
    finally:
        twin.kill()
    assert len(twin.stderr_lines) == 1 and twin.stderr_lines[0].startswith("roo-daemon: "), twin.stderr_lines
    assert (await a.api.get("/readyz")).status == 200  # the first one serves on
