"""Failed webhook deliveries: retries with backoff, giving up, disabling endpoints, bad answers."""

import base64

import pytest
from django.utils import timezone

from core.encryption import encrypt
from tasks.models import WebhookDelivery, WebhookEndpoint
from tasks.services.delivery import webhook_attempt
from tasks.services.webhooks import deliveries_dispatch_due
from tests.conftest import api_client
from tests.tasks.conftest import wait_until
from tests.tasks.helpers import register

pytestmark = pytest.mark.django_db(transaction=True)


def attempts_of(delivery):
    return list(delivery.attempt_log.order_by("number").values_list("status_code", flat=True))


def test_a_500_is_retried_with_backoff_and_every_attempt_is_recorded(celery_worker, alice, receiver):
    receiver.statuses = [500, 503, 200]
    endpoint = register(alice, receiver.url)

    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    requests = receiver.wait_for(3)

    delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="succeeded").first())
    assert attempts_of(delivery) == [500, 503, 200]
    assert len({r["headers"]["webhook-id"] for r in requests}) == 1, "the event id changed between attempts"
    assert all(a.latency_ms is not None for a in delivery.attempt_log.all())
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).consecutive_failures == 0


def test_a_delivery_is_given_up_after_its_retry_schedule(celery_worker, alice, receiver):
    receiver.statuses = [500]
    endpoint = register(alice, receiver.url)

    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")

    delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="failed").first())
    assert attempts_of(delivery) == [500, 500, 500, 500]  # the first try and a 3-step test schedule
    assert delivery.next_attempt_at is None


def test_redirects_are_not_followed_and_count_as_failures(celery_worker, alice, receiver):
    receiver.statuses = [302, 200]
    endpoint = register(alice, receiver.url)

    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="succeeded").first())

    first = delivery.attempt_log.get(number=1)
    assert (first.status_code, first.succeeded, first.error) == (302, False, "Redirects are not followed.")
    assert all(r["path"] == "/hooks" for r in receiver.requests)


def test_a_410_disables_the_endpoint_at_once(celery_worker, alice, receiver):
    receiver.statuses = [410]
    endpoint = register(alice, receiver.url)

    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")

    disabled = wait_until(lambda: WebhookEndpoint.objects.filter(pk=endpoint["id"], is_active=False).first())
    assert "410" in disabled.disabled_reason
    assert len(receiver.requests) == 1


def test_an_endpoint_failing_again_and_again_is_disabled_and_its_owner_told(celery_worker, client, alice, receiver):
    receiver.statuses = [500]
    endpoint = register(alice, receiver.url)
    for _ in range(2):
        api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")

    wait_until(lambda: WebhookEndpoint.objects.filter(pk=endpoint["id"], is_active=False).first())
    wait_until(lambda: not WebhookDelivery.objects.filter(status="pending").exists())

    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "was disabled" in page and "6 failed attempts in a row" in page
    assert "was disabled" in client.get("/tasks/webhooks/").content.decode()
    enabled = api_client(alice).patch(f"/api/v1/webhooks/{endpoint['id']}", {"is_active": True}, format="json")
    assert enabled.json()["is_active"] and enabled.json()["consecutive_failures"] == 0


def test_a_malformed_answer_is_a_recorded_failed_attempt_not_a_crash(alice):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen()

    def answer_garbage():
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"garbage\r\n\r\n")
        connection.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    endpoint = WebhookEndpoint.objects.create(
        owner=alice,
        url=f"http://127.0.0.2:{server.getsockname()[1]}/",
        events=["webhook.ping"],
        secret_encrypted=encrypt("whsec_" + base64.b64encode(b"k" * 24).decode()),
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id="msg_bad", event_type="webhook.ping", payload={}, next_attempt_at=timezone.now()
    )

    webhook_attempt(delivery_id=delivery.pk)
    server.close()

    delivery.refresh_from_db()
    attempt = delivery.attempt_log.get()
    assert delivery.attempts == 1 and "BadStatusLine" in attempt.error
    assert delivery.status == "pending" and delivery.next_attempt_at > timezone.now()


def test_a_second_message_for_a_delivery_that_is_not_due_does_nothing(alice, receiver, settings):
    receiver.statuses = [500]
    settings.WEBHOOK_RETRY_SCHEDULE = [120]
    endpoint = WebhookEndpoint.objects.get(pk=register(alice, receiver.url)["id"])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id="msg_dup", event_type="webhook.ping", payload={}, next_attempt_at=timezone.now()
    )

    webhook_attempt(delivery_id=delivery.pk)  # fails; the next attempt is scheduled
    webhook_attempt(delivery_id=delivery.pk)  # a duplicate message arrives at once
    deliveries_dispatch_due()  # and the dispatcher runs

    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 1
