"""Input limits below the body limit: the prompt has a maximum size of its
own (the spec's ``maxLength``), enforced before anything is stored or run."""

from __future__ import annotations

from typing import Any

import pytest

PROMPT_MAX = 200_000  # TaskCreate.prompt.maxLength in openapi.yaml


@pytest.mark.gen_test(timeout=15)
async def test_a_prompt_over_its_maximum_is_422(as_: Any) -> None:
    alice = as_("alice")
    session = await alice.session(provider="hang")
    tasks = f"/api/v1/sessions/{session['id']}/tasks"
    r = await alice.post(tasks, {"prompt": "p" * (PROMPT_MAX + 1)})
    assert r.status == 422, r.body
    assert [e["pointer"] for e in r.json["errors"]] == ["/body/prompt"]
    assert (await alice.get(tasks)).json["items"] == []
    r = await alice.post(tasks, {"prompt": "p" * PROMPT_MAX})
    assert r.status == 202, r.body


@pytest.mark.parametrize(
    "workspace",
    ["~>", "~no-such-user-4f2a/ws", "/tmp/\u0000x", "/tmp/\udb1a", "../../etc", "relative/dir", "/etc"],
)
@pytest.mark.gen_test(timeout=15)
async def test_hostile_workspace_paths_are_422_not_500(as_: Any, workspace: str) -> None:
    """``~>`` was a 500 (found by the fuzzer): Path.expanduser raises for an unknown user."""
    r = await as_("alice").post("/api/v1/sessions", {"workspace": workspace})
    assert r.status == 422, r.body
    assert [e["pointer"] for e in r.json["errors"]] == ["/body/workspace"]
