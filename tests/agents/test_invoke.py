"""Invoking an agent: the answer and its recorded run, bad input, content refusals, idempotency, async runs."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from agents.models import AgentRun
from agents.services.invocation import agent_invoke
from tests.agents.conftest import ask
from tests.conftest import api_client


@pytest.mark.django_db
def test_an_invocation_answers_and_records_tokens_and_cost_from_the_catalog_price(alice, agent, fake_llm):
    response = ask(api_client(alice), agent, "hello there")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["output"] == "echo: hello there" and response["X-Cache"] == "MISS"
    run = AgentRun.objects.get(pk=body["run"])
    # prompt: "Be brief." (2 words) + "hello there" (2); answer: 3 words
    assert (run.input_tokens, run.output_tokens) == (4, 3)
    assert run.cost == Decimal("0.00004000")  # (4 * 2.50 + 3 * 10.00) / 1e6
    assert (run.status, run.cache, run.model_name, run.agent_version) == ("succeeded", "MISS", "fake-gpt", 1)
    assert fake_llm.requests[0]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.django_db
def test_a_content_guard_refusal_is_a_422_and_is_never_cached(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = [r"\bforbidden\b"]

    refused_input = ask(api_client(alice), agent, "a forbidden question")
    fake_llm.reply = "that is forbidden knowledge"
    refused_answer = ask(api_client(alice), agent, "innocent")

    assert refused_input.status_code == 422 and fake_llm.chat_calls() == 1
    assert refused_answer.status_code == 422
    assert list(AgentRun.objects.values_list("status", "output")) == [("refused", ""), ("refused", "")]
    fake_llm.reply = None
    assert ask(api_client(alice), agent, "innocent")["X-Cache"] == "MISS"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "assistant", "content": "hi"}],
        [{"role": "user", "content": "   "}],
        [{"role": "robot", "content": "x"}],
    ],
)
def test_bad_conversations_get_a_400_and_call_nothing(alice, agent, fake_llm, messages):
    response = api_client(alice).post(f"/api/v1/agents/{agent.pk}/invoke", {"messages": messages}, format="json")

    assert response.status_code == 400
    assert fake_llm.chat_calls() == 0 and not AgentRun.objects.exists()


@pytest.mark.django_db
def test_a_run_retried_with_the_same_idempotency_key_is_recorded_and_charged_once(alice, agent, fake_llm):
    messages = [{"role": "user", "content": "once"}]

    invoke = async_to_sync(agent_invoke)
    first = invoke(user=alice, agent=agent, messages=messages, idempotency_key="task-1", bypass_cache=True)
    again = invoke(user=alice, agent=agent, messages=messages, idempotency_key="task-1", bypass_cache=True)

    assert first.run.pk == again.run.pk and fake_llm.chat_calls() == 1
    assert {k.lower(): v for k, v in fake_llm.requests[0]["headers"].items()}["idempotency-key"] == "task-1"


@pytest.mark.django_db(transaction=True)
def test_an_async_invocation_answers_202_and_the_worker_records_one_run(agents_worker, alice, agent, fake_llm):
    from tasks.models import TaskRecord
    from tests.tasks.conftest import wait_until

    client = api_client(alice)
    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke?async=1", {"messages": [{"role": "user", "content": "later"}]}, format="json"
    )

    assert response.status_code == 202
    task_id = response.json()["id"]
    wait_until(lambda: TaskRecord.objects.get(pk=task_id).is_finished)
    task = client.get(response["Location"]).json()
    assert task["status"] == "succeeded" and task["result"]["output"] == "echo: later"
    run = AgentRun.objects.get()
    assert str(run.pk) == task["result"]["run"] and run.idempotency_key == task_id


@pytest.mark.django_db
def test_an_async_invocation_with_refused_input_is_a_422_not_a_500(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = ["forbidden"]
    client = api_client(alice)

    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke?async=1",
        {"messages": [{"role": "user", "content": "forbidden"}]},
        format="json",
    )

    assert response.status_code == 422
