"""Webhook delivery: pings and task events sent signed, idempotent pings, the dispatcher, admin replays."""

import base64
import hashlib
import hmac
import time

import pytest
from django.db import transaction
from django.utils import timezone

from tasks.models import TaskRecord, WebhookDelivery, WebhookEndpoint
from tasks.services.records import task_start
from tasks.services.webhooks import deliveries_dispatch_due
from tests.conftest import api_client, make_user
from tests.tasks.conftest import wait_until
from tests.tasks.helpers import register

pytestmark = pytest.mark.django_db(transaction=True)


def verify_standard_webhook(secret: str, headers: dict, body: str, tolerance: int = 300) -> bool:
    """A receiver's check, written from the Standard Webhooks specification (not from our code or library)."""
    headers = {name.lower(): value for name, value in headers.items()}
    msg_id, timestamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest())
    return any(
        version == "v1" and hmac.compare_digest(signature.encode(), expected)
        for version, _, signature in (part.partition(",") for part in signatures.split(" "))
    )


def test_a_ping_answers_202_with_a_task_to_poll_and_delivers_a_signed_event(celery_worker, alice, receiver):
    endpoint = register(alice, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    assert "secret" not in api_client(alice).get(f"/api/v1/webhooks/{endpoint['id']}").json()

    response = api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")

    assert response.status_code == 202
    assert response["Location"].endswith(f"/api/v1/tasks/{response.json()['id']}")
    wait_until(lambda: TaskRecord.objects.get(pk=response.json()["id"]).is_finished)
    task = api_client(alice).get(response["Location"]).json()
    assert task["status"] == "succeeded" and task["result"]["delivered"] is True
    [request] = [r for r in receiver.wait_for(1) if '"webhook.ping"' in r["body"]]
    assert verify_standard_webhook(endpoint["secret"], request["headers"], request["body"])
    assert not verify_standard_webhook(
        "whsec_" + base64.b64encode(b"x" * 24).decode(), request["headers"], request["body"]
    )


def test_the_same_idempotency_key_gives_the_same_task(alice, receiver):
    endpoint = register(alice, receiver.url)
    client = api_client(alice)

    first = client.post(f"/api/v1/webhooks/{endpoint['id']}/ping", HTTP_IDEMPOTENCY_KEY="ping-1")
    again = client.post(f"/api/v1/webhooks/{endpoint['id']}/ping", HTTP_IDEMPOTENCY_KEY="ping-1")
    other = client.post(f"/api/v1/webhooks/{endpoint['id']}/ping", HTTP_IDEMPOTENCY_KEY="ping-2")

    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert TaskRecord.objects.filter(kind="webhooks.ping").count() == 2


def test_a_finished_task_is_announced_to_its_owners_endpoints(celery_worker, alice, receiver):
    endpoint = register(alice, receiver.url, events=["task.failed"])
    with transaction.atomic():
        record, _ = task_start(kind="tests.fail", owner=alice)

    [request] = receiver.wait_for(1)

    event = receiver.events()[0]
    assert event["type"] == "task.failed"
    assert event["data"]["id"] == str(record.pk) and event["data"]["error"] == "ValueError: bad input"
    assert verify_standard_webhook(endpoint["secret"], request["headers"], request["body"])


def test_the_worker_announces_to_an_endpoint_added_after_its_last_task_and_stops_when_it_is_disabled(
    celery_worker, alice, receiver
):
    # Given tasks of alice's that ended while she had no endpoint (the worker keeps her endpoints in mind)
    for _ in range(2):
        ended = start_task("tests.fail", alice)
        wait_until(lambda: finished(ended))  # noqa: B023  (called within the iteration)

    # When she adds an endpoint, then disables it, each before a task of hers ends
    endpoint = register(alice, receiver.url, events=["task.failed"])
    announced = start_task("tests.fail", alice)
    receiver.wait_for(1)
    api_client(alice).patch(f"/api/v1/webhooks/{endpoint['id']}", {"is_active": False}, format="json")
    silent = start_task("tests.fail", alice)
    marker = start_task("tests.slow_append", None, key=f"marker:{silent.pk}", steps=1, step_seconds=0)
    wait_until(lambda: finished(marker))  # the solo worker is FIFO: the silent task's ending is behind it

    # Then the task that ended while it was active was announced, and only that one
    assert finished(silent) and receiver.events()[0]["data"]["id"] == str(announced.pk)
    assert [delivery.payload["data"]["id"] for delivery in WebhookDelivery.objects.all()] == [str(announced.pk)]


def start_task(kind, owner, **input):
    with transaction.atomic():
        record, _ = task_start(kind=kind, owner=owner, input=input)
    return record


def finished(record) -> bool:
    return TaskRecord.objects.get(pk=record.pk).is_finished


def test_after_a_secret_rotation_events_are_signed_with_both_secrets(celery_worker, alice, receiver):
    endpoint = register(alice, receiver.url)

    rotated = api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret").json()
    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    [request] = receiver.wait_for(1)

    assert rotated["secret"] != endpoint["secret"]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert verify_standard_webhook(endpoint["secret"], request["headers"], request["body"])
    assert verify_standard_webhook(rotated["secret"], request["headers"], request["body"])


def test_deliveries_due_later_are_sent_by_the_beat_dispatcher(celery_worker, alice, receiver):
    endpoint = WebhookEndpoint.objects.get(pk=register(alice, receiver.url)["id"])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id="msg_due",
        event_type="webhook.ping",
        payload={"type": "webhook.ping"},
        next_attempt_at=timezone.now(),
    )

    with transaction.atomic():
        assert deliveries_dispatch_due() == 1
    receiver.wait_for(1)

    assert wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded")


def test_an_operator_replays_a_delivery_from_the_admin(celery_worker, client, alice, receiver):
    receiver.statuses = [410, 200]
    endpoint = register(alice, receiver.url)
    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    failed = wait_until(lambda: WebhookDelivery.objects.filter(status="failed").first())
    api_client(alice).patch(f"/api/v1/webhooks/{endpoint['id']}", {"is_active": True}, format="json")

    client.force_login(make_user("olga", role="operator"))
    response = client.post("/admin/tasks/webhookdelivery/", {"action": "replay", "_selected_action": [failed.pk]})

    assert response.status_code == 302
    replayed = wait_until(lambda: WebhookDelivery.objects.filter(status="succeeded", event_id=failed.event_id).first())
    assert replayed.pk != failed.pk
    assert receiver.wait_for(2)[1]["headers"]["webhook-id"] == failed.event_id
