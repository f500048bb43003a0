"""The engine: each kind of step on real workers, branches, joins, maps, retries, timeouts, cancellation,
budgets, version pinning and re-runs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun
from tests.workflows.conftest import finished, make_workflow, start, steps_of, waiting_on
from workflows.engine.scheduling import Status
from workflows.models import StepRun
from workflows.services.runs import run_cancel, run_rerun
from workflows.services.signals import signal_post
from workflows.services.workflows import workflow_save

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = """
version: 1
name: research
inputs:
  topic: {type: string}
steps:
  - id: research
    kind: agent
    agent: researcher
    input: "Research ${inputs.topic}"
  - id: write
    kind: agent
    agent: writer
    needs: [research]
    input: "Write about: ${steps.research.output}"
  - id: shape
    kind: transform
    needs: [write]
    output: {length: "${size(steps.write.output)}", text: "${steps.write.output}"}
outputs:
  report: "${steps.shape.output.text}"
  length: "${steps.shape.output.length}"
"""


def test_a_run_passes_each_steps_output_to_the_next_and_ends_with_the_workflows_outputs(
    engine, alice, alice_agents, fake_llm
):
    run = finished(start(make_workflow(alice, RESEARCH), alice, topic="otters"))

    assert run.status == "succeeded", run.error
    report = "echo: Write about: echo: Research otters"
    assert run.outputs == {"report": report, "length": len(report)}
    steps = steps_of(run)
    assert [steps[key].status for key in ("research", "write", "shape")] == ["succeeded"] * 3
    # each agent step records its agent run, tokens and cost; the run adds them up
    agent_runs = AgentRun.objects.filter(pk__in=[steps["research"].agent_run_id, steps["write"].agent_run_id])
    assert agent_runs.count() == 2
    assert run.tokens == steps["research"].tokens + steps["write"].tokens > 0
    assert run.cost == steps["research"].cost + steps["write"].cost > 0
    assert steps["write"].input["messages"] == [{"role": "user", "content": "Write about: echo: Research otters"}]
    assert steps["research"].started_at <= steps["research"].finished_at <= steps["write"].started_at


SWITCH = """
version: 1
name: route
inputs:
  score: {type: integer}
steps:
  - id: decide
    kind: switch
    cases:
      - when: "inputs.score >= 5"
        steps: [good]
    default: [bad]
  - id: good
    kind: transform
    needs: [decide]
    output: "good"
  - id: bad
    kind: transform
    needs: [decide]
    output: "bad"
  - id: after
    kind: transform
    needs: [good, bad]
    output: "${has(steps.good) && steps.good.status == 'succeeded' ? steps.good.output : steps.bad.output}"
outputs:
  verdict: "${steps.after.output}"
"""


@pytest.mark.parametrize(("score", "taken", "skipped"), [(7, "good", "bad"), (2, "bad", "good")])
def test_a_switch_runs_the_branch_its_condition_picks_and_skips_the_other_and_the_join_runs(
    engine, alice, score, taken, skipped
):
    run = finished(start(make_workflow(alice, SWITCH), alice, score=score))

    assert run.status == "succeeded", run.error
    steps = steps_of(run)
    assert steps[taken].status == "succeeded"
    assert steps[skipped].status == "skipped"
    assert steps["decide"].output["steps"] == [taken]
    assert run.outputs == {"verdict": taken}


def parallel(join) -> str:
    return f"""
version: 1
name: panel
steps:
  - id: panel
    kind: parallel
    join: {join}
    branches:
      - id: one
        kind: transform
        output: "first"
      - id: broken
        kind: transform
        output: "${{inputs.missing}}"
      - id: three
        kind: transform
        output: "third"
outputs:
  answers: "${{steps.panel.output}}"
