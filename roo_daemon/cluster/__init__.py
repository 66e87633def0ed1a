"""Several daemons on one PostgreSQL database: which node owns which
session, how requests reach a session's owner, and the per-principal caps
that hold for the whole cluster (docs/postgresql.md)."""
