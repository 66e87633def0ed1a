"""Fixtures for webhook tests: a receiver, and a daemon that retries fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.webhooks.receiver import Receiver

SECRET = "whsec_test_not_a_real_secret"
FAST = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.2, "timeout_seconds": 5}


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROO_WEBHOOK_TEST", SECRET)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return make_config(tmp_path, webhooks=FAST)


@pytest.fixture
def receiver(io_loop: Any) -> Iterator[Receiver]:
    r = Receiver(SECRET.encode())
    r.up()
    yield r
    r.down()


def hook(receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    return {"url": receiver.url, "events": events or ["*"], "secret_env": "ROO_WEBHOOK_TEST"}
