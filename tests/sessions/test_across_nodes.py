"""Sessions across nodes (PostgreSQL): every node knows every session, not
only those it owns. A session created on A is visible on B at once (a miss
reads the store); changes and deletions made on its owner reach the other
nodes' caches through the event log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import Principal
from roo_daemon.problems import Problem
from tests.conftest import make_config
from tests.waiting import until

ADMIN = Principal("admin", frozenset({"admin", "read", "write"}))
ALICE = Principal("alice", frozenset({"read", "write"}))


def node_config(tmp_path: Path, name: str) -> dict[str, Any]:
    (tmp_path / name).mkdir(exist_ok=True)
    return make_config(
        tmp_path / name,
        store={"backend": "postgresql", "dsn_env": "ROO_TEST_PG_SHARED"},
        cluster={"node_id": f"node-{name}"},
    )


@pytest.mark.gen_test(timeout=90)
async def test_a_session_made_on_one_node_is_seen_and_followed_on_another(
    tmp_path: Path, pg_dsn: str, monkeypatch: Any
) -> None:
    from roo_daemon.context import open_context

    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)
    a = await open_context(node_config(tmp_path, "a"))
    b = await open_context(node_config(tmp_path, "b"))
    try:
        session, _ = await a.sessions.create(ALICE, {"name": "first"}, None)
        # At once, before any notification: B reads the store on a miss.
        seen = await b.sessions.visible(ALICE, session.id)
        assert seen.name == "first" and seen.owner == "alice" and not b.ownership.is_local(session.id)
        with pytest.raises(Problem) as missing:
            await b.sessions.visible(Principal("bob", frozenset({"read"})), session.id)
        assert missing.value.status_code == 404  # someone else's: 404 as on one node
        with pytest.raises(Problem) as unknown:
            await b.sessions.visible(ALICE, "ses_unknown")
        assert unknown.value.status_code == 404

        # A change made on the owner reaches B's cached copy (in place).
        await a.sessions.update(ALICE, session.id, {"name": "second", "auto_approve": {"write": True}})
        await until(lambda: b.sessions.sessions[session.id].name == "second")
        assert b.sessions.sessions[session.id] is seen and seen.auto_approve["write"] is True

        # A session B has never looked at arrives in its cache by the event alone.
        other, _ = await a.sessions.create(ALICE, {"name": "other"}, None)
        await until(lambda: other.id in b.sessions.sessions)

        # Deleted on the owner: gone from B too.
        await a.sessions.delete(ALICE, session.id)
        await until(lambda: session.id not in b.sessions.sessions)
        with pytest.raises(Problem):
            await b.sessions.visible(ALICE, session.id)
        assert a.sessions.sessions.keys() == b.sessions.sessions.keys() == {other.id}
    finally:
        await a.close()
        await b.close()
