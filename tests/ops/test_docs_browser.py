"""``/docs`` in a real browser (Debian's headless Chromium): Swagger UI renders
every operation of ``openapi.yaml``, with every host but the daemon's
unreachable, so nothing comes from a CDN."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.contract import spec
from tests.dashboard.browser import chromium

pytestmark = pytest.mark.slow


@pytest.mark.gen_test(timeout=120)
async def test_swagger_ui_renders_every_operation_offline(http_server: object, base_url: str, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root in CI's container
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Every host name but the daemon's fails to resolve: a CDN reference would break the page.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
        "--virtual-time-budget=20000",  # let the page's scripts fetch and render the spec
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        f"{base_url}/docs",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    dom, log = out.decode(), err.decode()
    assert proc.returncode == 0, log[-2000:]
    rendered = Counter(
        (method.lower(), path)
        for method, path in re.findall(
            r'opblock-summary-method">([A-Z]+)<.*?opblock-summary-path" data-path="([^"]+)"', dom, re.S
        )
    )
    expected = Counter((op.method.lower(), op.path) for op in spec().operations.values())
    assert rendered == expected, f"missing: {expected - rendered}; extra: {rendered - expected}"
    assert "roo-daemon" in dom and "OAS 3.1" in dom
    # No Content-Security-Policy violation and no script error in the console
    # (Chromium logs console messages as INFO:CONSOLE lines).
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not any("Content Security Policy" in line or "Uncaught" in line for line in console), console
