"""Tests that need a system tool or an optional package.

Outside CI a missing tool skips the test with the reason (and how to get the
tool). Under ``CI=true`` it fails instead: ``.ci/run`` installs every tool the
suite needs, so a missing one there is a broken CI, not a reason to go green.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip (or, in CI, fail) because ``what`` is not available."""
    if in_ci():
        pytest.fail(f"CI must provide this, but it is missing: {what}", pytrace=False)
    pytest.skip(what)


def which_or_skip(program: str, how: str = ".ci/run installs it with apt-get") -> str:
    """The path of ``program``; skips (fails in CI) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        missing(f"{program} is not installed ({how})")
    return path  # type: ignore[return-value]


def module_or_skip(module: str, how: str) -> None:
    """Skips (fails in CI) when the Python ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        missing(f"{module} is not installed ({how})")
