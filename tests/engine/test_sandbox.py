"""The sandbox's pieces without a daemon: the bwrap command line a policy
gives, the masks a workspace needs, and what happens when bwrap cannot run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from roo_daemon.engine import sandbox as sandbox_module
from roo_daemon.engine.sandbox import (
    Bind,
    Bubblewrap,
    Mask,
    Sandbox,
    SandboxPolicy,
    SandboxUnavailable,
    daemon_files,
    daemon_masks,
    outermost,
    rooignore_masks,
)
from roo_daemon.engine.tools.base import ToolError
from roo_daemon.engine.tools.command import _execute_command
from roo_daemon.engine.workspace import RooIgnore
from tests.engine.tools.conftest import FakeContext

SYSTEM = [Bind("/usr"), Bind("/bin", "usr/bin"), Bind("/etc")]
WS = Path("/srv/ws")


def argv(**policy: object) -> list[str]:
    fields = {"workspace": WS, "cwd": WS / "src", **policy}
    return Bubblewrap("/opt/bwrap", SYSTEM).argv(SandboxPolicy(**fields), ["/bin/sh", "-c", "make"])  # type: ignore[arg-type]


def pairs(args: list[str], flag: str) -> list[tuple[str, ...]]:
    """Each occurrence of ``flag`` with the arguments it takes."""
    width = {"--ro-bind": 2, "--bind": 2, "--symlink": 2, "--ro-bind-try": 2, "--tmpfs": 1, "--remount-ro": 1}[flag]
    return [tuple(args[i + 1 : i + 1 + width]) for i, a in enumerate(args) if a == flag]


def test_namespaces_capabilities_and_the_command() -> None:
    args = argv()
    assert args[0] == "/opt/bwrap"
    for flag in ("--die-with-parent", "--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc"):
        assert flag in args
    assert "--unshare-uts" in args and args[args.index("--cap-drop") + 1] == "ALL"
    assert "--unshare-net" not in args  # network on by default
    assert args[args.index("--chdir") + 1] == "/srv/ws/src" and args[args.index("--") + 1 :] == [
        "/bin/sh",
        "-c",
        "make",
    ]
    assert "--unshare-net" in argv(network=False)


def test_an_allowlisted_root_system_read_only_and_the_workspace_writable() -> None:
    args = argv(read_only=("/opt/go",), extra_ro_files=("/run/resolv.conf",))
    assert pairs(args, "--ro-bind") == [("/usr", "/usr"), ("/etc", "/etc")]
    assert pairs(args, "--symlink") == [("usr/bin", "/bin")]
    assert pairs(args, "--ro-bind-try") == [("/opt/go", "/opt/go"), ("/run/resolv.conf", "/run/resolv.conf")]
    assert pairs(args, "--bind") == [("/srv/ws", "/srv/ws")]  # the only writable tree
    assert pairs(args, "--tmpfs") == [("/tmp",)]
    assert args[args.index("--proc") + 1] == "/proc" and args[args.index("--dev") + 1] == "/dev"
    # /tmp is mounted before the read-only trees, so one configured under /tmp still shows.
    assert args.index("--tmpfs") < args.index("--ro-bind-try")


def test_masks_come_last_and_their_directories_cannot_be_renamed() -> None:
    masks = (
        Mask(WS / "conf" / "deep" / "token", is_dir=False),
        Mask(WS / "private", is_dir=True),
        Mask(Path("/etc/roo-daemon/roo-daemon.yaml"), is_dir=False),
    )
    args = argv(masks=masks)
    binds = pairs(args, "--bind")
    # The workspace, then every directory leading to a mask inside it, outermost first.
    assert binds == [
        ("/srv/ws", "/srv/ws"),
        ("/srv/ws/conf", "/srv/ws/conf"),
        ("/srv/ws/conf/deep", "/srv/ws/conf/deep"),
    ]
    assert ("/dev/null", "/srv/ws/conf/deep/token") in pairs(args, "--ro-bind")
    assert ("/dev/null", "/etc/roo-daemon/roo-daemon.yaml") in pairs(args, "--ro-bind")
    assert ("/srv/ws/private",) in pairs(args, "--tmpfs") and pairs(args, "--remount-ro") == [("/srv/ws/private",)]
    last_bind = max(i for i, a in enumerate(args) if a == "--bind")
    first_mask = min(i for i, a in enumerate(args) if a == "/dev/null")
    assert last_bind < first_mask  # a later bind would cover the mask


def test_rooignore_masks_walk_the_workspace(tmp_path: Path) -> None:
    (tmp_path / ".rooignore").write_text("secret.txt\nprivate/\n*.pem\n")
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "private" / "inner").mkdir(parents=True)
    (tmp_path / "private" / "inner" / "x.pem").write_text("p")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "key.pem").write_text("k")
    (tmp_path / "src" / "main.py").write_text("print()")
    os.symlink(tmp_path / "src" / "key.pem", tmp_path / "link.pem")  # a symlink: resolved inside, not masked
    found = rooignore_masks(tmp_path, RooIgnore.load(tmp_path).blocks)
    assert sorted((m.path.relative_to(tmp_path).as_posix(), m.is_dir) for m in found) == [
        (".rooignore", False),  # it protects itself, as in Roo
        ("private", True),  # not entered
        ("secret.txt", False),
        ("src/key.pem", False),
    ]
    with pytest.raises(SandboxUnavailable, match="more than 2 paths"):
        rooignore_masks(tmp_path, RooIgnore.load(tmp_path).blocks, limit=2)


def test_daemon_masks_only_where_a_bound_tree_would_show_them(tmp_path: Path) -> None:
    workspace = tmp_path / "etc" / "data" / "workspaces" / "mine"
    nested = workspace / "sub-project"
    nested.mkdir(parents=True)
    etc = tmp_path / "etc"
    (etc / "roo").mkdir(parents=True)
    (etc / "roo" / "daemon.yaml").write_text("x")
    elsewhere = tmp_path / "var" / "data"
    elsewhere.mkdir(parents=True)
    hidden = [elsewhere, etc / "roo" / "daemon.yaml", nested, etc / "data", workspace, tmp_path / "missing"]
    masks, covers = daemon_masks(hidden, workspace, [str(etc)])
    # var/data lies in no bound tree: nothing shows it, nothing to mask.
    assert masks == [Mask(etc / "roo" / "daemon.yaml", False), Mask(nested, True)]
    # etc/data holds the workspace: emptied, with the workspace bound into it.
    assert covers == [etc / "data"]


def test_masks_inside_other_masks_or_covers_are_dropped() -> None:
    workspace = Path("/t/data/workspaces/mine")
    masks = [
        Mask(Path("/t/data/workspaces/other"), True),  # inside the cover: already hidden
        Mask(Path("/t/data/workspaces/mine/secret"), True),
        Mask(Path("/t/data/workspaces/mine/secret/key"), False),  # inside a directory mask
        Mask(Path("/t/data/workspaces/mine/x.key"), False),
    ]
    kept, covers = outermost(masks, [Path("/t/data/workspaces"), Path("/t/data")], workspace)
    assert covers == [Path("/t/data")]
    assert [m.path.name for m in kept] == ["secret", "x.key"]


def test_a_cover_is_emptied_before_the_workspace_is_bound_then_made_read_only() -> None:
    args = argv(covers=(Path("/srv"),))
    tmpfs, bind, remount = args.index("/srv"), args.index("/srv/ws"), args.index("--remount-ro")
    assert args[tmpfs - 1] == "--tmpfs" and args[bind - 1] == "--bind" and args[remount + 1] == "/srv"
    assert tmpfs < bind < remount


def test_daemon_files_are_the_data_dir_config_and_keys_file(tmp_path: Path) -> None:
    cfg = {"_config_path": str(tmp_path / "c.yaml"), "_config_dir": str(tmp_path), "auth": {"keys_file": "k.yaml"}}
    assert daemon_files(cfg, tmp_path / "data") == [tmp_path / "data", tmp_path / "c.yaml", tmp_path / "k.yaml"]


def test_a_checkpoints_dir_of_its_own_is_hidden_too(tmp_path: Path) -> None:
    cfg = {"checkpoints": {"dir": str(tmp_path / "ckpts")}, "auth": {}}
    assert daemon_files(cfg, tmp_path / "data") == [tmp_path / "data", tmp_path / "ckpts"]


@pytest.mark.gen_test(timeout=30)
async def test_without_a_working_bwrap_commands_are_refused_before_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "candidates", lambda: ["/bin/false"])
    sandbox = Sandbox("bwrap")
    with caplog.at_level(logging.INFO, "roo_daemon.sandbox"):
        await sandbox.start()
    assert [r.levelname for r in caplog.records] == ["ERROR"]  # one line at start
    assert "bubblewrap cannot run" in caplog.text and "/bin/false" in caplog.text
    assert "tools.sandbox: none" in caplog.text
    ctx = FakeContext(tmp_path)  # nothing auto-approved: an ask would fail the test
    ctx.settings["_sandbox"] = sandbox
    out = await ctx.call("execute_command", command="touch ran")
    assert out.is_error and "commands run only in a bubblewrap sandbox" in out.content, out
    assert ctx.asks == [] and not (tmp_path / "ran").exists()
    with pytest.raises(ToolError, match="bubblewrap"):
        await _execute_command(ctx, {"command": "touch ran"})  # the run itself checks too
    assert not (tmp_path / "ran").exists()


@pytest.mark.gen_test(timeout=30)
async def test_sandbox_none_runs_the_command_itself(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = Sandbox("none")
    with caplog.at_level(logging.INFO, "roo_daemon.sandbox"):
        await sandbox.start()
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "single-user only" in caplog.text
    assert await sandbox.wrap(["/bin/sh", "-c", "x"], WS, WS) == ["/bin/sh", "-c", "x"]
    with pytest.raises(ValueError):
        Sandbox("docker")
