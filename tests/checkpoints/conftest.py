"""Fixtures borrowed for the checkpoint tests: the security tests'
per-principal clients (tenancy), the daemon-as-a-process factory."""

from tests.security.conftest import as_  # noqa: F401
from tests.server.conftest import daemon_factory  # noqa: F401
