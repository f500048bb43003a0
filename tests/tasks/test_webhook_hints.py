"""In development a refused local webhook URL says how to allow it (never in production), and a test event
sends the `webhook.ping` asked for and nothing else."""

import pytest
from django.urls import reverse

from tasks.models import TaskRecord, WebhookDelivery
from tasks.services.records import task_finished
from tasks.services.webhooks import PING_TASK
from tests.conftest import api_client
from tests.tasks.conftest import wait_until
from tests.tasks.helpers import register

pytestmark = pytest.mark.django_db(transaction=True)

HINT = "set WEBHOOK_ALLOWED_HOSTS=127.0.0.1:9000 to allow this host"


def test_in_development_the_refusal_of_a_loopback_url_says_how_to_allow_it(client, alice, settings):
    settings.PRODUCTION = False
    client.force_login(alice)

    page = client.post(reverse("webhooks"), {"url": "http://127.0.0.1:9000/hook", "events": ["task.failed"]})
    api = api_client(alice).post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9000/hook", "events": ["task.failed"]}, format="json"
    )

    assert page.status_code == 200 and HINT in page.content.decode()
    assert api.status_code == 400 and HINT in api.json()["errors"][0]["detail"]


def test_in_production_the_refusal_gives_no_such_hint(alice, settings):
    settings.PRODUCTION = True

    api = api_client(alice).post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9000/hook", "events": ["task.failed"]}, format="json"
    )

    assert api.status_code == 400 and "WEBHOOK_ALLOWED_HOSTS" not in api.json()["errors"][0]["detail"]


def test_a_refusal_for_another_reason_gives_no_hint(alice, settings):
    settings.PRODUCTION = False

    api = api_client(alice).post(
        "/api/v1/webhooks", {"url": "ftp://example.com/hook", "events": ["task.failed"]}, format="json"
    )

    assert api.status_code == 400 and "WEBHOOK_ALLOWED_HOSTS" not in api.json()["errors"][0]["detail"]


def test_the_test_events_own_task_emits_no_task_event_when_it_ends(alice, receiver):
    register(alice, receiver.url, events=("task.succeeded", "webhook.ping"))
    ping = TaskRecord.objects.create(kind=PING_TASK, owner=alice, status=TaskRecord.Status.RUNNING)
    other = TaskRecord.objects.create(kind="memory.export", owner=alice, status=TaskRecord.Status.RUNNING)

    task_finished(task_id=ping.pk, status=TaskRecord.Status.SUCCEEDED)
    task_finished(task_id=other.pk, status=TaskRecord.Status.SUCCEEDED)

    assert [d.payload["data"]["id"] for d in WebhookDelivery.objects.filter(event_type="task.succeeded")] == [
        str(other.pk)
    ]


def test_send_a_test_event_delivers_only_the_ping(celery_worker, client, alice, receiver):
    endpoint = register(alice, receiver.url, events=("task.succeeded", "webhook.ping"))
    client.force_login(alice)

    client.post(reverse("webhook_action", args=[endpoint["id"], "ping"]))

    wait_until(lambda: TaskRecord.objects.filter(kind=PING_TASK, owner=alice, status="succeeded").exists())
    receiver.wait_for(1)
    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["webhook.ping"]
    assert [event["type"] for event in receiver.events()] == ["webhook.ping"]
