"""The contract itself: ``openapi.yaml`` is valid OpenAPI 3.1, the route
table serves exactly its operations, and its error responses are uniform.
Real responses are also cross-checked with an independent validator
(openapi-core), so ``tests/contract.py`` is not the only judge."""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate as validate_openapi

from roo_daemon.app import ROUTES, check_routes
from roo_daemon.spec import HTTP_METHODS, Spec
from tests.conftest import Api, Response

SPEC_FILE = Path(__file__).resolve().parents[1] / "openapi.yaml"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(SPEC_FILE.read_text())


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(SPEC_FILE.read_text())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in doc["paths"].items() for m in HTTP_METHODS if m in item]


def test_openapi_document_is_valid(doc: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1."""
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)


def test_packaged_spec_is_the_repository_file(spec: Spec) -> None:
    """The daemon serves and validates with the same file the repo documents."""
    assert Spec().text == SPEC_FILE.read_text() == spec.text


def test_check_routes_passes_and_every_operation_is_routed(spec: Spec) -> None:
    """check_routes accepts the table, each operation has a handler at its
    path and method, and no handler serves an undocumented operation."""
    check_routes(types.SimpleNamespace(spec=spec))  # type: ignore[arg-type]
    by_template = {template: cls for template, cls in ROUTES}
    routed = set()
    for op_id, op in spec.operations.items():
        cls = by_template.get(op.path)
        assert cls is not None, f"{op_id}: no route for {op.path}"
        if op_id == "connectWebSocket":
            routed.add(op_id)
            continue
        assert cls.operations.get(op.method) == op_id, f"{op_id}: {cls.__name__} does not serve {op.method}"
        assert op.method in cls.SUPPORTED_METHODS
        routed.add(op_id)
    assert routed == set(spec.operations)
    served = {op_id for _, cls in ROUTES for op_id in getattr(cls, "operations", {}).values()}
    assert served | {"connectWebSocket"} == set(spec.operations)


def test_check_routes_rejects_drift(spec: Spec, doc: dict[str, Any]) -> None:
    """check_routes really checks: a spec with an extra or a missing
    operation is refused."""
    extra = copy.deepcopy(doc)
    extra["paths"]["/healthz"]["post"] = {
        "operationId": "pokeHealth",
        "description": "x",
        "responses": {"200": {"description": "x"}},
    }
    with pytest.raises(RuntimeError, match="pokeHealth"):
        check_routes(types.SimpleNamespace(spec=Spec(yaml.safe_dump(extra))))  # type: ignore[arg-type]
    missing = copy.deepcopy(doc)
    del missing["paths"]["/api/v1/sessions"]["get"]
    with pytest.raises(RuntimeError, match="listSessions"):
        check_routes(types.SimpleNamespace(spec=Spec(yaml.safe_dump(missing))))  # type: ignore[arg-type]


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    """Handlers name operations by id, so ids must be unique."""
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_every_operation_is_described(doc: dict[str, Any]) -> None:
    """Each operation has a non-empty summary, description and tag."""
    for path, method, op in operations(doc):
        assert op.get("description", "").strip(), f"{method.upper()} {path} has no description"
        assert op.get("summary", "").strip(), f"{method.upper()} {path} has no summary"
        assert op.get("tags"), f"{method.upper()} {path} has no tag"


def test_every_error_response_is_problem_json(doc: dict[str, Any], spec: Spec) -> None:
    """Every 4xx/5xx (and default) response is problem+json with the Problem
    schema, and every response documents X-Request-ID."""
    problem_ref = "#/components/schemas/Problem"
    for path, method, op in operations(doc):
        assert "default" in op["responses"], f"{method.upper()} {path} has no default response"
        for code, raw in op["responses"].items():
            response = spec.resolve(raw)
            where = f"{method.upper()} {path} -> {code}"
            assert "X-Request-ID" in response.get("headers", {}), f"{where}: no X-Request-ID header"
            if code == "default" or code[0] in "45":
                content = response.get("content", {})
                assert list(content) == [PROBLEM], f"{where}: {list(content)}"
                assert content[PROBLEM]["schema"] == {"$ref": problem_ref}, where


def test_every_component_schema_is_described(doc: dict[str, Any]) -> None:
    """Every schema in components says what it is."""
    for name, schema in doc["components"]["schemas"].items():
        assert schema.get("description"), f"schema {name} has no description"


# -- cross-check with openapi-core -------------------------------------------


@pytest.fixture(scope="module")
def openapi_core_spec(doc: dict[str, Any]) -> OpenAPI:
    # openapi-core only knows plain application/json; problems are JSON too.
    config = Config(extra_media_type_deserializers={PROBLEM: json.loads})
    return OpenAPI.from_dict(doc, config=config)


def cross_check(
    oa: OpenAPI, method: str, path: str, r: Response, body: bytes | None = None, headers: dict | None = None
) -> None:
    """Validate one real request/response pair with openapi-core."""
    server = oa.spec["servers"][0]["url"]
    raw_path, _, query = path.partition("?")
    args = dict(p.split("=", 1) for p in query.split("&")) if query else {}
    # No key is configured, so the daemon lets everyone in; the spec still
    # declares bearerAuth, so give openapi-core a (any) bearer token.
    req_headers = {"Authorization": "Bearer any"}
    if body is not None:
        req_headers["Content-Type"] = "application/json"
    req_headers.update(headers or {})
    request = MockRequest(server, method, raw_path, args=args, headers=req_headers, data=body)
    if r.status < 400:
        oa.validate_request(request)
    response = MockResponse(
        r.body,
        r.status,
        headers=dict(r.headers.get_all()),
        content_type=r.headers.get("Content-Type", "application/json"),
    )
    oa.validate_response(request, response)


@pytest.mark.gen_test(timeout=15)
async def test_real_responses_pass_openapi_core(api: Api, openapi_core_spec: OpenAPI) -> None:
    """Successes and problems from the running daemon validate with
    openapi-core too (an independent OpenAPI 3.1 implementation)."""
    oa = openapi_core_spec
    for path in ("/healthz", "/readyz", "/openapi.json"):
        cross_check(oa, "get", path, await api.get(path))
    body = b'{"name": "cross", "metadata": {"k": "v"}}'
    created = await api.post("/api/v1/sessions", body=body, headers={"Content-Type": "application/json"})
    assert created.status == 201
    cross_check(oa, "post", "/api/v1/sessions", created, body)
    sid = created.json["id"]
    for path in (f"/api/v1/sessions/{sid}", "/api/v1/sessions?limit=1", f"/api/v1/sessions/{sid}/tasks"):
        r = await api.get(path)
        assert r.status == 200
        cross_check(oa, "get", path, r)
    task = await api.post(f"/api/v1/sessions/{sid}/tasks", {"prompt": "hi"})
    assert task.status == 202
    cross_check(oa, "post", f"/api/v1/sessions/{sid}/tasks", task, b'{"prompt": "hi"}')
    events = f"/api/v1/sessions/{sid}/tasks/{task.json['id']}/events"
    cross_check(oa, "get", events, await api.get(events))
    # Problems: 404, 422 and 415.
    missing = "/api/v1/sessions/ses_" + "0" * 32
    r = await api.get(missing)
    assert r.status == 404
    cross_check(oa, "get", missing, r)
    r = await api.get("/api/v1/sessions?limit=0")
    assert r.status == 422
    cross_check(oa, "get", "/api/v1/sessions?limit=0", r)
    r = await api.post("/api/v1/sessions", body=b"x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    cross_check(oa, "post", "/api/v1/sessions", r, b"x", {"Content-Type": "text/plain"})
    deleted = await api.delete(f"/api/v1/sessions/{sid}")
    assert deleted.status == 204
    cross_check(oa, "delete", f"/api/v1/sessions/{sid}", deleted)
