"""The access line: written straight to the JSON handler's stream (no
``LogRecord``) when nothing else listens, byte for byte the line ``logging``
and :class:`JsonFormatter` would write, credentials in client-chosen values
redacted; through ``logging`` whenever anything else is attached."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from roo_daemon import logs
from roo_daemon.logs import access_logger, setup_logging
from roo_daemon.metrics import Metrics

KEY = "roo_" + "k" * 40


@pytest.fixture
def json_stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], io.StringIO]]:
    """``start(level)``: ``setup_logging(level, "json")`` on a captured
    stdout. Tests call it themselves: pytest replaces ``sys.stdout`` and
    attaches its capture handlers to the root logger after fixtures run. The
    root logger's handlers and level are restored."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._json_sink)

    def start(level: str, out: io.StringIO | None = None) -> io.StringIO:
        out = out if out is not None else io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        setup_logging(level, "json")
        return out

    try:
        yield start
    finally:
        root.handlers[:], level, logs._json_sink = saved
        root.setLevel(level)


def request(status: int = 200, method: str = "GET", **path_kwargs: str) -> Any:
    req = SimpleNamespace(method=method, remote_ip="10.0.0.9", request_time=lambda: 0.0123456)
    return SimpleNamespace(
        get_status=lambda: status,
        request=req,
        route="/api/v1/sessions/{session_id}",
        request_id="0123abcd",
        client_ip="127.0.0.1",
        path_kwargs=path_kwargs,
    )


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def without_ts(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != "ts"}