"""


def test_a_parallel_step_joined_on_all_fails_when_a_branch_fails(engine, alice):
    run = finished(start(make_workflow(alice, parallel("all")), alice))

    assert run.status == "failed"
    assert "join cannot be met" in steps_of(run)["panel"].error
    assert steps_of(run)["panel.broken"].status == "failed"


def test_a_parallel_step_joined_on_two_of_three_succeeds_with_the_branches_that_did(engine, alice):
    run = finished(start(make_workflow(alice, parallel("{at_least: 2}")), alice))

    assert run.status == "succeeded", run.error
    assert run.outputs == {"answers": {"one": "first", "three": "third"}}


def test_a_parallel_step_joined_on_any_takes_the_first_branch_and_cancels_the_rest(
    engine, alice, alice_agents, fake_llm
):
    fake_llm.latency = 3
    source = """
version: 1
name: race
steps:
  - id: race
    kind: parallel
    join: any
    branches:
      - id: slow
        kind: agent
        agent: researcher
        input: "take your time"
      - id: fast
        kind: transform
        output: "done"
"""
    run = finished(start(make_workflow(alice, source), alice), timeout=20)

    assert run.status == "succeeded", run.error
    steps = steps_of(run)
    assert steps["race"].output == {"fast": "done"}
    assert steps["race.slow"].status == "cancelled"


def mapping(on_error: str) -> str:
    return f"""
version: 1
name: divide
inputs:
  numbers: {{type: array}}
steps:
  - id: each
    kind: map
    items: "inputs.numbers"
    max_concurrency: 2
    on_error: {on_error}
    step:
      id: invert
      kind: transform
      output: "${{100 / item}}"
outputs:
  results: "${{steps.each.output}}"
"""


@pytest.mark.parametrize(
    ("on_error", "status", "results"),
    [("stop", "failed", None), ("continue", "succeeded", [50, None, 25]), ("drop", "succeeded", [50, 25])],
)
def test_a_map_applies_its_error_policy_to_a_failed_item(engine, alice, on_error, status, results):
    run = finished(start(make_workflow(alice, mapping(on_error)), alice, numbers=[2, 0, 4]))

    assert run.status == status, run.error
    assert (run.outputs or {}).get("results") == results
    assert steps_of(run)["each[1]"].status == "failed"


def test_a_map_holds_no_more_items_in_flight_than_its_max_concurrency(engine, alice, alice_agents, fake_llm):
    fake_llm.latency = 0.3
    source = """
version: 1
name: summaries
inputs:
  docs: {type: array}
steps:
  - id: each
    kind: map
    items: "inputs.docs"
    max_concurrency: 3
    step:
      id: summarise
      kind: agent
      agent: summarizer
      input: "Summarise ${item}"
outputs:
  summaries: "${steps.each.output}"
"""
    docs = [f"document {n}" for n in range(9)]
    run = finished(start(make_workflow(alice, source), alice, docs=docs), timeout=60)

    assert run.status == "succeeded", run.error
    assert run.outputs["summaries"] == [f"echo: Summarise {doc}" for doc in docs]
    assert fake_llm.most_in_flight == 3


def test_an_agent_step_is_retried_with_backoff_until_the_provider_answers(engine, alice, alice_agents, fake_llm):
    fake_llm.failures = [503, 503]
    source = """
version: 1
name: flaky
steps:
  - id: ask
    kind: agent
    agent: researcher
    input: "hello"
    retries: {max: 2, backoff: 0.2}
"""
    run = finished(start(make_workflow(alice, source), alice))

    assert run.status == "succeeded", run.error
    step = steps_of(run)["ask"]
    assert step.attempt == 3
    assert step.output == "echo: hello"
    assert run.events.filter(type="step.retrying").count() == 2


def test_an_agent_step_over_its_timeout_fails_the_run(engine, alice, alice_agents, fake_llm):
    fake_llm.latency = 3
    source = """
version: 1
name: slow
steps:
  - id: ask
    kind: agent
    agent: researcher
    input: "hello"
    timeout: 0.5s
"""
    run = finished(start(make_workflow(alice, source), alice))

    assert run.status == "failed"
    assert "Timed out" in steps_of(run)["ask"].error


WAIT_FOR_EVENT = """
version: 1
name: waits
steps:
  - id: hold
    kind: wait
    event: go
  - id: after
    kind: transform
    needs: [hold]
    output: "${steps.hold.output.data.word}"
outputs:
  word: "${steps.after.output}"
