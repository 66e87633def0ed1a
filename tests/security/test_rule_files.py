"""What the workspace puts into a prompt stays inside the workspace rules
(issue 11, items 1 and 2).

Rule files that are symlinks out of the workspace (``AGENTS.md`` ->
``/etc/...``) were read into the system prompt and sent to the provider;
they are now confined like every tool path, and a symlink to a file that
``.rooignore`` blocks is not read either. The first prompt's file listing
showed names that ``.rooignore`` and ``.gitignore`` hide; it is now exactly
what ``list_files`` returns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.engine.environment import environment_details
from roo_daemon.engine.modes import BUILT_IN
from roo_daemon.engine.prompts import custom_instructions
from roo_daemon.models import AUTO_APPROVE_DEFAULTS
from tests.conftest import Api, make_config, wait_status
from tests.engine.fakes import FakeProviderServer, Turn, call, fake_openai  # noqa: F401
from tests.engine.tools.conftest import FakeContext

SECRET = "host-secret-7f3a"
IGNORED = "rooignored-secret-91c2"


def put(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def hostile_workspace(root: Path, outside: Path) -> None:
    """Rule files that lead outside, to a rooignored file, or into a loop,
    beside ones that stay inside."""
    put(outside, "secret.txt", SECRET)
    put(outside, "rules/leak.md", SECRET)
    put(root, ".rooignore", "private/\n")
    put(root, "private/key.md", IGNORED)
    put(root, "docs/shared-rules.md", "Shared rule")
    put(root, ".roo/rules/own.md", "Own rule")
    os.symlink(outside / "secret.txt", root / ".roo/rules/escape.md")
    os.symlink("../../private/key.md", root / ".roo/rules/hidden.md")
    os.symlink("../../docs/shared-rules.md", root / ".roo/rules/shared.md")
    os.symlink(outside / "rules", root / ".roo/rules/outdir")
    os.symlink(outside / "rules", root / ".roo/rules-code")
    os.symlink(outside / "secret.txt", root / "AGENTS.md")
    os.symlink("private/key.md", root / "AGENT.md")
    os.symlink("AGENTS.local.md", root / "AGENTS.local.md")  # a loop
    os.symlink(outside / "secret.txt", root / ".roorules-code")
    os.symlink(outside / "secret.txt", root / ".clinerules-code")


def test_rule_files_are_confined_to_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    hostile_workspace(root, tmp_path / "outside")
    text = custom_instructions(BUILT_IN["code"], str(root), "")
    assert SECRET not in text and IGNORED not in text
    assert "# Rules from .roo/rules/own.md:\nOwn rule" in text
    assert "# Rules from docs/shared-rules.md:\nShared rule" in text  # a symlink that stays inside is read


def test_legacy_rule_files_are_confined_too(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    put(tmp_path / "outside", "secret.txt", SECRET)
    root.mkdir()
    os.symlink(tmp_path / "outside" / "secret.txt", root / ".roorules")
    os.symlink(tmp_path / "outside", root / ".roo")
    put(root, ".clinerules", "Cline rule")
    text = custom_instructions(BUILT_IN["code"], str(root), "")
    assert SECRET not in text
    assert text == "Rules:\n\n# Rules from .clinerules:\nCline rule"


def listing_section(details: str) -> str:
    """The listing: after its header, before the reminders that end the block."""
    body = details.split(" Files\n", 1)[1]
    return body.split("\nYou have not created a todo list yet.", 1)[0]


@pytest.mark.gen_test(timeout=10)
async def test_the_first_listing_is_what_list_files_returns(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    put(root, ".gitignore", "build/\n*.log\n")
    put(root, ".rooignore", "private/\n")
    for rel in ("build/out.js", "debug.log", "private/key.pem", "src/app.py", "node_modules/x/i.js", ".github/ci.yml"):
        put(root, rel, "x")
    details = environment_details(BUILT_IN["code"], str(root), first=True)
    ctx = FakeContext(root, auto_approve=dict(AUTO_APPROVE_DEFAULTS, read_only=True))
    listed = await ctx.call("list_files", path=".", recursive=True)
    assert listing_section(details) == listed.content
    for hidden in ("build", "debug.log", "private", "key.pem", "node_modules"):
        assert hidden not in listing_section(details)
    assert "src/app.py" in listing_section(details)


# -- through a task: what the provider receives -------------------------------


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    return request.getfixturevalue("fake_openai")


@pytest.fixture
def config(tmp_path: Path, fake: FakeProviderServer) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["real"] = fake.profile()
    return cfg


@pytest.mark.gen_test(timeout=30)
async def test_the_provider_never_receives_what_the_workspace_hides(
    api: Api, fake: FakeProviderServer, tmp_path: Path
) -> None:
    fake.script(Turn(tool_calls=[call("attempt_completion", result="done")]))
    session = await api.session(provider="real")
    root = Path(session["workspace"])
    hostile_workspace(root, tmp_path / "outside")
    put(root, ".gitignore", "generated/\n")
    put(root, "generated/big.js", "x")
    task = await api.task(session["id"], "go")
    done = await wait_status(api, session["id"], task["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    sent = str(fake.requests[0].body)
    assert "# Rules from .roo/rules/own.md:" in sent and "docs/shared-rules.md" in sent  # the prompt went out
    assert SECRET not in sent and IGNORED not in sent
    assert "key.md" not in sent  # neither read nor listed
    assert "generated" not in sent  # .gitignore'd: not listed


def system_text(fake: FakeProviderServer, n: int = 0) -> str:
    messages = fake.requests[n].body["messages"]
    assert messages[0]["role"] == "system"
    return messages[0]["content"]


@pytest.mark.gen_test(timeout=30)
async def test_the_provider_receives_rule_files_in_roos_order_and_fallbacks(api: Api, fake: FakeProviderServer) -> None:
    """Roo's addCustomInstructions: the mode's rules (.roo/rules-{mode}/, else
    .roorules-{mode}, else .clinerules-{mode}), then AGENTS.md (else AGENT.md)
    and AGENTS.local.md, then the generic rules (.roo/rules/, else .roorules,
    else .clinerules); a fallback is read only when what precedes it is absent."""
    done_turn = Turn(tool_calls=[call("attempt_completion", result="done")])
    fake.script(done_turn, done_turn)
    full = await api.session(provider="real")
    root = Path(full["workspace"])
    for rel, text in {
        ".roo/rules-code/b.md": "MODE RULE B",
        ".roo/rules-code/a.md": "MODE RULE A",
        ".roorules-code": "LEGACY MODE RULE",
        "AGENTS.md": "AGENTS RULE",
        "AGENT.md": "AGENT SINGULAR RULE",
        "AGENTS.local.md": "LOCAL AGENTS RULE",
        ".roo/rules/g.md": "GENERIC RULE",
        ".roorules": "LEGACY GENERIC RULE",
        ".clinerules": "CLINE GENERIC RULE",
    }.items():
        put(root, rel, text)
    task = await api.task(full["id"], "go")
    assert (await wait_status(api, full["id"], task["id"], {"completed", "failed"}))["status"] == "completed"
    prompt = system_text(fake, 0)
    order = ["MODE RULE A", "MODE RULE B", "AGENTS RULE", "LOCAL AGENTS RULE", "GENERIC RULE"]
    positions = [prompt.index(text) for text in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    assert "# Rules from rules-code directories:" in prompt
    assert "# Agent Rules Local (AGENTS.local.md):\nLOCAL AGENTS RULE" in prompt
    for shadowed in ("LEGACY MODE RULE", "AGENT SINGULAR RULE", "LEGACY GENERIC RULE", "CLINE GENERIC RULE"):
        assert shadowed not in prompt, shadowed

    # Only the legacy files: .roorules-code for the mode, AGENT.md, .clinerules as the generic fallback.
    legacy = await api.session(provider="real")
    root = Path(legacy["workspace"])
    put(root, ".clinerules-code", "CLINE MODE RULE")
    put(root, ".roorules-code", "LEGACY MODE RULE")
    put(root, "AGENT.md", "AGENT SINGULAR RULE")
    put(root, ".clinerules", "CLINE GENERIC RULE")
    task = await api.task(legacy["id"], "go")
    assert (await wait_status(api, legacy["id"], task["id"], {"completed", "failed"}))["status"] == "completed"
    prompt = system_text(fake, 1)
    order = ["LEGACY MODE RULE", "AGENT SINGULAR RULE", "CLINE GENERIC RULE"]
    positions = [prompt.index(text) for text in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    assert "# Rules from .roorules-code:\nLEGACY MODE RULE" in prompt
    assert "CLINE MODE RULE" not in prompt