@pytest.mark.parametrize(
    ("status", "method", "path_kwargs"),
    [
        (200, "GET", {"session_id": "ses_" + "0" * 32}),
        (404, "M00001", {"session_id": KEY}),  # an unknown method; a key pasted into the path
        (503, "DELETE", {"session_id": "ses_1", "task_id": "tsk_2"}),
    ],
)
def test_the_direct_line_is_the_line_logging_writes(
    json_stdout: Callable[[str], io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    method: str,
    path_kwargs: dict,
) -> None:
    out = json_stdout("info")
    log = access_logger(Metrics())
    handler = logging.getLogger().handlers[0]

    def no_records(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the direct path made a LogRecord")

    with monkeypatch.context() as m:
        m.setattr(logging.Logger, "makeRecord", no_records)
        log(request(status, method, **path_kwargs))
    handler.addFilter(lambda record: True)  # anything attached: through logging
    log(request(status, method, **path_kwargs))
    direct, through_logging = lines(out)
    assert list(direct) == list(through_logging)  # same fields, same order
    assert without_ts(direct) == without_ts(through_logging)
    assert direct["ts"].endswith("Z") and len(direct["ts"]) == len(through_logging["ts"])
    assert KEY not in out.getvalue()
    if path_kwargs["session_id"] == KEY:
        assert direct["session_id"] == "roo_[redacted]" and direct["raw_method"] == "M00001"


def test_a_capturing_handler_gets_records(
    json_stdout: Callable[[str], io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    out = json_stdout("info")
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.INFO, "roo_daemon.access")
    access_logger(Metrics())(request())
    assert [r.getMessage() for r in caplog.records if r.name == "roo_daemon.access"] == [
        "GET /api/v1/sessions/{session_id} 200 12.3ms"
    ]
    assert len(lines(out)) == 1  # and the line is written once


def test_the_level_still_decides(json_stdout: Callable[[str], io.StringIO]) -> None:
    out = json_stdout("warning")
    log = access_logger(Metrics())
    log(request(200))
    log(request(404))
    log(request(500))
    assert [line["status"] for line in lines(out)] == [500]
    assert lines(out)[0]["level"] == "error"


class CountingStream(io.StringIO):
    flushes = 0
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.mark.gen_test(timeout=5)
async def test_lines_of_one_loop_turn_leave_in_one_write(json_stdout: Callable[..., io.StringIO]) -> None:
    """With PYTHONUNBUFFERED (the systemd unit sets it) each stream write is
    a system call: the lines of one loop turn wait, then leave together."""
    import asyncio

    out = json_stdout("info", CountingStream())
    log = access_logger(Metrics())
    log(request())
    log(request())
    assert out.writes == 0  # waiting for the end of the loop turn
    await asyncio.sleep(0)
    assert len(lines(out)) == 2 and out.writes == 1 and out.flushes == 1


@pytest.mark.gen_test(timeout=5)
async def test_a_record_through_logging_keeps_the_order(json_stdout: Callable[..., io.StringIO]) -> None:
    """A record logged the ordinary way while access lines wait goes after
    them (the stream keeps the order lines were made in); so does exit's
    flush (logging.shutdown flushes every handler)."""
    out = json_stdout("info", CountingStream())
    log = access_logger(Metrics())
    log(request(status=201))
    logging.getLogger("roo_daemon.test").warning("after the first line")
    log(request(status=202))
    logging.getLogger().handlers[0].flush()  # what logging.shutdown does at exit
    got = lines(out)
    assert [line.get("status") for line in got] == [201, None, 202]
    assert got[1]["msg"] == "after the first line"


def test_recurring_values_are_redacted_every_time_and_the_cache_is_bounded(
    json_stdout: Callable[[str], io.StringIO],
) -> None:
    out = json_stdout("info")
    log = access_logger(Metrics())
    for _ in range(3):
        log(request(404, session_id=KEY))
    assert KEY not in out.getvalue()
    assert [line["session_id"] for line in lines(out)] == ["roo_[redacted]"] * 3
    for i in range(logs._RENDERED_MAX + 10):
        log(request(200, session_id=f"ses_{i:032x}"))
    assert len(logs._rendered) <= logs._RENDERED_MAX
    assert lines(out)[-1]["session_id"] == f"ses_{logs._RENDERED_MAX + 9:032x}"


def test_a_request_id_the_client_chose_is_redacted(json_stdout: Callable[[str], io.StringIO]) -> None:
    """X-Request-ID may be any [A-Za-z0-9._:-]{1,128}, a key's shape
    included; only an id the daemon made skips the check."""
    out = json_stdout("info")
    log = access_logger(Metrics())
    chosen = request()
    chosen.request_id = KEY
    log(chosen)
    made = request()
    made.request_id, made.request_id_generated = "0123456789abcdef01234567", True
    log(made)
    assert KEY not in out.getvalue()
    assert [line["request_id"] for line in lines(out)] == ["roo_[redacted]", "0123456789abcdef01234567"]


@pytest.mark.parametrize(
    ("status", "method", "path_kwargs", "generated"),
    [
        (200, "GET", {"session_id": "ses_" + "0" * 32}, True),
        (201, "POST", {}, False),
        (404, "M00001", {"session_id": KEY, "other": "x"}, False),
        (503, "DELETE", {"session_id": "ses_1", "task_id": 'tsk_"2"\u00e9'}, True),
    ],
)
def test_the_line_from_its_fixed_parts_is_the_line_rendered_field_by_field(
    json_stdout: Callable[[str], io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    method: str,
    path_kwargs: dict,
    generated: bool,
) -> None:
    """The access logger renders a line from parts made once per method,
    route, status and level (logs._Shape): byte for byte what _access_line
    renders from the same values."""
    monkeypatch.setattr(logs._clock, "ts", lambda: "2026-12-03T20:00:00.123Z")
    out = json_stdout("info")
    handler = request(status, method, **path_kwargs)
    handler.request_id_generated = generated
    access_logger(Metrics())(handler)
    logging.getLogger().handlers[0].flush()
    params = [(k, v) for k, v in path_kwargs.items() if k in ("session_id", "task_id")] or None
    ms = 0.0123456 * 1000
    raw = method if method == "M00001" else None
    expected = logs._access_line(
        logging.INFO if status < 500 else logging.ERROR,
        f"{'other' if raw else method} /api/v1/sessions/{{session_id}} {status} {ms:.1f}ms",
        "0123abcd",
        generated,
        "127.0.0.1",
        "/api/v1/sessions/{session_id}",
        status,
        round(ms, 2),
        params,
        raw,
    )
    assert out.getvalue() == expected + "\n"


def test_a_line_queued_while_lines_are_written_waits_for_the_next_write(
    json_stdout: Callable[[str], io.StringIO],
) -> None:
    """The loop queues lines without the handler's lock: a line queued while
    another thread writes the waiting ones is not lost, it leaves next."""
    json_stdout("info")
    sink = logging.getLogger().handlers[0]
    assert isinstance(sink, logs._JsonSink)

    class Racing(io.StringIO):
        def write(self, text: str) -> int:
            if "first" in text:
                sink.pending.append("late\n")  # what the loop would do meanwhile
            return super().write(text)

    out = Racing()
    sink.setStream(out)
    sink.pending.append("first\n")
    sink.flush()
    assert out.getvalue() == "first\n" and sink.pending == ["late\n"]
    sink.flush()
    assert out.getvalue() == "first\nlate\n"
