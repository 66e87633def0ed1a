"""A workspace checkpoints must be careful with: a 50 MB file, a file the
daemon cannot read, a symlink pointing outside, nested repositories and a
stray ``.git`` directory. Each checkpoint still succeeds, names what it
skipped, and nothing outside the workspace is read or written.

The daemon runs as a real process without the capabilities that let root
read any file (``setpriv`` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH),
so a mode 000 file is truly unreadable to it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.checkpoints.helpers import DONE, checkpoints, restore, run_to_end, saved_events, task_path, write
from tests.conftest import Api
from tests.needs import which_or_skip
from tests.server.conftest import DaemonFactory

BIG = 50 * 1024 * 1024


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and mtime (lstat)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(Path(dirpath) / name)
            out[str(Path(dirpath, name).relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.gen_test(timeout=120)
async def test_checkpoints_skip_what_they_must_and_stay_inside(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    which_or_skip("git")
    setpriv = which_or_skip("setpriv", "util-linux ships it")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("never read by a checkpoint")
    (outside / "dir").mkdir()
    roots = tmp_path / "roots"
    ws = roots / "project"
    (ws / "deep" / ".git").mkdir(parents=True)
    (ws / "deep" / ".git" / "HEAD").write_text("not a repository\n")
    (ws / "deep" / "file.txt").write_text("recorded\n")
    with open(ws / "big.txt", "wb") as f:
        f.truncate(BIG)  # sparse: 50 MB long, nothing to read
    (ws / "secret.txt").write_text("unreadable")
    (ws / "secret.txt").chmod(0)
    latin1 = ws / os.fsdecode(b"caf\xe9.txt")  # a name that is not UTF-8
    latin1.write_text("unreadable too")
    latin1.chmod(0)
    (ws / os.fsdecode(b"na\xefve.txt")).write_text("recorded, shown escaped\n")
    os.symlink(outside / "secret", ws / "link")
    os.symlink(outside / "dir", ws / "linkdir")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for name, commit in (("sub", True), ("empty-repo", False)):
        (ws / name).mkdir()
        (ws / name / "inner.txt").write_text("inside a nested repository\n")
        subprocess.run(["git", "init", "-q", str(ws / name)], check=True, env=env)
        if commit:
            ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
            subprocess.run(["git", "-C", str(ws / name), "add", "-A"], check=True, env=env)
            subprocess.run(["git", "-C", str(ws / name), *ident, "commit", "-qm", "x"], check=True, env=env)
    outside_before = snapshot(outside)
    untouched = {p: snapshot(ws)[p] for p in ("big.txt", "secret.txt", "sub/inner.txt", "empty-repo/inner.txt")}

    daemon = daemon_factory(
        workspaces={"roots": [str(roots)]},
        providers={"edits": {"kind": "scripted", "turns": [write("a.txt", "new\n"), DONE]}},
    )
    daemon.prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    await daemon.astart()
    api = Api(daemon.base_url)
    session = await api.session(provider="edits", workspace=str(ws), auto_approve={"write": True})
    task = await run_to_end(api, session["id"])

    items = await checkpoints(api, session["id"], task["id"])
    assert [c["after_tool"] for c in items] == [None, "write_to_file"]
    reasons = {s["path"]: s["reason"] for s in items[0]["skipped"]}
    assert set(reasons) == {"big.txt", "secret.txt", "caf\\xe9.txt", "sub", "empty-repo"}, reasons
    assert reasons["big.txt"].startswith("larger than checkpoints.max_file_bytes (52428800 >")
    assert reasons["secret.txt"] == "cannot be read: Permission denied"
    assert "nested git repository" in reasons["sub"] and "nested git repository" in reasons["empty-repo"]
    events = await saved_events(api, session["id"], task["id"])
    assert events[0]["data"]["skipped"] == items[0]["skipped"]
    assert items[1]["files_changed"] == [{"path": "a.txt", "status": "added"}]

    json_accept = {"Accept": "application/json"}
    start, end = items[0]["id"], items[1]["id"]
    # What the task's checkpoints hold: the links as links (their target's
    # path, never its content), the stray .git's neighbour, nothing skipped.
    (repo,) = (daemon.data_dir / "checkpoints").iterdir()
    tree = subprocess.run(
        ["git", "--git-dir", str(repo / "git"), "ls-tree", "-r", f"refs/roo/{task['id']}"],
        check=True,
        capture_output=True,
        env=env,
    ).stdout.decode(errors="surrogateescape")
    modes = {line.split("\t")[1]: line.split()[0] for line in tree.splitlines()}
    assert modes == {
        "a.txt": "100644",
        "deep/file.txt": "100644",
        "link": "120000",
        "linkdir": "120000",
        os.fsdecode(b"na\xefve.txt"): "100644",
    }
    r = await api.get(task_path(session["id"], task["id"], f"/diff?from={start}&to={end}"))
    assert r.status == 200 and "+new" in r.body.decode()

    r = await api.get(task_path(session["id"], task["id"], f"/diff?from={end}&to={start}"), headers=json_accept)
    assert [(f["path"], f["status"]) for f in r.json["files"]] == [("a.txt", "deleted")]
    assert (await restore(api, session["id"], task["id"], start)).status == 200
    assert not (ws / "a.txt").exists()
    assert {p: snapshot(ws)[p] for p in untouched} == untouched
    assert os.readlink(ws / "link") == str(outside / "secret")
    assert snapshot(outside) == outside_before
    assert daemon.find_log(lambda r: "checkpoint" in str(r.get("msg", "")) and r.get("level") == "warning") is None