"""


def test_a_cancelled_run_cancels_its_waiting_steps_and_runs_nothing_more(engine, alice):
    run = start(make_workflow(alice, WAIT_FOR_EVENT), alice)
    waiting_on(run, "hold")

    run_cancel(run=run)

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert {step.key: step.status for step in run.steps.all()} == {"hold": "cancelled", "after": "cancelled"}


def test_a_run_waits_for_an_event_posted_to_it_and_goes_on_with_its_data(engine, alice):
    run = start(make_workflow(alice, WAIT_FOR_EVENT), alice)
    waiting_on(run, "hold")

    signal_post(run=run, name="go", data={"word": "onwards"})

    assert finished(run).outputs == {"word": "onwards"}


def test_a_run_keeps_the_version_it_started_with(engine, alice):
    workflow = make_workflow(alice, WAIT_FOR_EVENT)
    run = start(workflow, alice)
    waiting_on(run, "hold")

    workflow_save(workflow=workflow, user=alice, source=WAIT_FOR_EVENT.replace("data.word", "data.other"))
    signal_post(run=run, name="go", data={"word": "old", "other": "new"})

    assert finished(run).outputs == {"word": "old"}
    assert run.version.number == 1
    later = start(workflow, alice)
    assert later.version.number == 2
    run_cancel(run=later)


def test_a_wait_for_a_duration_resumes_when_it_has_passed(engine, alice):
    source = """
version: 1
name: pause
steps:
  - id: pause
    kind: wait
    for: 500ms
"""
    run = finished(start(make_workflow(alice, source), alice), timeout=10)

    assert run.status == "succeeded"
    step = steps_of(run)["pause"]
    assert step.output["waited_until"]
    assert (step.finished_at - step.started_at).total_seconds() >= 0.5


def test_the_runs_budget_stops_it_once_spent(engine, alice, alice_agents):
    source = RESEARCH.replace("outputs:", "budget: {tokens: 5}\noutputs:")
    run = finished(start(make_workflow(alice, source), alice, topic="otters"))

    assert run.status == "failed"
    assert "budget is spent" in run.error
    steps = steps_of(run)
    assert steps["research"].status == "succeeded"
    assert steps["write"].status == "cancelled"
    assert AgentRun.objects.count() == 1


def test_a_rerun_from_a_step_reuses_the_steps_before_it_and_shows_what_that_saved(
    engine, alice, alice_agents, fake_llm
):
    first = finished(start(make_workflow(alice, RESEARCH), alice, topic="otters"))
    agent_runs = AgentRun.objects.count()

    again = finished(run_rerun(run=first, user=alice, from_step="write"))

    assert again.status == "succeeded", again.error
    assert AgentRun.objects.count() == agent_runs + 1  # only `write` invoked its agent again
    steps = steps_of(again)
    assert steps["research"].agent_run_id == steps_of(first)["research"].agent_run_id
    assert steps["research"].reused and not steps["write"].reused
    assert again.saved_tokens == steps_of(first)["research"].tokens > 0
    assert again.saved_cost == steps_of(first)["research"].cost > 0
    assert again.outputs == first.outputs


def test_a_workflow_step_runs_another_workflow_and_takes_its_outputs(engine, alice):
    make_workflow(
        alice,
        """
version: 1
name: child
inputs:
  word: {type: string}
steps:
  - id: shout
    kind: transform
    output: "${inputs.word + '!'}"
outputs:
  shouted: "${steps.shout.output}"
""",
        name="child",
    )
    parent = make_workflow(
        alice,
        """
version: 1
name: parent
steps:
  - id: call
    kind: workflow
    workflow: child
    inputs: {word: "hey"}
outputs:
  said: "${steps.call.output.shouted}"
""",
        name="parent",
    )
    run = finished(start(parent, alice))

    assert run.status == "succeeded", run.error
    assert run.outputs == {"said": "hey!"}
    child = steps_of(run)["call"].child_runs.get()
    assert child.status == "succeeded" and child.trigger == "workflow"


def test_memory_steps_write_memories_and_find_them_again(engine, alice):
    source = """
version: 1
name: remember
inputs:
  facts: {type: array}
