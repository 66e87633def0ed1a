"""Error answers of the REST surface: every failure is an RFC 9457 problem
with the right status, and the generic headers are always there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.conftest import Api, Response, make_config
from tests.contract import check_response

SESSIONS = "/api/v1/sessions"
SMALL_LIMIT = 2048


def assert_problem(r: Response, status: int) -> dict[str, Any]:
    """The response is a problem+json document with ``status``."""
    assert r.status == status, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    doc = r.json
    assert doc["status"] == status
    assert doc["type"].startswith("urn:roo-daemon:problem:")
    assert doc["title"] and doc["detail"]
    return doc


def pointers(doc: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in doc["errors"]]


# -- 400 / 422 --------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_malformed_json_is_400(api: Api) -> None:
    """A body that is not JSON is a 400 problem, and nothing is created."""
    r = await api.post(SESSIONS, body=b'{"name": "x",', headers={"Content-Type": "application/json"})
    doc = assert_problem(r, 400)
    assert "not valid JSON" in doc["detail"]
    r = await api.post(SESSIONS, body=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert_problem(r, 400)
    listed = await api.get(SESSIONS)
    assert listed.json["items"] == []


@pytest.mark.gen_test(timeout=10)
async def test_body_schema_violation_is_422_with_pointers(api: Api) -> None:
    """Every schema failure in the body is listed with a pointer into /body."""
    r = await api.post(SESSIONS, {"name": "", "mode": "Wizard!", "auto_approve": {"write": "yes"}})
    doc = assert_problem(r, 422)
    assert doc["type"] == "urn:roo-daemon:problem:validation"
    assert set(pointers(doc)) == {"/body/name", "/body/mode", "/body/auto_approve/write"}
    assert all(isinstance(e["message"], str) and e["message"] for e in doc["errors"])


@pytest.mark.gen_test(timeout=10)
async def test_body_of_wrong_type_is_422(api: Api) -> None:
    """A JSON body that is not an object is rejected at the body's root."""
    r = await api.post(SESSIONS, [1, 2, 3])
    doc = assert_problem(r, 422)
    assert pointers(doc) == ["/body"]


@pytest.mark.gen_test(timeout=10)
async def test_unknown_body_field_is_rejected(api: Api) -> None:
    """Unknown fields are errors, and the pointer names each one."""
    r = await api.post(SESSIONS, {"name": "ok", "colour": "blue", "auto_approve": {"everything": True}})
    doc = assert_problem(r, 422)
    assert sorted(pointers(doc)) == ["/body/auto_approve/everything", "/body/colour"]
    assert all(e["message"] == "unknown field" for e in doc["errors"])


@pytest.mark.gen_test(timeout=10)
async def test_query_parameter_violation_points_into_query(api: Api) -> None:
    """Bad query values are 422 with a /query pointer (not a 400 or a 500)."""
    for value in ("abc", "0", "201", "-1", "1.5"):
        r = await api.get(f"{SESSIONS}?limit={value}")
        doc = assert_problem(r, 422)
        assert pointers(doc) == ["/query/limit"], value


@pytest.mark.gen_test(timeout=10)
async def test_path_parameter_violation_points_into_path(api: Api) -> None:
    """An id that cannot be a session id is 422 with pointer /path/session_id."""
    for method in ("GET", "DELETE"):
        r = await api.request(method, f"{SESSIONS}/not-a-session")
        doc = assert_problem(r, 422)
        assert pointers(doc) == ["/path/session_id"]
    r = await api.get(f"{SESSIONS}/ses_{'0' * 32}/tasks/tsk_XYZ")
    assert pointers(assert_problem(r, 422)) == ["/path/task_id"]


@pytest.mark.gen_test(timeout=10)
async def test_header_parameter_violation_points_into_headers(api: Api) -> None:
    """A malformed Idempotency-Key is a 422 on /headers/Idempotency-Key."""
    r = await api.post(SESSIONS, {}, headers={"Idempotency-Key": "x" * 256})
    doc = assert_problem(r, 422)
    assert pointers(doc) == ["/headers/Idempotency-Key"]


