"""Workflows run on the session's real Celery workers (default queue, and the agents' queue), against the
fake provider through the real SDKs."""

import time

import pytest

from agents.services.agents import agent_create
from tests.agents.conftest import agent_type, clean_redis, fake_llm, model  # noqa: F401  (shared fixtures)
from tests.tasks.conftest import receiver  # noqa: F401  (the webhook receiver)
from workflows.models import WorkflowRun
from workflows.services.runs import run_start
from workflows.services.workflows import workflow_create

AGENT_NAMES = ("researcher", "writer", "critic", "judge", "summarizer")


@pytest.fixture
def engine(celery_worker, agents_worker):
    """Both workers of the session: steps on the default queue and agent steps on the agents' queue."""
    return celery_worker, agents_worker


@pytest.fixture
def alice_agents(alice, agent_type):  # noqa: F811
    return {name: agent_create(owner=alice, agent_type=agent_type, name=name) for name in AGENT_NAMES}


def make_workflow(user, source: str, name: str = "flow"):
    return workflow_create(owner=user, name=name, source=source)


def start(workflow, user, **inputs) -> WorkflowRun:
    run, _ = run_start(workflow=workflow, user=user, inputs=inputs)
    return run


def finished(run: WorkflowRun, timeout: float = 30) -> WorkflowRun:
    """The run once it has ended (or an AssertionError with its steps, after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status != WorkflowRun.Status.RUNNING:
            return run
        time.sleep(0.05)
    steps = list(run.steps.values_list("key", "status", "error"))
    raise AssertionError(f"run {run.pk} still running after {timeout} s: {steps}")


def steps_of(run: WorkflowRun) -> dict:
    return {step.key: step for step in run.steps.all()}


def waiting_on(run: WorkflowRun, key: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = run.steps.filter(key=key).first()
        if step is not None and step.status == "waiting":
            return step
        time.sleep(0.05)
    raise AssertionError(f"{key} never waited: {list(run.steps.values_list('key', 'status', 'error'))}")