steps:
  - id: store
    kind: map
    items: "inputs.facts"
    step:
      id: write_one
      kind: memory
      action: write
      namespace: default
      content: "${item}"
      metadata: {source: "workflow"}
  - id: find
    kind: memory
    action: search
    namespace: default
    needs: [store]
    query: "otters hold hands"
    k: 1
    filters: {source: "workflow"}
outputs:
  best: "${steps.find.output[0].content}"
"""
    facts = ["Otters hold hands while they sleep.", "The invoice is due on Friday."]
    run = finished(start(make_workflow(alice, source), alice, facts=facts), timeout=60)

    assert run.status == "succeeded", run.error
    assert run.outputs == {"best": "Otters hold hands while they sleep."}
    assert alice.memories.filter(metadata__source="workflow").count() == 2


def test_a_step_whose_condition_is_false_is_skipped_and_so_are_the_steps_that_need_only_it(engine, alice):
    source = """
version: 1
name: maybe
inputs:
  go: {type: boolean}
steps:
  - id: first
    kind: transform
    if: "inputs.go"
    output: 1
  - id: second
    kind: transform
    needs: [first]
    output: 2
"""
    run = finished(start(make_workflow(alice, source), alice, go=False))

    assert run.status == "succeeded"
    assert {step.key: step.status for step in run.steps.all()} == {"first": "skipped", "second": "skipped"}


def test_with_on_failure_continue_the_independent_branches_finish_and_the_run_fails_at_the_end(engine, alice):
    source = """
version: 1
name: keep_going
on_failure: continue
steps:
  - id: broken
    kind: transform
    output: "${inputs.missing}"
  - id: after_broken
    kind: transform
    needs: [broken]
    output: 1
  - id: independent
    kind: transform
    output: 2
"""
    run = finished(start(make_workflow(alice, source), alice))

    assert run.status == "failed"
    steps = {step.key: step.status for step in run.steps.all()}
    assert steps == {"broken": "failed", "after_broken": "skipped", "independent": "succeeded"}


def test_no_step_is_left_queued_or_running_once_a_run_has_ended(engine, alice, alice_agents):
    run = finished(start(make_workflow(alice, RESEARCH), alice, topic="otters"))

    assert not run.steps.filter(status__in=[Status.PENDING, *StepRun.ACTIVE]).exists()


def test_a_wait_until_a_time_given_by_an_input_resumes_at_that_time(engine, alice):
    source = """
version: 1
name: later
inputs:
  at: {type: string}
steps:
  - id: pause
    kind: wait
    until: "${inputs.at}"
"""
    at = timezone.now() + timedelta(seconds=1)

    run = finished(start(make_workflow(alice, source), alice, at=at.isoformat()), timeout=10)

    assert run.status == "succeeded"
    assert steps_of(run)["pause"].finished_at >= at


def test_the_owners_webhooks_get_the_run_its_steps_and_its_approval_signed(engine, alice, bob, receiver):
    from tests.tasks.helpers import register

    register(
        alice, receiver.url, events=["workflow.run.succeeded", "workflow.step.succeeded", "workflow.approval.requested"]
    )
    source = """
version: 1
name: notified
steps:
  - id: ask
    kind: approval
    approvers: {users: [bob]}
  - id: after
    kind: transform
    needs: [ask]
    output: done
"""
    run = start(make_workflow(alice, source), alice)
    waiting_on(run, "ask")
    receiver.wait_for(1)
    [requested] = [event for event in receiver.events() if event["type"] == "workflow.approval.requested"]
    assert requested["data"]["run"] == str(run.pk)
    assert "/workflows/approvals/link/" in requested["data"]["links"]["bob"]

    from workflows.models import Approval
    from workflows.services.approvals import approval_decide

    approval_decide(approval=Approval.objects.get(run=run), user=bob, decision="approve", via="api")
    finished(run)
    receiver.wait_for(4)  # the request, both steps, the run
    types = sorted(event["type"] for event in receiver.events())
    assert types == [
        "workflow.approval.requested",
        "workflow.run.succeeded",
        "workflow.step.succeeded",
        "workflow.step.succeeded",
    ]
    assert all("webhook-signature" in {name.lower() for name in request["headers"]} for request in receiver.requests)
