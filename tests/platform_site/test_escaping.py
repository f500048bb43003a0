"""A user's text never comes back as markup: every page of the browser UI and the operators' admin pages, with
a script and an <img onerror> in every field a user (or a model, or a workflow) writes, show it as text.

The pages and their data are the browser tests' (tests/browser/pages.py): the same site, its free-text fields
then overwritten with the payload, rendered by the test client (no browser needed to read the markup).
"""

import pytest
from django.test import Client

from tests.browser import pages

PAYLOAD = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
SHORT = "<script>alert(1)</script>"  # for fields of 50 characters
RAW = ("<script>alert(", "<img src=x")  # what must never be in a page
# How it shows where it is shown: as text in the markup, or in a JSON data block (json_script) for a script.
ESCAPED = ("&lt;script&gt;alert(", "\\u003Cscript\\u003Ealert(")


def poison(ids: dict) -> None:
    """Put the payload in every free-text field of the site's data (written as rows: what a bug in a
    validation, an import or a model's answer could let through)."""
    from accounts.models import ApiKey, SecurityEvent, User
    from agents.models import Agent, AgentRun
    from memory.models import Memory, MemoryNamespace
    from quotas.models import UsageDaily
    from tasks.models import TaskRecord, WebhookAttempt, WebhookEndpoint
    from workflows.models import Approval, ApprovalDecision, StepRun, Workflow, WorkflowRun, WorkflowVersion

    users = [ids[role]["user"] for role in ("member", "operator")]
    User.objects.filter(pk__in=users).update(first_name=PAYLOAD, last_name=PAYLOAD)
    ApiKey.objects.filter(user_id__in=users).update(name=PAYLOAD)
    SecurityEvent.objects.filter(user_id__in=users).update(user_agent=PAYLOAD, detail={"note": PAYLOAD})
    Agent.objects.filter(owner_id__in=users).update(name=PAYLOAD, system_prompt=PAYLOAD)
    AgentRun.objects.filter(user_id__in=users).update(
        output=PAYLOAD,
        error=PAYLOAD,
        input=[{"role": "user", "content": PAYLOAD}],
        tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": PAYLOAD}}],
        metadata={"note": PAYLOAD},
    )
    Memory.objects.filter(owner_id__in=users).update(content=PAYLOAD, metadata={"topic": PAYLOAD})
    MemoryNamespace.objects.filter(owner_id__in=users).update(description=PAYLOAD)
    UsageDaily.objects.filter(user_id__in=users).update(agent_type=SHORT, model=SHORT)
    TaskRecord.objects.filter(owner_id__in=users).update(
        error=PAYLOAD, progress_message=PAYLOAD, result={"note": PAYLOAD}
    )
    WebhookEndpoint.objects.filter(owner_id__in=users).update(
        url=f"https://example.com/{PAYLOAD}", description=PAYLOAD, disabled_reason=PAYLOAD
    )
    WebhookAttempt.objects.filter(delivery__endpoint__owner_id__in=users).update(error=PAYLOAD)
    Workflow.objects.filter(owner_id__in=users).update(description=PAYLOAD)
    WorkflowVersion.objects.filter(workflow__owner_id__in=users).update(note=PAYLOAD)
    WorkflowRun.objects.filter(owner_id__in=users).update(error=PAYLOAD, inputs={"topic": PAYLOAD})
    StepRun.objects.filter(run__owner_id__in=users).update(output={"text": PAYLOAD}, error=PAYLOAD)
    Approval.objects.filter(run__owner_id__in=users).update(context=PAYLOAD)
    ApprovalDecision.objects.filter(approval__run__owner_id__in=users).update(comment=PAYLOAD)


def leaks(html: str) -> list[str]:
    return [raw for raw in RAW if raw in html]


@pytest.mark.django_db
def test_no_page_renders_a_users_text_as_markup():
    from accounts.models import User
    from agents.models import Agent
    from tests.factories import RunFactory

    ids = pages.seed_site()
    for role in ("member", "operator"):  # a run to show (the browser tests chat for it)
        RunFactory(agent=Agent.objects.get(pk=ids[role]["agent"]), user=User.objects.get(pk=ids[role]["user"]))
    poison(ids)
    clients = {"visitor": Client()}
    for role in ("member", "operator"):
        clients[role] = Client()
        clients[role].force_login(User.objects.get(pk=ids[role]["user"]))
    leaked, shown = {}, set()
    for target in pages.PAGES:  # (a page reached by an action on another is checked as the page it starts from)
        response = clients[target.role].get(target.path(ids[target.role]), follow=True)
        assert response.status_code < 500, (str(target), response.status_code)
        html = response.content.decode()
        if leaks(html):
            leaked[str(target)] = leaks(html)
        if any(escaped in html for escaped in ESCAPED):
            shown.add(str(target))

    assert not leaked, leaked
    # The payload did reach the pages that show users' text (as text), so the check above meant something.
    for name in [
        "agents", "agent_chat", "agent_run", "agent_runs", "memories", "memory_edit", "keys", "profile", "tasks",
        "webhooks", "webhook_detail", "workflow_detail", "workflow_run", "approvals",
    ]:  # fmt: skip
        assert f"member-{name}" in shown, name
    assert "visitor-approval_link" in shown
    assert {"operator-admin:agents_agent_change", "operator-admin:memory_memory_change"} <= shown


@pytest.mark.django_db
def test_a_definition_with_markup_in_it_is_shown_as_text_in_the_editors_problems_and_preview(client):
    from tests.conftest import make_user

    client.force_login(make_user("mia"))
    source = f"version: 1\nname: bad\ndescription: '{PAYLOAD}'\nsteps:\n  - id: a\n    kind: transform\n    needs: ['{PAYLOAD}']\n"

    problems = client.post("/workflows/", {"name": "bad", "source": source, "format": "yaml", "validate": "1"})
    valid = source.replace(f"    needs: ['{PAYLOAD}']\n", f"    output: '{PAYLOAD}'\n")
    preview = client.post("/workflows/", {"name": "bad", "source": valid, "format": "yaml", "validate": "1"})

    for response in (problems, preview):
        assert response.status_code == 200
        assert not leaks(response.content.decode())
        assert any(escaped in response.content.decode() for escaped in ESCAPED)
