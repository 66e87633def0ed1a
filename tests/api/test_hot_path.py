"""The REST hot path's shortcuts answer as Tornado's own paths do: header
reads, the route lookup by path depth, bodyless requests run in one step,
request ids. (Their speed is measured in bench/rest_ratio.py, not here.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine, _normalize_header
from tornado.web import Application

from roo_daemon.api.base import header, new_request_id
from roo_daemon.app import ROUTES
from tests.conftest import Api

# Every name the hot path reads with header(): spelled as Tornado stores it.
HOT_NAMES = ("X-Request-Id", "Origin", "Authorization", "Content-Length", "Transfer-Encoding")


@pytest.mark.parametrize("name", HOT_NAMES)
def test_header_reads_what_get_reads(name: str) -> None:
    assert _normalize_header(name) == name
    headers = HTTPHeaders()
    assert header(headers, name) is None and headers.get(name) is None
    headers.add(name.lower(), "one")
    assert header(headers, name) == headers.get(name) == "one"
    headers.add(name.upper(), "two")  # repeated: joined as Tornado joins them
    assert header(headers, name) == headers.get(name) == "one,two"


def _request(path: str) -> HTTPServerRequest:
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", path, "HTTP/1.1"), headers=HTTPHeaders({"Host": "localhost"})
    )


def test_the_route_lookup_by_depth_finds_what_tornado_finds(app: Any) -> None:
    paths = [re.sub(r"\{\w+\}", "x1", template) for template, _ in ROUTES]
    paths += [
        "/",
        "/nope",
        "/api/v1/sessions/",
        "/api/v1/sessions//tasks",
        "/api/v1/sessions/a%2Fb",
        "/api/v1/sessions/a/b/c/d/e/f/g/h",
        "/docs/assets/",
        "/healthz/",
    ]
    for path in paths:
        ours = app.find_handler(_request(path))
        theirs = Application.find_handler(app, _request(path))
        assert ours.handler_class is theirs.handler_class, path
        assert ours.path_kwargs == theirs.path_kwargs, path


def test_request_ids_are_fresh_hex() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{24}", rid) for rid in ids)


@pytest.mark.gen_test(timeout=10)
async def test_bodyless_and_bodied_gets_answer_alike(api: Api) -> None:
    """A GET without a body runs in one step; one with ``Content-Length``
    (even 0, or a stray body) still streams: both answer the same."""
    session = await api.session()
    path = f"/api/v1/sessions/{session['id']}"
    plain = await api.get(path)
    empty = await api.request("GET", path, headers={"Content-Length": "0"})
    stray = await api.request("GET", path, body=b"{}")
    assert plain.status == empty.status == stray.status == 200
    assert plain.json == empty.json == stray.json == session


def test_clear_leaves_what_tornado_clear_leaves(app: Any) -> None:
    """ProblemWriter.clear() copies Tornado's, with a cached Date: the same
    headers (the Date of the same second) and the same response state."""
    import time

    from tornado.web import RequestHandler

    request = _request("/api/v1/sessions/x1")
    cls = app.find_handler(request).handler_class
    ours = cls.__new__(cls)  # no connection to run __init__ with: clear() needs only the request
    ours.request = request
    RequestHandler.clear(ours)
    theirs = list(ours._headers.get_all())
    state = {k: v for k, v in vars(ours).items() if k in ("_write_buffer", "_status_code", "_reason")}
    second = int(time.time())
    ours.clear()
    if int(time.time()) != second:  # the second turned between the two: ask again
        RequestHandler.clear(ours)
        theirs = list(ours._headers.get_all())
        ours.clear()
    assert list(ours._headers.get_all()) == theirs
    assert {k: v for k, v in vars(ours).items() if k in state} == state
    # clear() fills HTTPHeaders' own stores: they are what its constructor makes.
    assert set(vars(ours._headers)) == set(vars(HTTPHeaders())) == {"_as_list", "_combined_cache"}
    first = ours._headers
    ours.clear()  # each answer's headers and value lists are its own
    ours._headers.add("Cache-Control", "private")
    ours._headers["Content-Type"] = "application/json"
    assert first["Cache-Control"] == "no-store" and first["Content-Type"] == "text/html; charset=UTF-8"
    assert ours._headers["Cache-Control"] == "no-store,private"
    assert ours._headers.get_list("X-Request-ID") == [ours.request_id]


class _Stream:
    """What a connection's write_headers touches of its stream."""

    def __init__(self) -> None:
        self.written = b""
        self.io_loop = None
        self.max_buffer_size = 1 << 20

    def closed(self) -> bool:
        return False

    def write(self, data: bytes) -> Any:
        from tornado.concurrent import Future

        self.written += data
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def set_close_callback(self, callback: Any) -> None:
        pass


