"""Several daemons on one PostgreSQL database: which node owns which
session, how requests reach a session's owner, and the per-principal caps
that hold for the whole cluster (docs/postgresql.md).

``nodes`` (a node's lease), ``ownership`` (which node owns each session,
with its fencing token), ``fence`` (the check that refuses a write for a
session this node no longer owns), ``handoff`` and ``remote`` (requests
for a session owned elsewhere), ``caps``. On SQLite the one daemon owns
everything (``ownership.SoleNode``).
"""
