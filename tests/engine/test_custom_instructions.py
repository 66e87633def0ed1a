"""The system prompt's custom instructions follow Roo-Code's
addCustomInstructions (src/core/prompts/sections/custom-instructions.ts):
its sources, its precedence and fallbacks, and its exact headers."""

from __future__ import annotations

from pathlib import Path

from roo_daemon.engine.modes import BUILT_IN
from roo_daemon.engine.prompts import ROOIGNORE_INSTRUCTIONS, custom_instructions, system_prompt

CODE = BUILT_IN["code"]


def put(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_source_in_roos_order_with_its_headers(tmp_path: Path) -> None:
    put(tmp_path, ".roo/rules/b.md", "Rule B\n")
    put(tmp_path, ".roo/rules/sub/A.md", "  Rule A  \n")  # sorted by file name, content trimmed
    put(tmp_path, ".roo/rules/notes.log", "a log is no rule")
    put(tmp_path, ".roo/rules-code/x.md", "Code rule")
    put(tmp_path, ".roo/rules-ask/y.md", "Only for ask")
    put(tmp_path, ".roorules", "Legacy")  # fallbacks: not read while .roo/rules has files
    put(tmp_path, ".clinerules", "Cline")
    put(tmp_path, ".roorules-code", "Legacy code")
    put(tmp_path, "AGENTS.md", "Agents\n")
    put(tmp_path, "AGENT.md", "Agent singular")  # only without AGENTS.md
    put(tmp_path, "AGENTS.local.md", "Local")
    put(tmp_path, ".rooignore", "secret.txt\n")
    text = custom_instructions(CODE, str(tmp_path), "Answer in English.")
    assert text == (
        "Global Instructions:\nAnswer in English.\n\n"
        "Rules:\n\n"
        "# Rules from rules-code directories:\n\n"
        "# Rules from .roo/rules-code/x.md:\nCode rule\n\n"
        + ROOIGNORE_INSTRUCTIONS.format(content="secret.txt\n")
        + "\n\n"
        "# Agent Rules Standard (AGENTS.md):\nAgents\n\n"
        "# Agent Rules Local (AGENTS.local.md):\nLocal\n\n"
        "# Rules from .roo directories:\n\n"
        "# Rules from .roo/rules/sub/A.md:\nRule A\n\n"
        "# Rules from .roo/rules/b.md:\nRule B"
    )
    prompt = system_prompt(CODE, BUILT_IN, str(tmp_path), "Answer in English.")
    assert (
        "====\n\nUSER'S CUSTOM INSTRUCTIONS\n\nThe following additional instructions are provided by the user, "
        "and should be followed to the best of your ability.\n\nGlobal Instructions:\nAnswer in English."
    ) in prompt


def test_legacy_files_are_fallbacks_in_order(tmp_path: Path) -> None:
    put(tmp_path, ".clinerules", "Cline")
    put(tmp_path, ".clinerules-code", "Cline code")
    put(tmp_path, "AGENT.md", "Agent singular")
    assert custom_instructions(CODE, str(tmp_path), "") == (
        "Rules:\n\n"
        "# Rules from .clinerules-code:\nCline code\n\n"
        "# Agent Rules Standard (AGENT.md):\nAgent singular\n\n"
        "# Rules from .clinerules:\nCline"
    )
    put(tmp_path, ".roorules", "Roo")
    put(tmp_path, ".roorules-code", "Roo code")
    put(tmp_path, ".roo/rules/empty-dir-sibling.txt", "")  # an empty rules file still counts as .roo rules
    text = custom_instructions(CODE, str(tmp_path), "")
    assert "# Rules from .roorules-code:\nRoo code" in text and "Cline code" not in text
    assert "# Rules from .roo directories:" in text and "# Rules from .roorules:" not in text


def test_nothing_gives_nothing(tmp_path: Path) -> None:
    assert custom_instructions(CODE, str(tmp_path), "  ") == ""
    assert "USER'S CUSTOM INSTRUCTIONS" not in system_prompt(CODE, BUILT_IN, str(tmp_path), "")
