"""The daemon on a PostgreSQL that goes away and comes back: ``/readyz``
fails while the database is unreachable (quickly, not after the pool's
whole wait), writes fail with 503 ``storage-unavailable``, and both recover
when it returns, without a restart. The pool shows in ``/metrics``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_config


@pytest.fixture
def own_server() -> Any:
    """A server of this test's own: it is stopped and started again."""
    from tests.pgserver import start_or_skip

    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, own_server: Any, monkeypatch: Any) -> dict[str, Any]:
    monkeypatch.setenv("ROO_TEST_PG_OWN", own_server.fresh_database())
    return make_config(tmp_path, store={"backend": "postgresql", "dsn_env": "ROO_TEST_PG_OWN", "pool_size": 2})


@pytest.mark.gen_test(timeout=120)
async def test_readyz_follows_the_database(api: Api, own_server: Any) -> None:
    assert (await api.get("/readyz")).status == 200
    metrics = (await api.get("/metrics")).body.decode()
    assert 'store_pool_connections{state="open"}' in metrics

    # The test server commits asynchronously (synchronous_commit off) and
    # stops with -m immediate: its last commits (the schema's last
    # migration, the node's row) would be lost. Make them durable first.
    import psycopg

    with psycopg.connect(own_server.dsn(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    own_server.stop_server()
    started = time.monotonic()
    r = await api.get("/readyz")
    assert r.status == 503 and r.json["type"].endswith("store-unavailable")
    assert time.monotonic() - started < 8  # the probe's own timeout, not the pool's wait
    r = await api.post("/api/v1/sessions", {})
    assert r.status == 503 and r.json["type"].endswith("storage-unavailable")
    assert r.json["detail"].endswith("retry once the database takes writes again"), r.json

    own_server.start()
    deadline = time.monotonic() + 30
    while (r := await api.get("/readyz")).status != 200 and time.monotonic() < deadline:
        pass
    assert r.status == 200
    assert (await api.post("/api/v1/sessions", {})).status == 201
