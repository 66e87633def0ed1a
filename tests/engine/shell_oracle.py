"""The oracle for the shell parser's property tests: run a command line under
a real shell with PATH holding only stub executables that log their argv,
and report which commands actually ran.

Harmless by construction: the stubs only write their argv to a log
directory, the shell runs in a fresh temporary directory with an empty
environment besides PATH and the stub settings, stdin is /dev/null, and the
generated lines name no other program. A pipe inherited by every process
(generated lines only redirect fds 0-2) tells when the last of them, background jobs and process
substitutions included, has exited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

STUBS = ("ka", "kb", "kc", "rm")
_STUB = """#!/bin/sh
n=$$
while [ -e "$STUB_LOG/$n" ]; do n="$n.x"; done
{ printf '%s\\0' "${0##*/}"; for a; do printf '%s\\0' "$a"; done; } > "$STUB_LOG/$n"
exit "$STUB_STATUS"
"""


class Oracle:
    """Stubs in a temporary directory; :meth:`run` one line at a time."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        for name in STUBS:
            stub = self.bin / name
            stub.write_text(_STUB)
            stub.chmod(0o755)

    def syntax_ok(self, shell: str, line: str) -> bool:
        """Whether ``shell -n`` (parse only, run nothing) accepts the line."""
        done = subprocess.run(
            [shutil.which(shell) or shell, "-n", "-c", line],
            env={"PATH": str(self.bin)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
        )
        return done.returncode == 0 and not done.stderr

    def run(self, shell: str, line: str, status: int) -> list[tuple[str, ...]]:
        """The argv of every stub that ``shell -c line`` ran (stubs exit with
        ``status``)."""
        with tempfile.TemporaryDirectory() as tmp:
            logs, work = Path(tmp, "log"), Path(tmp, "work")
            logs.mkdir()
            work.mkdir()
            env = {"PATH": str(self.bin), "STUB_LOG": str(logs), "STUB_STATUS": str(status), "LC_ALL": "C"}
            read_end, write_end = os.pipe()
            try:
                proc = subprocess.Popen(
                    [shutil.which(shell) or shell, "-c", line],
                    cwd=work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(write_end,),
                    start_new_session=True,
                )
            finally:
                os.close(write_end)
            try:
                proc.wait(timeout=20)
                while os.read(read_end, 4096):  # EOF once every process holding the pipe has exited
                    pass
            finally:
                os.close(read_end)
                if proc.poll() is None:
                    proc.kill()
            runs = []
            for log in sorted(logs.iterdir()):
                fields = log.read_bytes().split(b"\0")[:-1]
                runs.append(tuple(f.decode("utf-8", "surrogateescape") for f in fields))
            return runs
