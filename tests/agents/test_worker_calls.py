"""Agent calls made by the worker (asynchronous invocations): many at once in one worker process."""

import pytest
from django.db.models import Sum

from agents.models import AgentRun
from agents.services.invocation import agent_invoke_async
from quotas.models import QuotaPolicy, UsageRecord
from tasks.models import TaskRecord
from tests.quotas.helpers import counter
from tests.tasks.conftest import wait_until


@pytest.mark.django_db(transaction=True)
def test_one_agents_worker_holds_64_calls_at_once_and_charges_each_once(agents_worker, alice, agent, fake_llm):
    # Given a token budget, and a provider that answers only once it holds 64 calls at once
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1_000_000)
    fake_llm.answer_at_in_flight = 64

    # When 64 asynchronous invocations are started
    records = [
        agent_invoke_async(user=alice, agent=agent, messages=[{"role": "user", "content": f"task {n}"}])[0]
        for n in range(64)
    ]

    # Then the one worker process had all 64 calls in flight at once, and every task succeeded, once
    wait_until(lambda: not TaskRecord.objects.filter(status__in=TaskRecord.UNFINISHED).exists(), timeout=90)
    assert fake_llm.most_in_flight == 64
    assert set(TaskRecord.objects.values_list("status", flat=True)) == {"succeeded"}
    assert fake_llm.chat_calls() == 64
    runs = AgentRun.objects.filter(status=AgentRun.Status.SUCCEEDED)
    assert sorted(runs.values_list("idempotency_key", flat=True)) == sorted(str(record.pk) for record in records)
    tokens = UsageRecord.objects.aggregate(total=Sum("input_tokens") + Sum("output_tokens"))["total"]
    assert counter("budget", alice, "tokens_per_day") == tokens > 0
