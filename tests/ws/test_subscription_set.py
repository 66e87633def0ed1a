"""The subscription set on its own: matching, replay then live, at most
once across overlapping subscriptions, gaps and the lag limit, driven with
events by hand (no socket, no daemon, no store)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from roo_daemon.auth import Principal
from roo_daemon.events import Event
from roo_daemon.ws.subscriptions import SubscriptionSet

ADMIN = Principal("admin", frozenset({"admin"}))
ALICE = Principal("alice", frozenset({"read"}))


def event(seq: int, session: str = "s1", task: str | None = "t1", owner: str = "alice") -> Event:
    frame = json.dumps({"seq": seq, "event": "e", "session_id": session, "task_id": task, "data": {}})
    return Event(seq, "e", session, task, owner, frame, frame.encode())


class Log:
    """The stored events, paged as EventStore.page does."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.pruned_through = 0  # the bus's floor

    async def page(self, after: int, limit: int, session_id: Any, task_id: Any, owner: Any) -> list[tuple[int, str]]:
        rows = [
            (e.seq, e.frame)
            for e in self.events
            if e.seq > after
            and e.seq > self.pruned_through
            and (session_id is None or e.session_id == session_id)
            and (task_id is None or e.task_id == task_id)
            and (owner is None or e.owner == owner)
        ]
        return rows[:limit]


class Harness:
    def __init__(self, principal: Principal = ALICE, send_queue_max: int = 8) -> None:
        self.log = Log()
        self.sent: list[dict[str, Any]] = []
        self.lagged = False
        self.room = asyncio.Event()
        self.room.set()
        self.set = SubscriptionSet(
            self._send,
            self.room.wait,
            self.log,
            self.log,
            lambda: {"max_subscriptions": 3, "send_queue_max": send_queue_max},
            self._lag,
        )
        self.set.principal = principal

    def _send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):  # a ready WebSocket frame: strip the header
            n = frame[1]
            frame = frame[4:] if n == 126 else frame[10:] if n == 127 else frame[2:]
        self.sent.append(json.loads(frame))

    def _lag(self) -> None:
        self.lagged = True

    def commit(self, *events: Event) -> None:
        """Stored and fanned out, as the bus does after a commit."""
        for e in events:
            self.log.events.append(e)
            self.set.deliver(e)

    def seqs(self) -> list[int]:
        out = [f["seq"] for f in self.sent if "seq" in f]
        self.sent.clear()
        return out


def test_a_live_subscription_sends_its_matches_and_only_the_principals():
    h = Harness()
    h.commit(event(1))  # before any subscription: not sent
    h.set.add("a", "s1", None, None)
    h.commit(event(2), event(3, session="s2"), event(4, owner="bob"), event(5, task="t2"))
    assert h.seqs() == [2, 5]


def test_overlapping_subscriptions_send_each_event_once():
    h = Harness()
    h.commit(event(1))
    h.set.add("session", "s1", None, None)
    h.set.add("task", None, "t1", None)
    h.commit(event(2), event(3, task="t2"), event(4))
    assert h.seqs() == [2, 3, 4]


def test_replay_then_live_with_events_arriving_during_the_replay():
    async def run() -> None:
        h = Harness()
        h.commit(*(event(s) for s in range(1, 6)))
        h.room.clear()  # the client has not read: the replay waits for room
        sub = h.set.add("r", None, "t1", 2)
        replay = asyncio.ensure_future(h.set.replay(sub))
        await asyncio.sleep(0)
        h.commit(event(6), event(7))  # live meanwhile: held back
        assert h.seqs() == []
        h.room.set()
        await asyncio.wait_for(replay, 1)
        h.commit(event(8))
        assert h.seqs() == [3, 4, 5, 6, 7, 8]

    asyncio.run(run())


def test_a_replay_skips_what_an_unsubscribed_subscription_sent():
    async def run() -> None:
        h = Harness()
        h.commit(event(1))
        h.set.add("live", None, "t1", None)
        h.commit(event(2), event(3))
        assert h.set.remove("live") and not h.set.remove("live")
        assert h.seqs() == [2, 3]
        sub = h.set.add("again", "s1", None, 0)
        await h.set.replay(sub)
        h.commit(event(4))
        assert h.seqs() == [1, 4]  # 2 and 3 were on the connection already

    asyncio.run(run())


def test_a_replay_from_before_the_pruning_floor_starts_with_a_gap():
    async def run() -> None:
        h = Harness()
        h.commit(*(event(s) for s in range(1, 6)))
        h.log.pruned_through = 3
        sub = h.set.add("r", "s1", None, 0)
        await h.set.replay(sub)
        assert h.sent[0] == {"event": "gap", "id": "r", "data": {"after": 0, "first_seq": 4}}
        assert h.seqs() == [4, 5]

    asyncio.run(run())


def test_a_replay_that_cannot_keep_up_with_the_live_stream_is_dropped():
    async def run() -> None:
        h = Harness(send_queue_max=1)  # holds at most 16 live events during a replay
        h.commit(event(1))
        h.room.clear()
        sub = h.set.add("r", "s1", None, 0)
        replay = asyncio.ensure_future(h.set.replay(sub))
        await asyncio.sleep(0)
        h.commit(*(event(s) for s in range(2, 18)))
        assert not h.lagged
        h.commit(event(18))
        assert h.lagged
        h.set.clear()  # as the handler does when it closes the connection
        h.set.close()
        h.room.set()
        await asyncio.wait_for(replay, 1)
        assert h.seqs() == []

    asyncio.run(run())


def test_an_admin_sees_every_owners_events():
    h = Harness(principal=ADMIN)
    h.commit(event(1))
    h.set.add("all", None, None, None)
    h.commit(event(2, owner="bob"), event(3, owner="alice", session="s9", task=None))
    assert h.seqs() == [2, 3]
