"""People in the loop: who may decide, how many must agree, expiry with its own branch, signed single-use
links, the audit trail, and the run going on at once."""

import re
import time
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.http import Http404

from tests.conftest import api_client, make_key
from tests.workflows.conftest import finished, make_workflow, start, steps_of, waiting_on
from workflows.models import Approval, ApprovalDecision
from workflows.services.approvals import approval_from_link

pytestmark = pytest.mark.django_db(transaction=True)


def review(approvers: str, required: int = 1, expires_in: str = "1h") -> str:
    return f"""
version: 1
name: review
inputs:
  draft: {{type: string}}
steps:
  - id: review
    kind: approval
    approvers: {approvers}
    required: {required}
    expires_in: {expires_in}
    context: "Publish this? ${{inputs.draft}}"
    branches:
      approved: [publish]
      rejected: [discard]
      expired: [remind]
  - id: publish
    kind: transform
    needs: [review]
    output: "published"
  - id: discard
    kind: transform
    needs: [review]
    output: "discarded"
  - id: remind
    kind: transform
    needs: [review]
    output: "nobody answered"
  - id: done
    kind: transform
    needs: [publish, discard, remind]
    output: "${{steps.review.output.decision}}"
outputs:
  decision: "${{steps.done.output}}"
"""


def approval_of(run) -> Approval:
    waiting_on(run, "review")
    return Approval.objects.get(run=run)


def link_sent_to(address: str, approval) -> str:
    """The approval link a worker mailed to `address` for this approval (test settings: mail goes to files)."""
    folder = Path(settings.EMAIL_FILE_PATH)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for path in folder.glob("*.log") if folder.exists() else []:
            text = path.read_text()
            for link in re.findall(r"https?://\S+/approvals/link/\S+", text) if f"To: {address}" in text else []:
                try:
                    if approval_from_link(link.rstrip("/").rsplit("/", 1)[1])[0] == approval:
                        return link
                except Http404:  # a link of an earlier test's approval
                    continue
        time.sleep(0.05)
    raise AssertionError(f"no mail to {address}")


def decide(user, approval, decision, comment=""):
    key = make_key(user, scopes=["workflows:read", "workflows:run"])
    return api_client(key=key).post(
        f"/api/v1/approvals/{approval.pk}/decide", {"decision": decision, "comment": comment}, format="json"
    )


def test_an_approval_needs_its_quorum_and_the_run_goes_on_within_a_second_of_the_last_decision(
    engine, alice, bob, charlie
):
    run = start(make_workflow(alice, review("{users: [bob, charlie]}", required=2)), alice, draft="Hello")
    approval = approval_of(run)
    assert approval.context == "Publish this? Hello"

    assert decide(bob, approval, "approve").status_code == 200
    time.sleep(0.3)
    assert steps_of(run)["review"].status == "waiting"  # one of two

    decided_at = time.monotonic()
    assert decide(charlie, approval, "approve", "ship it").status_code == 200
    run = finished(run, timeout=5)
    assert time.monotonic() - decided_at < 1.5
    assert run.status == "succeeded", run.error
    assert run.outputs == {"decision": "approved"}
    steps = steps_of(run)
    assert (steps["publish"].status, steps["discard"].status, steps["remind"].status) == (
        "succeeded",
        "skipped",
        "skipped",
    )
    assert [d["user"] for d in steps["review"].output["decisions"]] == ["bob", "charlie"]
    # every decision is in the audit trail
    assert LogEntry.objects.get_for_model(ApprovalDecision).count() == 2


def test_one_rejection_rejects_and_takes_the_rejected_branch(engine, alice, bob, charlie):
    run = start(make_workflow(alice, review("{users: [bob, charlie]}", required=2)), alice, draft="Hello")

    assert decide(bob, approval_of(run), "reject", "no").status_code == 200

    run = finished(run)
    assert run.outputs == {"decision": "rejected"}
    assert steps_of(run)["discard"].status == "succeeded"


def test_an_approval_nobody_decides_expires_into_its_own_branch(engine, alice, bob):
    run = start(make_workflow(alice, review("{users: [bob]}", expires_in="1s")), alice, draft="Hello")

    run = finished(run, timeout=10)

    assert run.outputs == {"decision": "expired"}
    assert steps_of(run)["remind"].status == "succeeded"
    assert Approval.objects.get(run=run).status == "expired"


def test_someone_who_is_not_an_approver_cannot_see_or_decide_the_approval(engine, alice, bob, charlie):
    run = start(make_workflow(alice, review("{users: [bob]}")), alice, draft="Hello")
    approval = approval_of(run)

    assert decide(charlie, approval, "approve").status_code == 404
    key = make_key(charlie, scopes=["workflows:read"])
    assert api_client(key=key).get("/api/v1/approvals").json()["results"] == []
    assert steps_of(run)["review"].status == "waiting"


def test_a_role_may_decide_and_a_second_decision_by_the_same_person_is_a_conflict(engine, alice, bob, operator):
    run = start(make_workflow(alice, review("{role: operator}", required=2)), alice, draft="Hello")
    approval = approval_of(run)

    assert decide(bob, approval, "approve").status_code == 404  # a member is below the role
    assert decide(operator, approval, "approve").status_code == 200
    second = decide(operator, approval, "approve")
    assert second.status_code == 409
    assert "already" in second.json()["errors"][0]["detail"]


def test_the_signed_link_sent_by_email_decides_once_and_says_so_when_used_again(engine, alice, bob, client):
    run = start(make_workflow(alice, review("{users: [bob]}")), alice, draft="Hello")
    approval = approval_of(run)
    link = link_sent_to("bob@example.com", approval)
    path = link.split("127.0.0.1:8000", 1)[1]

    page = client.get(path)
    assert page.status_code == 200 and b"Publish this? Hello" in page.content
    client.post(path, {"decision": "approve"})
    assert finished(run).outputs == {"decision": "approved"}
    assert ApprovalDecision.objects.get().via == "link"

    again = client.post(path, {"decision": "reject"})
    assert again.status_code == 410
    assert b"used already" in again.content
    assert client.get(path.replace("/link/", "/link/x")).status_code == 404  # an altered link names nothing
