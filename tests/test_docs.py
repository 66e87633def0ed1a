"""The documentation stays in step with the code: the configuration reference
is the schema's rendering, and every relative link in README.md and docs/
points at a file and a heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from roo_daemon import config_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    heads = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_configuration_reference_is_the_schema_rendered():
    doc = config_reference.DOC.read_text()
    assert config_reference.BEGIN in doc and config_reference.END in doc
    assert config_reference.spliced(doc) == doc, (
        "docs/configuration.md is out of date with config_schema.yaml: "
        "run python -m roo_daemon.config_reference --write"
    )


def test_every_schema_key_is_in_the_reference():
    rendered = config_reference.render()
    for section, node in config_reference.SCHEMA["properties"].items():
        for key in node.get("properties", {}):
            assert f"`{section}.{key}" in rendered


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


def test_readme_links_every_document():
    readme = (ROOT / "README.md").read_text()
    for doc in DOCS[1:]:
        assert f"](docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"