# -- 404 / 405 / 415 --------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_unknown_route_is_404_problem(api: Api) -> None:
    """Unmatched paths, whatever the method, are 404 problems."""
    for method, path in (("GET", "/nope"), ("POST", "/api/v2/sessions"), ("DELETE", "/api/v1/sessions/x/y/z/w")):
        r = await api.request(method, path)
        doc = assert_problem(r, 404)
        assert path.split("?")[0] in doc["detail"]


@pytest.mark.gen_test(timeout=10)
async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    """A method the resource does not support is 405 with an Allow header
    naming exactly the supported methods."""
    cases = {
        ("PUT", SESSIONS): {"GET", "HEAD", "POST"},
        ("PATCH", "/healthz"): {"GET", "HEAD"},
        ("POST", f"{SESSIONS}/ses_{'0' * 32}"): {"GET", "HEAD", "PATCH", "DELETE"},
        ("DELETE", "/metrics"): {"GET", "HEAD"},
    }
    for (method, path), allowed in cases.items():
        r = await api.request(method, path, body=b"{}" if method in ("PUT", "PATCH", "POST") else None)
        assert_problem(r, 405)
        allow = {m.strip() for m in r.headers["Allow"].split(",")}
        assert allow == allowed, (method, path, r.headers["Allow"])


