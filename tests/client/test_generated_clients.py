"""The contract generates clients (slow: the generators are big, and npx
fetches openapi-typescript from the npm registry).

``openapi-python-client`` must generate every model with no warning, and
the generated client must drive a session and a task against a real daemon;
``openapi-typescript`` must accept the spec without a warning. Each skips
when its generator is missing, and fails under CI=true (tests/needs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import Daemon
from tests.needs import module_or_skip, which_or_skip
from tests.server.daemon_process import REPO_ROOT

pytestmark = pytest.mark.slow
GENERATE_TIMEOUT = 300

DRIVE = """
import sys, time
from roo_daemon_client import AuthenticatedClient
from roo_daemon_client.api.sessions import create_session, get_session
from roo_daemon_client.api.tasks import create_task, get_task, respond_to_ask
from roo_daemon_client.models import AskResponse, Problem, Session, SessionCreate, Task, TaskCreate

url, token = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
session = create_session.sync(client=client, body=SessionCreate(name="generated"))
assert isinstance(session, Session), session
assert get_session.sync(session.id, client=client).id == session.id
task = create_task.sync(session.id, client=client, body=TaskCreate(prompt="Create hello.txt"))
assert isinstance(task, Task), task

def wait(status):
    deadline = time.monotonic() + 15
    while True:
        t = get_task.sync(session.id, task.id, client=client)
        if t.status.value == status:
            return t
        assert time.monotonic() < deadline, t.status
        time.sleep(0.05)

waiting = wait("waiting")
answer = AskResponse(ask_id=waiting.pending_ask.id, approve=True)
answered = respond_to_ask.sync_detailed(session.id, task.id, client=client, body=answer)
assert isinstance(answered.parsed, Task), (answered.status_code, answered.content)
done = wait("completed")
assert done.result == "Created hello.txt with a greeting.", done.result
assert done.limits.max_cost_usd is None and done.limits.max_requests == 100
missing = get_task.sync(session.id, "tsk_" + "0" * 32, client=client)
assert isinstance(missing, Problem) and missing.status == 404, missing
print("drove", session.id, task.id)
"""


def _env() -> dict[str, str]:
    """The generator runs ruff on its output: this interpreter's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_openapi_python_client_generates_every_model_and_drives_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    module_or_skip("openapi_python_client", "pip install -e '.[load]'")
    gen = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(REPO_ROOT / "openapi.yaml")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT,
    )
    output = gen.stdout + gen.stderr
    assert gen.returncode == 0, output
    assert "warning" not in output.lower() and "ruff is not in PATH" not in output, output
    package = tmp_path / "roo-daemon-client"
    models = {p.stem for p in (package / "roo_daemon_client" / "models").glob("*.py")}
    assert {"task", "task_list", "effective_limits", "task_limits", "session", "event_page"} <= models
    drive = subprocess.run(
        [sys.executable, "-c", DRIVE, daemon.url, daemon.token],
        env={**_env(), "PYTHONPATH": str(package)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert drive.returncode == 0, drive.stdout + drive.stderr
    assert drive.stdout.startswith("drove ses_")


def test_openapi_typescript_accepts_the_spec(tmp_path: Path) -> None:
    npx = which_or_skip("npx", "Node.js and npm: the machine's nodejs package")
    out = tmp_path / "roo-daemon.d.ts"
    gen = subprocess.run(
        [npx, "--yes", "openapi-typescript@7", str(REPO_ROOT / "openapi.yaml"), "-o", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT,
    )
    output = gen.stdout + gen.stderr
    assert gen.returncode == 0, output
    assert "warn" not in output.lower() and "error" not in output.lower(), output
    types = out.read_text()
    assert "EffectiveLimits: {" in types and "TaskList: {" in types
    assert 'limits: components["schemas"]["EffectiveLimits"]' in types
