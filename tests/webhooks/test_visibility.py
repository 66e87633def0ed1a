"""Who sees a session's webhooks: its owner (a daemon-wide webhook's URL
without its query, which may carry the receiver's token) and admins (the
whole URL); another tenant gets 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.security.conftest import TOKENS, secure_config
from tests.webhooks.conftest import FAST, hook
from tests.webhooks.receiver import Receiver


@pytest.fixture
def config(tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    default = {**hook(receiver, ["task.completed"]), "url": receiver.url + "?token=receiver-secret"}
    return secure_config(tmp_path, webhooks={**FAST, "default": [default]})


@pytest.mark.gen_test(timeout=30)
async def test_the_owner_and_admins_see_the_state_others_do_not(
    base_url: str, http_server: Any, receiver: Receiver
) -> None:
    alice, bob, root = (Api(base_url, TOKENS[n]) for n in ("alice", "bob", "root"))
    session = await alice.session(webhooks=[hook(receiver, ["ask"])])
    path = f"/api/v1/sessions/{session['id']}/webhooks"

    own, default = (await alice.get(path)).json["items"]
    assert (own["source"], own["url"]) == ("session", receiver.url)
    assert (default["source"], default["url"]) == ("config", receiver.url)  # no query for a tenant
    assert session["webhooks"] == [hook(receiver, ["ask"])]  # the defaults are not the session's own
    items = (await root.get(path)).json["items"]
    assert items[1]["url"] == receiver.url + "?token=receiver-secret"
    assert (await bob.get(path)).status == 404
