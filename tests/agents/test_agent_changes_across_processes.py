"""Every web process keeps the agents it serves; a change made anywhere is honoured by all within a second."""

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.services.agents import agent_update
from tests.conftest import make_key
from tests.processes import GunicornProcess


def invoke(url: str, agent_id: int, key: str, text: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/v1/agents/{agent_id}/invoke",
        data=json.dumps({"messages": [{"role": "user", "content": text}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def serving_pids(log_text: str, since: int) -> set[int]:
    """The worker processes that answered invocations, from the request log lines after `since`."""
    pids = set()
    for line in log_text[since:].splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("path", "").endswith("/invoke") and record.get("status") == 200:
                pids.add(record["pid"])
    return pids


def ask_from_both_workers(server, agent_id, key, tag: str) -> None:
    """Ask different questions in parallel until both workers have answered some."""
    since = len(server.log_text())
    for round_number in range(50):
        questions = [f"{tag} {round_number}.{n}" for n in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(lambda text: invoke(server.url, agent_id, key, text), questions)) == {200}
        if len(serving_pids(server.log_text(), since)) == 2:
            return
    raise AssertionError("one worker answered every request")


@pytest.mark.django_db(transaction=True)
def test_an_agent_changed_in_one_process_is_served_changed_by_every_process_within_a_second(
    alice, agent, fake_llm, tmp_path
):
    # Given two web workers that have both served the agent (and so keep it)
    key = make_key(alice, scopes=["agents:invoke"])
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=2)
    try:
        server.wait_for_log("Booting worker")
        ask_from_both_workers(server, agent.pk, key, "before")

        # When its system prompt is changed here, a process of its own, and a second has passed
        agent_update(agent=agent, system_prompt="Answer in French.")
        time.sleep(1)

        # Then every call, whichever worker serves it, sends the new system prompt to the provider
        fake_llm.requests.clear()
        ask_from_both_workers(server, agent.pk, key, "after")
    finally:
        server.stop()
    prompts = {request["body"]["messages"][0]["content"] for request in fake_llm.requests}
    assert prompts == {"Answer in French."}