@pytest.mark.gen_test(timeout=10)
async def test_wrong_content_type_is_415(api: Api) -> None:
    """A non-JSON media type is refused before the body is parsed."""
    r = await api.post(SESSIONS, body=b'{"name": "x"}', headers={"Content-Type": "text/plain"})
    doc = assert_problem(r, 415)
    assert "text/plain" in doc["detail"]
    r = await api.post(SESSIONS, body=b'{"name": "x"}')  # the client's default: form-urlencoded
    assert "x-www-form-urlencoded" in assert_problem(r, 415)["detail"]
    assert (await api.get(SESSIONS)).json["items"] == []
    r = await api.post(SESSIONS, body=b'{"name": "x"}', headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 201  # +json media types are JSON
    assert (await api.get(SESSIONS)).json["items"][0]["name"] == "x"


@pytest.mark.gen_test(timeout=10)
async def test_empty_body_is_not_judged_by_its_label(api: Api) -> None:
    """An empty POST body has no media type to refuse, whatever the label
    (curl -d '' sends form-urlencoded): it means "use the defaults"."""
    for ctype in ("application/x-www-form-urlencoded", "text/plain"):
        r = await api.post(SESSIONS, body=b"", headers={"Content-Type": ctype})
        assert r.status == 201, r.body
        assert r.json["workspace_managed"] is True
    assert len((await api.get(SESSIONS)).json["items"]) == 2


# -- 413 --------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return make_config(tmp_path, server={"max_body_bytes": SMALL_LIMIT})


def big_body() -> bytes:
    return json.dumps({"name": "x", "metadata": {f"k{i}": "v" * 100 for i in range(40)}}).encode()


@pytest.mark.gen_test(timeout=10)
async def test_body_over_limit_by_content_length_is_413(api: Api) -> None:
    """A Content-Length over server.max_body_bytes is 413; nothing is created."""
    body = big_body()
    assert len(body) > SMALL_LIMIT
    r = await api.post(SESSIONS, body=body, headers={"Content-Type": "application/json"})
    doc = assert_problem(r, 413)
    assert doc["detail"] == f"the request body is {len(body)} bytes; the limit is {SMALL_LIMIT}"
    assert (await api.get(SESSIONS)).json["items"] == []


async def post_chunked(base_url: str, body: bytes, piece: int) -> Any:
    """POST ``body`` to /api/v1/sessions chunked (no Content-Length), ``piece``
    bytes at a time; the response is checked against the spec."""

    async def produce(write: Any) -> None:
        for i in range(0, len(body), piece):
            await write(body[i : i + piece])

    req = HTTPRequest(
        base_url + SESSIONS,
        method="POST",
        body_producer=produce,
        headers={"Content-Type": "application/json"},
        request_timeout=10,
    )
    resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    check_response("POST", SESSIONS, resp.code, resp.headers, resp.body)
    return resp


@pytest.mark.gen_test(timeout=10)
async def test_chunked_body_over_limit_is_413(base_url: str, api: Api) -> None:
    """A chunked upload (no Content-Length) that exceeds the limit is 413 too."""
    resp = await post_chunked(base_url, big_body(), 500)
    doc = assert_problem(Response(resp.code, resp.headers, resp.body), 413)
    # The streaming path (not the Content-Length pre-check) answered.
    assert doc["detail"] == f"the request body exceeds {SMALL_LIMIT} bytes"
    assert (await api.get(SESSIONS)).json["items"] == []


@pytest.mark.gen_test(timeout=10)
async def test_chunked_body_under_limit_is_accepted(base_url: str, api: Api) -> None:
    """The chunked path really reads the body: a small chunked upload works."""
    resp = await post_chunked(base_url, json.dumps({"name": "chunked"}).encode(), 4)
    assert resp.code == 201, resp.body
    assert json.loads(resp.body)["name"] == "chunked"


# -- 500 --------------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_unexpected_exception_is_500_problem_without_internals(api: Api, ctx: Any, monkeypatch: Any) -> None:
    """An unhandled exception becomes a 500 problem carrying the request id,
    and leaks no exception text, traceback or file path."""

    async def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("secret detail in /srv/secret/module.py")

    monkeypatch.setattr(ctx.sessions, "list", boom)
    r = await api.get(SESSIONS, headers={"X-Request-ID": "trace-me-42"})
    doc = assert_problem(r, 500)
    assert doc["type"] == "urn:roo-daemon:problem:internal"
    assert doc["request_id"] == r.headers["X-Request-ID"] == "trace-me-42"
    text = r.body.decode()
    for leak in ("Traceback", "RuntimeError", "secret", ".py", 'File "'):
        assert leak not in text, leak
    # Other routes are unaffected.
    assert (await api.get("/healthz")).status == 200


# -- headers ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_request_id_echoed_when_sane_replaced_otherwise(api: Api) -> None:
    """A well-formed X-Request-ID is echoed; a malformed one is replaced."""
    r = await api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    generated = set()
    for bad in ("x" * 300, "has spaces in it", "semi;colon", ""):
        r = await api.get("/healthz", headers={"X-Request-ID": bad})
        rid = r.headers["X-Request-ID"]
        assert rid and rid != bad and " " not in rid and len(rid) <= 128
        generated.add(rid)
    assert len(generated) == 4  # fresh per request
    # Errors echo it too, in the header and in problem bodies that carry it.
    r = await api.get("/nope", headers={"X-Request-ID": "abc-123"})
    assert r.status == 404 and r.headers["X-Request-ID"] == "abc-123"


@pytest.mark.gen_test(timeout=10)
async def test_every_response_is_nosniff(api: Api) -> None:
    """X-Content-Type-Options: nosniff on successes and on every kind of error."""
    responses = [
        await api.get("/healthz"),
        await api.get("/metrics"),
        await api.get("/openapi.yaml"),
        await api.post(SESSIONS, {}),
        await api.get(SESSIONS),
        await api.get("/nope"),
        await api.request("PUT", SESSIONS, body=b"{}"),
        await api.post(SESSIONS, body=b"x", headers={"Content-Type": "text/plain"}),
        await api.post(SESSIONS, {"bogus": 1}),
        await api.post(SESSIONS, body=b"{", headers={"Content-Type": "application/json"}),
    ]
    created = responses[3].json["id"]
    responses.append(await api.delete(f"{SESSIONS}/{created}"))
    assert [r.status for r in responses] == [200, 200, 200, 201, 200, 404, 405, 415, 422, 400, 204]
    for r in responses:
        assert r.headers.get("X-Content-Type-Options") == "nosniff", r.status
