"""The protocol module on its own: decoding and checking client frames,
reply frames, and the per-principal connection cap (no socket)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from roo_daemon.auth import Principal
from roo_daemon.spec import Spec
from roo_daemon.ws import protocol

READER = Principal("reader", frozenset({"read"}))


@pytest.fixture(scope="module")
def validator() -> protocol.FrameValidator:
    return protocol.FrameValidator(Spec())


def test_a_valid_op_is_returned_as_the_frame(validator):
    frame = protocol.decode('{"op": "ping", "id": "p"}', validator, authenticated=True)
    assert frame == {"op": "ping", "id": "p"}


@pytest.mark.parametrize(
    ("message", "code", "op_id"),
    [
        (b"{}", "bad-frame", None),
        ("{nope", "bad-json", None),
        ("[1]", "bad-frame", None),
        ('{"op": "dance", "id": "x"}', "bad-frame", "x"),
        ('{"op": "subscribe", "id": "s", "after": -1}', "bad-frame", "s"),
    ],
)
def test_refused_frames_say_why(validator, message, code, op_id):
    refused = protocol.decode(message, validator, authenticated=True)
    assert isinstance(refused, protocol.Refused)
    assert (refused.code, refused.op_id) == (code, op_id), refused


def test_only_auth_before_authentication(validator):
    refused = protocol.decode('{"op": "ping", "id": "p"}', validator, authenticated=False)
    assert refused == protocol.Refused("p", "unauthenticated", 'send {"op": "auth", "token": ...} first')
    assert protocol.decode('{"op": "auth", "token": "t"}', validator, authenticated=False) == {
        "op": "auth",
        "token": "t",
    }


def test_reply_and_error_frames():
    assert json.loads(protocol.reply("pong", "p")) == {"event": "pong", "id": "p", "data": {}}
    assert json.loads(protocol.error(None, "bad-json", "the frame is x")) == {
        "event": "error",
        "id": None,
        "data": {"code": "bad-json", "detail": "the frame is x"},
    }


def test_the_connection_cap_counts_the_principals_other_connections():
    me = SimpleNamespace(principal=None)
    others = [SimpleNamespace(principal=READER), SimpleNamespace(principal=Principal("x", frozenset()))]
    conns = [me, *others]
    assert not protocol.too_many(conns, me, READER, cap=2)
    assert protocol.too_many(conns, me, READER, cap=1)
    me.principal = READER  # itself never counts
    assert not protocol.too_many(conns, me, READER, cap=2)
