"""Response checks against ``openapi.yaml``: every response a test receives
goes through :func:`check_response`, so the code and the spec cannot drift.

Uses jsonschema directly with the same compiled spec the daemon loads.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from typing import Any

from roo_daemon.spec import Spec


@lru_cache(maxsize=1)
def spec() -> Spec:
    return Spec()


@cache
def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"[^/]+", template) + "$")


def find_operation(method: str, path: str) -> tuple[str, dict] | None:
    """``(template, operation doc)`` for a concrete request path, or None."""
    path = path.split("?", 1)[0]
    for template, item in spec().doc["paths"].items():
        if _template_regex(template).match(path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def check_response(method: str, path: str, status: int, headers: Any, body: bytes) -> None:
    """Assert that this response is one ``openapi.yaml`` documents."""
    s = spec()
    assert headers.get("X-Request-ID"), f"{method} {path} -> {status}: no X-Request-ID header"
    got = find_operation("GET", path) if method == "HEAD" else None
    if got is not None:
        # Every GET also answers HEAD (info.description): the GET's status
        # and headers, no body.
        assert not body, f"HEAD {path} -> {status} sent a body"
        responses = got[1]["responses"]
        assert str(status) in responses or "default" in responses, f"HEAD {path}: status {status} is not documented"
        return
    if method == "HEAD":
        assert status in (404, 405) and not body, f"HEAD {path} has no GET but answered {status} {body[:100]!r}"
        return
    found = find_operation(method, path)
    ctype = _media(headers.get("Content-Type", ""))
    if found is None:
        # Unmatched routes and methods: only problems are allowed.
        assert status in (404, 405), f"{method} {path} has no operation but answered {status}"
        assert ctype == "application/problem+json", f"{method} {path} -> {status} with {ctype}"
        _validate(s, "/components/schemas/Problem", json.loads(body), f"{method} {path} -> {status}")
        return
    template, op = found
    responses = op["responses"]
    key = str(status) if str(status) in responses else "default"
    assert key in responses, f"{method} {template}: status {status} is not documented"
    response = s.resolve(responses[key])
    content = response.get("content")
    if not content:
        assert not body, f"{method} {template} -> {status} must have no body"
        return
    assert ctype in content, f"{method} {template} -> {status}: content type {ctype!r} not in {list(content)}"
    if status >= 400:
        assert ctype == "application/problem+json", f"error {status} is not problem+json"
    schema = content[ctype].get("schema")
    if schema is None or not ctype.endswith("json"):
        return
    doc = json.loads(body)
    if status >= 400:
        assert doc["status"] == status, f"problem status {doc['status']} != HTTP status {status}"
    for name, header in response.get("headers", {}).items():
        header = s.resolve(header)
        if header.get("required"):
            assert headers.get(name), f"{method} {template} -> {status}: missing header {name}"
    pointer = _pointer_of(template, method, key, ctype)
    _validate(s, pointer, doc, f"{method} {template} -> {status}")


def _pointer_of(template: str, method: str, key: str, ctype: str) -> str:
    """JSON Pointer to the response schema (following a response $ref)."""
    op = spec().doc["paths"][template][method.lower()]
    ref = op["responses"][key]
    esc = lambda p: p.replace("~", "~0").replace("/", "~1")  # noqa: E731
    base = ref["$ref"].lstrip("#") if "$ref" in ref else f"/paths/{esc(template)}/{method.lower()}/responses/{key}"
    return f"{base}/content/{esc(ctype)}/schema"


def _validate(s: Spec, pointer: str, doc: Any, where: str) -> None:
    validator = _validator(pointer)
    errors = list(validator.iter_errors(doc))
    assert not errors, f"{where}: response breaks the spec: {errors[0].message} at {list(errors[0].absolute_path)}"


@cache
def _validator(pointer: str) -> Any:
    return spec().validator(pointer)


def check_ws_frame(frame: str) -> dict:
    """A server frame must match ``WsServerMessage``."""
    doc = json.loads(frame)
    errors = list(_validator("/components/schemas/WsServerMessage").iter_errors(doc))
    assert not errors, f"WebSocket frame breaks the spec: {frame[:300]}: {errors[0].message}"
    return doc
