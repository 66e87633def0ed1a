"""A task that fails leaves one warning line in the daemon's log with its id
and error code: an operator reading the journal sees failures without
subscribing to events."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Api, wait_status


@pytest.mark.gen_test(timeout=30)
async def test_a_failed_task_logs_one_warning_with_its_id_and_code(api: Api, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="roo_daemon")
    session = await api.session(provider="broken")
    task = await api.task(session["id"])
    done = await wait_status(api, session["id"], task["id"], {"failed"})
    assert done["error"]["code"] == "provider_error"
    lines = [r for r in caplog.records if task["id"] in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    assert line.levelno == logging.WARNING and line.name == "roo_daemon.tasks"
    assert "provider_error" in line.getMessage() and "\n" not in line.getMessage()
    # The JSON log carries them as fields too.
    assert (line.task_id, line.session_id, line.error_code) == (task["id"], session["id"], "provider_error")


@pytest.mark.gen_test(timeout=30)
async def test_a_completed_task_logs_no_warning(api: Api, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="roo_daemon")
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    await wait_status(api, session["id"], task["id"], {"completed"})
    assert not [r for r in caplog.records if task["id"] in r.getMessage() and r.levelno >= logging.WARNING]
