"""Workflow agent steps go through the same content policy as every other way in: redacted before the
provider, recorded with their verdicts, and a blocked step fails naming the detector."""

import pytest

from agents.models import AgentRun, GuardVerdict
from tests.agents.test_guard_pipeline import EMAIL, KEY, everything_stored, provider_saw, set_policy
from tests.workflows.conftest import finished, make_workflow, start, steps_of

pytestmark = pytest.mark.django_db(transaction=True)

FLOW = """
version: 1
name: guarded
inputs:
  note: {type: string}
steps:
  - {id: ask, kind: agent, agent: researcher, input: "${inputs.note}"}
outputs:
  answer: "${steps.ask.output}"
"""


def test_an_agent_step_is_redacted_before_the_provider_and_its_run_keeps_the_verdicts(
    engine, alice, alice_agents, agent_type, fake_llm
):
    set_policy(agent_type, email="redact")

    run = finished(start(make_workflow(alice, FLOW), alice, note=f"write to {EMAIL}"))

    assert run.status == "succeeded", run.error
    assert run.outputs == {"answer": "echo: write to [EMAIL]"}
    assert EMAIL not in provider_saw(fake_llm)
    agent_run = AgentRun.objects.get(pk=steps_of(run)["ask"].agent_run_id)
    assert EMAIL not in everything_stored(agent_run)
    assert set(GuardVerdict.objects.filter(run=agent_run).values_list("detector", "action", "where")) == {
        ("email", "redact", "input")
    }


def test_a_blocked_agent_step_fails_the_run_naming_the_detector(engine, alice, alice_agents, agent_type, fake_llm):
    set_policy(agent_type, secret="block")

    run = finished(start(make_workflow(alice, FLOW), alice, note=f"use {KEY}"))

    assert run.status == "failed"
    step = steps_of(run)["ask"]
    assert step.status == "failed" and "secret.github_token" in step.error and KEY not in step.error
    assert fake_llm.chat_calls() == 0
    assert AgentRun.objects.get().status == "refused"
