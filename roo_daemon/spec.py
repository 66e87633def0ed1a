"""The contract: ``openapi.yaml`` loaded once, with jsonschema validators
compiled once per operation at start (never per request).

Handlers name their operations by ``operationId``; :class:`Spec` gives each
one an :class:`Operation` that validates path parameters, query parameters
and the JSON body, and reports failures as ``{pointer, message}`` lists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import jsonschema
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

# libyaml's loader when PyYAML was built with it (its wheels are): the spec
# (140 kB) parses in a fifth of the time, at every start and in every test.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SPEC_URI = "urn:roo-daemon:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Up to 19 digits become integers, so a value past 2^63 - 1 meets the
# schema's ``maximum`` (a clear 422); longer ones stay strings (not integers).
_INT_RE = re.compile(r"^-?\d{1,19}$")
_NUM_RE = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def load_spec_text() -> str:
    return resources.files("roo_daemon").joinpath("openapi.yaml").read_text(encoding="utf-8")


def _pointer(prefix: str, path: Iterable[Any]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/".join([prefix, *parts]) if parts else prefix


def _errors(validator: jsonschema.protocols.Validator, instance: Any, prefix: str) -> list[dict[str, str]]:
    # Cheap path first: is_valid is much faster than collecting errors.
    if validator.is_valid(instance):
        return []
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            for extra in sorted(k for k in err.instance if k not in allowed):
                out.append({"pointer": _pointer(prefix, [*path, extra]), "message": "unknown field"})
            continue
        if err.validator == "required":
            missing = message.split("'")[1] if "'" in message else ""
            out.append({"pointer": _pointer(prefix, [*path, missing]), "message": "is required"})
            continue
        if len(message) > 300:
            message = message[:300] + "..."
        out.append({"pointer": _pointer(prefix, path), "message": message})
    return out


@dataclass
class Parameter:
    name: str
    location: str  # path, query or header
    required: bool
    schema: dict
    validator: jsonschema.protocols.Validator

    def __post_init__(self) -> None:
        # Parameter values repeat (ids, limits): remember recent verdicts so a
        # hot GET pays for a jsonschema run once per distinct value.
        self.errors_for = functools.lru_cache(maxsize=4096)(self._errors_for)
        # Where an error points, made once (not per request).
        self.pointer = f"{'/headers' if self.location == 'header' else '/' + self.location}/{self.name}"

    def _errors_for(self, value: Any, pointer: str) -> list[dict[str, str]]:
        return _errors(self.validator, value, pointer)

    def coerce(self, raw: str) -> Any:
        """Query and path values arrive as strings; give numbers their type so
        the schema checks the value, not the spelling."""
        kind = self.schema.get("type")
        if kind == "integer" and _INT_RE.match(raw):
            return int(raw)
        if kind == "number" and _NUM_RE.match(raw):
            return float(raw)
        if kind == "boolean" and raw in ("true", "false"):
            return raw == "true"
        return raw


@dataclass
class Operation:
    operation_id: str
    method: str
    path: str
    doc: dict
    parameters: list[Parameter] = field(default_factory=list)
    body_validator: jsonschema.protocols.Validator | None = None
    body_required: bool = False

    @cached_property
    def query_params(self) -> list[Parameter]:
        return [p for p in self.parameters if p.location == "query"]

    @cached_property
    def path_params(self) -> list[Parameter]:
        return [p for p in self.parameters if p.location == "path"]

    @cached_property
    def header_params(self) -> list[Parameter]:
        return [p for p in self.parameters if p.location == "header"]

    @property
    def has_body(self) -> bool:
        return self.body_validator is not None

    @cached_property
    def _by_location(self) -> dict[str, list[Parameter]]:
        return {"path": self.path_params, "query": self.query_params, "header": self.header_params}

    def check_params(self, location: str, values: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Validate and coerce one location's parameters. Returns the typed
        values (defaults filled in) and the errors."""
        out: dict[str, Any] = {}
        errors: list[dict[str, str]] = []
        for p in self._by_location[location]:
            raw = values.get(p.name)
            if raw is None:
                if p.required:
                    errors.append({"pointer": p.pointer, "message": "is required"})
                elif "default" in p.schema:
                    out[p.name] = p.schema["default"]
                continue
            value = p.coerce(raw)
            errs = p.errors_for(value, p.pointer)
            if errs:
                errors.extend(errs)
            out[p.name] = value
        return out, errors

    def check_body(self, body: Any) -> list[dict[str, str]]:
        assert self.body_validator is not None
        return _errors(self.body_validator, body, "/body")


class Spec:
    """The parsed ``openapi.yaml`` and everything compiled from it."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text if text is not None else load_spec_text()
        self.doc: dict = yaml.load(self.text, Loader=SAFE_LOADER)
        self.json_bytes = json.dumps(self.doc, separators=(",", ":")).encode()
        self.registry = referencing.Registry().with_resource(
            SPEC_URI, referencing.Resource.from_contents(self.doc, default_specification=DRAFT202012)
        )
        self.operations: dict[str, Operation] = {}
        for path, item in self.doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method in item:
                    op = self._operation(path, method, item[method], shared)
                    self.operations[op.operation_id] = op

    def validator(self, pointer: str) -> jsonschema.protocols.Validator:
        """A validator for the schema at ``pointer`` (a JSON Pointer into the
        document) that resolves ``$ref``s against the whole spec."""
        return jsonschema.Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"},
            registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )

    def schema_validator(self, name: str) -> jsonschema.protocols.Validator:
        return self.validator(f"/components/schemas/{name}")

    def resolve(self, node: dict) -> dict:
        """Follow a local ``$ref`` (one level at a time until none is left)."""
        while "$ref" in node:
            node = self._at(node["$ref"])
        return node

    def _at(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _operation(self, path: str, method: str, doc: dict, shared: list) -> Operation:
        op = Operation(operation_id=doc["operationId"], method=method.upper(), path=path, doc=doc)
        base = "/paths/" + path.replace("~", "~0").replace("/", "~1")
        located = [(raw, f"{base}/parameters/{i}") for i, raw in enumerate(shared)]
        located += [(raw, f"{base}/{method}/parameters/{i}") for i, raw in enumerate(doc.get("parameters", []))]
        for raw, pointer in located:
            if "$ref" in raw:
                pointer = raw["$ref"].lstrip("#")
            param = self._at(pointer)
            op.parameters.append(
                Parameter(
                    param["name"],
                    param["in"],
                    bool(param.get("required")),
                    self.resolve(param.get("schema", {})),
                    self.validator(pointer + "/schema"),
                )
            )
        body = doc.get("requestBody")
        if body:
            pointer = body["$ref"].lstrip("#") if "$ref" in body else f"{base}/{method}/requestBody"
            body = self._at(pointer)
            if "schema" in body.get("content", {}).get("application/json", {}):
                op.body_validator = self.validator(pointer + "/content/application~1json/schema")
                op.body_required = bool(body.get("required"))
        return op
