"""The durable, ordered, replayable event log and its REST page."""

from roo_daemon.events.bus import Event, EventBus, Subscriber, UnstorableEvent

__all__ = ["Event", "EventBus", "Subscriber", "UnstorableEvent"]
