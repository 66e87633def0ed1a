"""MCP server definitions: Roo-Code's ``mcpServers`` shape, from the daemon's
config (``mcp.servers``) or a workspace's ``.roo/mcp.json``.

Roo's rules (src/services/mcp/McpHub.ts, ``validateServerConfig``): a server
has ``command`` (stdio: ``args``, ``env``, ``cwd``) or ``url`` (with ``type``
``streamable-http`` or ``sse``, and ``headers``), never both; ``disabled``,
``alwaysAllow`` (tool names, ``"*"`` for all), ``disabledTools`` and
``timeout`` (seconds per call, 1-3600, default 60) apply to both.

Two additions of ours keep secrets out of the configuration: ``env_from``
and ``headers_from`` map a server variable or header to the *name* of a
daemon environment variable, read when the server starts. A workspace file
may use neither (a repository must not be able to ask for the daemon's
secrets), nor ``url`` (the connection would come from the daemon itself,
outside the sandbox its commands run in).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 60.0
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME = re.compile(r"^[^\x00-\x1f]{1,128}$")
WORKSPACE_FILE = (".roo", "mcp.json")
_COMMON = {"type", "disabled", "alwaysAllow", "disabledTools", "timeout", "watchPaths"}
_STDIO = {"command", "args", "env", "env_from", "cwd"}
_REMOTE = {"url", "headers", "headers_from"}


@dataclass(frozen=True)
class Limits:
    """How long a server may take to start, and how its restarts back off."""

    start_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0


class ServerConfigError(ValueError):
    """A server entry that cannot be used; the message names the server and the key."""


@dataclass(frozen=True)
class ServerConfig:
    """One server, validated. ``key`` identifies its connection: config
    servers are shared by every task, a workspace's belong to its session."""

    name: str
    source: str  # "config" or "workspace"
    transport: str  # "stdio", "streamable-http" or "sse"
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_from: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    headers_from: tuple[tuple[str, str], ...] = ()
    disabled: bool = False
    always_allow: frozenset[str] = frozenset()
    disabled_tools: frozenset[str] = frozenset()
    timeout: float = DEFAULT_TIMEOUT
    # Workspace servers: whose session, which workspace, whether their sandbox has network.
    session_id: str | None = None
    owner: str | None = None
    workspace: str | None = None
    network: bool = True

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.source, self.session_id, self.name)

    def allows_without_asking(self, tool: str) -> bool:
        return "*" in self.always_allow or tool in self.always_allow

    def secrets(self) -> dict[str, str]:
        """The values ``env_from`` and ``headers_from`` name, as the daemon's
        environment holds them now (missing ones are left out)."""
        out = {}
        for target, var in (*self.env_from, *self.headers_from):
            value = os.environ.get(var)
            if value:
                out[target] = value
        return out

    def missing_secrets(self) -> list[str]:
        return [var for _, var in (*self.env_from, *self.headers_from) if not os.environ.get(var)]

    def resolved_env(self) -> dict[str, str]:
        return {**dict(self.env), **{k: os.environ[v] for k, v in self.env_from if os.environ.get(v)}}

    def resolved_headers(self) -> dict[str, str]:
        return {**dict(self.headers), **{k: os.environ[v] for k, v in self.headers_from if os.environ.get(v)}}

    def describe(self) -> dict[str, Any]:
        """What the API shows of the definition: never a value from the environment."""
        out: dict[str, Any] = {"transport": self.transport, "timeout": self.timeout}
        if self.transport == "stdio":
            out["command"] = self.command
            out["args"] = list(self.args)
        else:
            out["url"] = self.url
        return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ServerConfigError(f"{where}: must be a list of strings")
    return tuple(value)


def _mapping(value: Any, where: str, names: re.Pattern[str] | None = None) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ServerConfigError(f"{where}: must map strings to strings")
    if names is not None:
        for k, v in value.items():
            if not names.match(v):
                raise ServerConfigError(f"{where}.{k}: {v!r} is not an environment variable name")
    return tuple(sorted(value.items()))


