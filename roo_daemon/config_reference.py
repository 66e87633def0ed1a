"""The configuration reference in docs/configuration.md, rendered from the
configuration schema.

The schema (``config_schema.yaml``) already holds every key, its type, bounds,
default and description, and the daemon validates against it; rendering the
reference from it means the documentation cannot name a key the daemon
refuses or miss one it accepts. ``tests/test_docs.py`` fails when the file and
the rendering differ; ``python -m roo_daemon.config_reference --write``
brings the file up to date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from roo_daemon.config import SCHEMA

BEGIN = "<!-- BEGIN generated reference: python -m roo_daemon.config_reference --write -->"
END = "<!-- END generated reference -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Merge a local ``$ref`` (``#/$defs/...``) into the node that points at it."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "object")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = [f"≥ {node['minimum']}" if "minimum" in node else "", f"≤ {node['maximum']}" if "maximum" in node else ""]
    bounds = [b for b in bounds if b]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return "required" if node.get("_required") else ""
    value = node["default"]
    if value == {} and node.get("type") == "object" and "properties" in node:
        return ""
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for name, sub in node.get("properties", {}).items():
        sub = _resolve(sub)
        key = prefix + name
        bucket = set(sub.get("properties", {})) == {"rate", "burst"}
        if sub.get("properties") and not bucket:
            if sub.get("description"):
                rows.append(f"| `{key}` | section | | {_cell(sub['description'])} |")
            rows.extend(_rows(sub, key + "."))
            continue
        description = sub.get("description", "")
        if bucket:
            description = "a token bucket `{rate, burst}`: tokens per second, bucket size; rate 0 means unlimited"
        rows.append(f"| `{key}` | {_cell(_type(sub))} | {_cell(_default(sub))} | {_cell(description)} |")
    return rows


def render() -> str:
    """The reference table, one row per key, in the schema's order."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += _rows(SCHEMA, "")
    return "\n".join(lines) + "\n"


def spliced(doc: str) -> str:
    """``doc`` with the text between the markers replaced by :func:`render`."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render()}{END}{tail}"


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        DOC.write_text(spliced(DOC.read_text()))
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
