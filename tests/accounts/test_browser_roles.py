"""The browser pages refuse a viewer's writes as the API does (a viewer reads only)."""

import uuid

import pytest

from agents.models import Agent, AgentType
from tasks.models import TaskRecord, WebhookEndpoint
from tests.conftest import make_user


@pytest.mark.django_db
def test_a_viewers_writes_through_the_browser_are_refused_and_change_nothing(client):
    viewer = make_user("vera", role="viewer")
    endpoint = WebhookEndpoint.objects.create(owner=viewer, url="https://example.com/hook", events=["task.failed"])
    record = TaskRecord.objects.create(id=uuid.uuid4(), kind="tests.sleep", owner=viewer)
    client.force_login(viewer)

    for url in ("/agents/", "/tasks/webhooks/", "/memories/"):
        assert client.get(url).status_code == 200, url
    agent_type = AgentType.objects.get(slug="assistant")
    refused = [
        client.post("/agents/", {"name": "mine", "agent_type": agent_type.pk}),
        client.post("/tasks/webhooks/", {"url": "https://example.com/x", "events": ["task.failed"]}),
        client.post(f"/tasks/webhooks/{endpoint.pk}/disable/"),
        client.post(f"/tasks/webhooks/{endpoint.pk}/delete/"),
        client.post(f"/tasks/{record.pk}/cancel/"),
    ]

    assert [response.status_code for response in refused] == [403] * 5
    assert not Agent.objects.filter(owner=viewer).exists()
    assert list(WebhookEndpoint.objects.filter(owner=viewer).values_list("is_active", flat=True)) == [True]
    record.refresh_from_db()
    assert record.status == TaskRecord.Status.QUEUED
