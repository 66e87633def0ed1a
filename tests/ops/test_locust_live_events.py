"""The locust WebSocket user's delivery delay counts live events only: an
event a resume replays was stored before the subscribe, and its age says
nothing about delivery (it made the reported delay grow with the history)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import module_or_skip

ROOT = Path(__file__).resolve().parents[2]

# locust comes with the load extra, which .ci/run installs for the slow suite only.
pytestmark = pytest.mark.slow

# Run in a child: importing locust monkey-patches the process (gevent).
CHECK = """
from datetime import UTC, datetime
import locustfile

def ts(unix):
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

subscribed = 1_800_000_000.1234
assert not locustfile.is_live(ts(subscribed - 3600), subscribed)  # an hour-old event, replayed
assert not locustfile.is_live(ts(subscribed - 0.002), subscribed)
assert locustfile.is_live(ts(subscribed), subscribed)  # the same millisecond: stored after
assert locustfile.is_live(ts(subscribed + 0.5), subscribed)
print("ok")
"""


def test_events_stored_before_the_subscribe_are_not_live() -> None:
    module_or_skip("locust", "pip install -e '.[load]'; .ci/run does")
    module_or_skip("websocket", "pip install -e '.[load]'; .ci/run does")
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
