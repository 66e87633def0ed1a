"""The shell commands run in, and the one the system prompt names: bash where
it is installed (Roo's usual default shell on Linux), else ``/bin/sh``. One
answer for both, so the model writes for the shell that runs its commands.
(The sandbox binds ``/bin`` and ``/usr`` read-only, so the path found here
is the path inside it.)
"""

from __future__ import annotations

import os

BASH_PATHS = ("/bin/bash", "/usr/bin/bash")


def command_shell() -> str:
    for path in BASH_PATHS:
        if os.access(path, os.X_OK):
            return path
    return "/bin/sh"


SHELL = command_shell()  # read once: the prompt and the runner never disagree mid-run
