"""Several daemons on one PostgreSQL database: which node owns which
session, and how requests reach a session's owner (docs/postgresql.md)."""
