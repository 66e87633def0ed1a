"""What the model gets back from an MCP server, formatted as Roo-Code does.

A tool result (src/core/tools/UseMcpToolTool.ts, ``processToolContent``):
text blocks as they are; an embedded resource as its JSON without the
``blob``; images as images (data URLs) after the text; audio and resource
links are left out. Parts are joined by a blank line; ``Error:`` leads when
the server flagged the result as an error; nothing at all is
``(No response)``. A resource read (AccessMcpResourceTool.ts): the text
contents joined, ``(Empty response)`` if none, image blobs as images.

Results past ``mcp.max_result_bytes`` are refused with an error that says
so, instead of flooding the model's context (Roo passes them on whole).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import mcp_types as types

from roo_daemon.mcp.errors import ResultTooLarge


@dataclass
class Formatted:
    text: str
    images: list[str] = field(default_factory=list)
    is_error: bool = False

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8", "replace")) + sum(len(i) for i in self.images)


def _data_url(mime: str, data: str) -> str:
    return data if data.startswith("data:") else f"data:{mime};base64,{data}"


def tool_result(result: types.CallToolResult) -> Formatted:
    images: list[str] = []
    parts: list[str] = []
    for item in result.content or []:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        elif isinstance(item, types.EmbeddedResource):
            resource = item.resource.model_dump(by_alias=True, exclude_none=True, mode="json")
            resource.pop("blob", None)
            parts.append(json.dumps(resource, indent=2, ensure_ascii=False))
        elif isinstance(item, types.ImageContent) and item.mime_type and item.data:
            images.append(_data_url(item.mime_type, item.data))
    text = "\n\n".join(p for p in parts if p)
    if not text and not images:
        return Formatted("(No response)", [], bool(result.is_error))
    body = text or f"[{len(images)} image(s) received]"
    return Formatted(("Error:\n" if result.is_error else "") + body, images, bool(result.is_error))


def resource_result(result: types.ReadResourceResult) -> Formatted:
    texts = [c.text for c in result.contents if isinstance(c, types.TextResourceContents) and c.text]
    images = [
        _data_url(c.mime_type or "", c.blob)
        for c in result.contents
        if isinstance(c, types.BlobResourceContents) and (c.mime_type or "").startswith("image") and c.blob
    ]
    return Formatted("\n\n".join(texts) or "(Empty response)", images)


def capped(formatted: Formatted, limit: int, what: str) -> Formatted:
    """``formatted`` if it fits in ``limit`` bytes, else :class:`ResultTooLarge`."""
    size = formatted.size
    if size > limit:
        raise ResultTooLarge(
            f"{what} returned {_human(size)}, more than the daemon accepts ({_human(limit)}, mcp.max_result_bytes); "
            "nothing of it was kept. Ask for less (a narrower query, a page, a range) or use another tool."
        )
    return formatted


def _human(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB ({n:,} bytes)"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB ({n:,} bytes)"
    return f"{n} bytes"