def _answer(
    cls: type, request: RequestStartLine, response: Any, headers: HTTPHeaders, chunk: bytes | None, close: bool
) -> tuple[Any, ...]:
    """What ``cls``'s write_headers writes and leaves, or the error it raises."""
    from tornado.http1connection import HTTP1ConnectionParameters

    stream = _Stream()
    conn = cls(stream, False, HTTP1ConnectionParameters())
    conn._request_start_line = request
    conn._request_headers = HTTPHeaders({"Connection": "keep-alive"})
    conn._disconnect_on_finish = close
    given, headers = headers, HTTPHeaders()
    for name, values in given._as_list.items():  # not copy(): it refuses the bad values some cases hold
        headers._as_list[name] = list(values)
    try:
        conn.write_headers(response, headers, chunk)
    except Exception as e:  # noqa: BLE001  # compared with what Tornado's raises
        return (type(e), str(e))
    state = (conn._chunking_output, conn._expected_content_remaining, conn._response_start_line)
    return (stream.written, list(headers.get_all()), state)


def _cases() -> list[tuple[Any, ...]]:
    from tornado.httputil import ResponseStartLine

    api = HTTPHeaders({"Server": "TornadoServer/6", "Content-Type": "application/json", "Date": "x"})
    api["X-Request-ID"] = "0123456789abcdef01234567"
    api["Content-Length"] = "2"
    multi = api.copy()
    multi.add("Set-Cookie", "a=1")
    multi.add("Set-Cookie", "b=2")
    no_length = HTTPHeaders({"Content-Type": "text/plain"})
    crlf = api.copy()
    crlf["X-Bad"] = "a\r\nInjected: yes"
    lone_lf = api.copy()
    lone_lf["X-Bad"] = "a\nb"
    latin = api.copy()
    latin["X-Name"] = "caf\u00e9"
    wide = api.copy()
    wide["X-Name"] = "\u20ac"
    as_bytes = api.copy()
    as_bytes._as_list["X-Bytes"] = [b"raw"]  # what Tornado's native_str lets through
    get = RequestStartLine("GET", "/x", "HTTP/1.1")
    ok = ResponseStartLine("", 200, "OK")
    cases = []
    for request in (get, RequestStartLine("HEAD", "/x", "HTTP/1.1"), RequestStartLine("GET", "/x", "HTTP/1.0")):
        for response in (ok, ResponseStartLine("", 204, "No Content"), ResponseStartLine("", 304, "Not Modified")):
            for headers in (api, multi, no_length):
                for close in (False, True):
                    cases.append((request, response, headers, b"{}" if response.code == 200 else None, close))
    for headers in (crlf, lone_lf, latin, wide, as_bytes):
        cases.append((get, ok, headers, b"{}", False))
    cases.append((get, ResponseStartLine("", 200, "D\u00e9j\u00e0"), api, b"{}", False))  # a non-ASCII reason
    cases.append((get, ResponseStartLine("", 101, "Switching Protocols"), no_length, None, False))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_the_answers_head_is_written_as_tornado_writes_it(case: tuple[Any, ...]) -> None:
    """The server's connection writes an answer's head in fewer steps
    (roo_daemon/http1.py): the same bytes, state and errors as Tornado's."""
    from tornado.http1connection import HTTP1Connection

    from roo_daemon.http1 import _Connection

    assert _answer(_Connection, *case) == _answer(HTTP1Connection, *case)