def parse_server(name: str, doc: Any, source: str, where: str = "mcp.servers") -> ServerConfig:
    """One entry of ``mcpServers``, checked with Roo's rules (and ours for
    secrets and workspace files). Raises :class:`ServerConfigError`."""
    at = f"{where}.{name}"
    if not isinstance(name, str) or not NAME.match(name):
        raise ServerConfigError(f"{where}: server names are 1-128 printable characters")
    if not isinstance(doc, dict):
        raise ServerConfigError(f"{at}: must be a mapping")
    keys = set(doc)
    if source == "config":
        unknown = keys - _COMMON - _STDIO - _REMOTE
        if unknown:
            raise ServerConfigError(f"{at}.{sorted(unknown)[0]}: unknown key")
    has_stdio, has_url = "command" in doc, "url" in doc
    if has_stdio and has_url:
        raise ServerConfigError(
            f"{at}: cannot mix 'stdio' and ('sse' or 'streamable-http') fields. For 'stdio' use 'command', 'args', "
            "and 'env'. For 'sse'/'streamable-http' use 'url' and 'headers'"
        )
    if not has_stdio and not has_url:
        raise ServerConfigError(
            f"{at}: must include either 'command' (for stdio) or 'url' (for sse/streamable-http) and a "
            "corresponding 'type' if 'url' is used"
        )
    kind = doc.get("type") or ("stdio" if has_stdio else None)
    if has_url and kind not in ("sse", "streamable-http"):
        raise ServerConfigError(f"{at}: a server with 'url' must set 'type' to 'sse' or 'streamable-http'")
    if has_stdio and kind != "stdio":
        raise ServerConfigError(f"{at}.type: a server with 'command' is 'stdio'")
    wrong = keys & (_REMOTE if has_stdio else _STDIO)
    if wrong:
        raise ServerConfigError(f"{at}.{sorted(wrong)[0]}: not a field of a {kind} server")
    if source == "workspace":
        if has_url:
            raise ServerConfigError(
                f"{at}: workspace servers must be stdio (a URL server would be reached by the daemon itself, "
                "outside the sandbox); configure it in the daemon's mcp.servers instead"
            )
        if keys & {"env_from", "headers_from"}:
            raise ServerConfigError(f"{at}: env_from is for the daemon config only (a repository cannot name secrets)")
    timeout = doc.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 3600:
        raise ServerConfigError(f"{at}.timeout: must be a number of seconds from 1 to 3600")
    disabled = doc.get("disabled", False)
    if not isinstance(disabled, bool):
        raise ServerConfigError(f"{at}.disabled: must be true or false")
    common: dict[str, Any] = {
        "name": name,
        "source": source,
        "transport": kind,
        "disabled": disabled,
        "always_allow": frozenset(_strings(doc.get("alwaysAllow", []), f"{at}.alwaysAllow")),
        "disabled_tools": frozenset(_strings(doc.get("disabledTools", []), f"{at}.disabledTools")),
        "timeout": float(timeout),
    }
    if has_stdio:
        command = doc["command"]
        if not isinstance(command, str) or not command.strip():
            raise ServerConfigError(f"{at}.command: cannot be empty")
        cwd = doc.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ServerConfigError(f"{at}.cwd: must be a string")
        return ServerConfig(
            command=command,
            args=_strings(doc.get("args", []), f"{at}.args"),
            env=_mapping(doc.get("env", {}), f"{at}.env"),
            env_from=_mapping(doc.get("env_from", {}), f"{at}.env_from", ENV_NAME),
            cwd=cwd,
            **common,
        )
    url = doc["url"]
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise ServerConfigError(f"{at}.url: must be an http:// or https:// URL")
    return ServerConfig(
        url=url,
        headers=_mapping(doc.get("headers", {}), f"{at}.headers"),
        headers_from=_mapping(doc.get("headers_from", {}), f"{at}.headers_from", ENV_NAME),
        **common,
    )


def parse_servers(doc: Any, source: str, where: str = "mcp.servers") -> dict[str, ServerConfig]:
    """Every entry; the first bad one raises :class:`ServerConfigError`."""
    if not isinstance(doc, dict):
        raise ServerConfigError(f"{where}: must map server names to definitions")
    return {name: parse_server(name, entry, source, where) for name, entry in doc.items()}


@dataclass(frozen=True)
class WorkspaceServers:
    """What a workspace's ``.roo/mcp.json`` defines, or why it cannot be used."""

    servers: dict[str, ServerConfig]
    error: str | None = None
    mtime: float | None = None


def read_workspace_servers(workspace: str, session_id: str, owner: str | None, network: bool) -> WorkspaceServers:
    """Parse ``.roo/mcp.json`` (JSON, ``{"mcpServers": {...}}``). Blocking:
    call in a thread. A broken file is reported, never fatal."""
    path = Path(workspace, *WORKSPACE_FILE)
    try:
        stat = path.stat()
    except OSError:
        return WorkspaceServers({})
    if stat.st_size > 1 << 20:
        return WorkspaceServers({}, ".roo/mcp.json is over 1 MiB", stat.st_mtime)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return WorkspaceServers({}, f".roo/mcp.json is not valid JSON: {e}", stat.st_mtime)
    servers = doc.get("mcpServers", {}) if isinstance(doc, dict) else None
    try:
        parsed = parse_servers(servers, "workspace", ".roo/mcp.json mcpServers")
    except ServerConfigError as e:
        return WorkspaceServers({}, str(e), stat.st_mtime)
    bound = {
        name: replace(cfg, session_id=session_id, owner=owner, workspace=workspace, network=network)
        for name, cfg in parsed.items()
    }
    return WorkspaceServers(bound, None, stat.st_mtime)
