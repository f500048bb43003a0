"""The example workflows, as the demo data loads them for the demo user, run end to end on the built-in
echo provider (no network)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.workflows.conftest import finished, start, steps_of, waiting_on
from workflows.models import Approval
from workflows.services.approvals import approval_decide

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(engine):
    call_command("demo_data")
    users = get_user_model().objects
    return users.get(username="demo"), users.get(username="operator")


def test_the_demo_data_loads_every_example_for_the_demo_user(demo):
    user, _ = demo

    assert sorted(user.workflows.values_list("name", flat=True)) == [
        "documents-to-memory",
        "panel-and-judge",
        "research-review",
    ]
    call_command("demo_data")  # a second time changes nothing
    assert user.workflows.count() == 3


def test_the_panel_example_fans_out_and_the_judge_weighs_the_answers(demo):
    user, _ = demo

    run = finished(start(user.workflows.get(name="panel-and-judge"), user, question="Why is the sky blue?"))

    assert run.status == "succeeded", run.error
    assert len(steps_of(run)["panel"].output) >= 2
    assert steps_of(run)["verdict"].status == "succeeded"


def test_the_documents_example_summarises_each_document_into_memory(demo):
    user, _ = demo
    documents = [{"title": f"Doc {n}", "text": f"Otters number {n} hold hands."} for n in range(3)]

    run = finished(start(user.workflows.get(name="documents-to-memory"), user, documents=documents), timeout=60)

    assert run.status == "succeeded", run.error
    assert user.memories.count() >= 3


def test_the_research_example_waits_for_an_operator_and_publishes_once_approved(demo):
    user, operator = demo
    run = start(user.workflows.get(name="research-review"), user, topic="otters")
    waiting_on(run, "approve", timeout=30)

    approval_decide(approval=Approval.objects.get(run=run), user=operator, decision="approve", via="api")

    run = finished(run)
    assert run.status == "succeeded", run.error
    assert steps_of(run)["publish"].status == "succeeded"
