"""Agent calls made by the worker (asynchronous invocations): many at once in one worker process."""

import asyncio
import json

import pytest
from django.db.models import Sum

from agents.models import AgentRun
from quotas.models import QuotaPolicy, UsageRecord
from tasks.models import TaskRecord
from tests.agents.conftest import post
from tests.conftest import make_key
from tests.processes import GunicornProcess
from tests.quotas.helpers import counter
from tests.tasks.conftest import wait_until


@pytest.mark.django_db(transaction=True)
def test_one_agents_worker_holds_64_calls_at_once_and_charges_each_once(
    agents_worker, alice, model, agent, fake_llm, tmp_path
):
    # Given a token budget, a provider that answers only once it holds 64 calls at once (the first calls wait
    # for the last: on a loaded machine, past the fixture's 5-s timeout, which a retry would follow), and a
    # web process just started
    model.provider.timeout_seconds = 60
    model.provider.save()
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1_000_000)
    fake_llm.answer_at_in_flight = 64
    key = make_key(alice, scopes=["agents:invoke"])
    web = GunicornProcess(tmp_path / "web.log", workers=1)
    try:
        web.wait_for_log("Booting worker")

        # When 64 asynchronous invocations are asked for at the same moment
        answers = asyncio.run(start_all(web.port, agent.pk, key, count=64))
    finally:
        web.stop()
    assert [status for status, _ in answers] == [202] * 64, {body[:300] for status, body in answers if status != 202}
    records = [json.loads(body)["id"] for _, body in answers]

    # Then the one worker process had all 64 calls in flight at once, and every task succeeded, once
    wait_until(lambda: not TaskRecord.objects.filter(status__in=TaskRecord.UNFINISHED).exists(), timeout=90)
    assert fake_llm.most_in_flight == 64
    assert set(TaskRecord.objects.values_list("status", flat=True)) == {"succeeded"}
    assert fake_llm.chat_calls() == 64
    runs = AgentRun.objects.filter(status=AgentRun.Status.SUCCEEDED)
    assert sorted(runs.values_list("idempotency_key", flat=True)) == sorted(records)
    tokens = UsageRecord.objects.aggregate(total=Sum("input_tokens") + Sum("output_tokens"))["total"]
    assert counter("budget", alice, "tokens_per_day") == tokens > 0


async def start_all(port: int, agent_id: int, key: str, count: int) -> list:
    body = lambda n: {"messages": [{"role": "user", "content": f"task {n}"}]}  # noqa: E731
    path = f"/api/v1/agents/{agent_id}/invoke?async=1"
    return await asyncio.gather(*[post(port, path, body(n), key) for n in range(count)])
