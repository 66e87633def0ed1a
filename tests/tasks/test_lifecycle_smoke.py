import pytest

from tests.conftest import WsClient, wait_status


@pytest.mark.gen_test(timeout=20)
async def test_demo_task_runs_through_approval_to_completion(api, base_url):
    session = await api.session(name="demo")
    task = await api.task(session["id"], "create hello.txt")
    assert task["status"] == "queued" and task["provider_kind"] == "scripted"
    ws = await WsClient.connect(base_url)
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"}, ws)
    ask = waiting["pending_ask"]
    assert ask["kind"] == "tool" and ask["tool"] == "write_to_file"
    assert "+Hello from roo-daemon!" in ask["diff"]
    r = await api.post(
        f"/api/v1/sessions/{session['id']}/tasks/{task['id']}/responses", {"ask_id": ask["id"], "approve": True}
    )
    assert r.status == 200
    done = await wait_status(api, session["id"], task["id"], {"completed"}, ws)
    assert done["result"] == "Created hello.txt with a greeting."
    assert done["usage"]["tokens_in"] == 930
    with open(f"{session['workspace']}/hello.txt") as f:
        assert f.read() == "Hello from roo-daemon!\n"
    ws.close()
