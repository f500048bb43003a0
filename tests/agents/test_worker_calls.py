"""Agent calls made by the worker (asynchronous invocations): many at once in one worker process."""

import asyncio
import json

import pytest
from celery import current_app
from django.db.models import Sum

from agents.models import AgentRun
from quotas.models import QuotaPolicy, UsageRecord
from tasks.models import TaskRecord
from tests.agents.conftest import post
from tests.conftest import api_client, make_key
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


@pytest.mark.django_db(transaction=True)
def test_an_invocation_delivered_again_after_its_run_was_recorded_is_answered_by_that_run_and_charged_once(
    agents_worker, alice, model, agent, fake_llm
):
    # Given an asynchronous invocation the worker has made, recorded and charged
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1_000_000)
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))
    body = {"messages": [{"role": "user", "content": "once"}]}
    path = f"/api/v1/agents/{agent.pk}/invoke?async=1"
    started = client.post(path, body, format="json", HTTP_CACHE_CONTROL="no-cache").json()  # no answer to reuse
    first = wait_until(lambda: TaskRecord.objects.filter(pk=started["id"], status="succeeded").first())
    charged = counter("budget", alice, "tokens_per_day")

    # When its message comes again, as after a worker that died between the call and finishing the record
    TaskRecord.objects.filter(pk=first.pk).update(status=TaskRecord.Status.RUNNING)
    current_app.send_task("agents.invoke", kwargs=first.input, task_id=str(first.pk), queue="agents")
    again = wait_until(lambda: TaskRecord.objects.filter(pk=first.pk, status="succeeded", attempts=2).first())

    # Then the second attempt answers with the recorded run: no second provider call, no second charge
    assert again.result == first.result and fake_llm.chat_calls() == 1
    assert AgentRun.objects.count() == 1 and counter("budget", alice, "tokens_per_day") == charged > 0


async def start_all(port: int, agent_id: int, key: str, count: int) -> list:
    body = lambda n: {"messages": [{"role": "user", "content": f"task {n}"}]}  # noqa: E731
    path = f"/api/v1/agents/{agent_id}/invoke?async=1"
    return await asyncio.gather(*[post(port, path, body(n), key) for n in range(count)])
