"""The ``cluster`` fixture: nodes (real daemon processes) on one fresh
database of the session's throwaway PostgreSQL (tests/cluster/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path, pg_dsn: str) -> Iterator[Cluster]:
    """Nodes with shared workspaces (the supported failover setup); start
    them with ``await cluster.start("a", "b", "c")``."""
    c = Cluster(tmp_path, pg_dsn, shared=True)
    yield c
    c.close()


@pytest.fixture
def unshared_cluster(tmp_path: Path, pg_dsn: str) -> Iterator[Cluster]:
    """Nodes whose workspaces are each node's own (``workspaces.shared: false``)."""
    c = Cluster(tmp_path, pg_dsn, shared=False)
    yield c
    c.close()
