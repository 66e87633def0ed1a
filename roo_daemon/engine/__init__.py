"""The engine: one task's agent loop, its providers and its tools.

The engine sees the daemon only through :class:`roo_daemon.engine.base.TaskContext`;
it never touches Tornado, HTTP handlers or SQL.
"""
