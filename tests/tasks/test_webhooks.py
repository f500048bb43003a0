import base64
import hashlib
import hmac
import time

import pytest
from django.db import transaction
from django.utils import timezone

from core.encryption import encrypt
from tasks.models import TaskRecord, WebhookDelivery, WebhookEndpoint
from tasks.services.delivery import webhook_attempt
from tasks.services.records import task_start
from tasks.services.webhooks import deliveries_dispatch_due
from tests.conftest import api_client, make_user
from tests.isolation import assert_isolated
from tests.tasks.conftest import wait_until

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


def register(user, url, events=("webhook.ping",)):
    response = api_client(user).post("/api/v1/webhooks", {"url": url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def attempts_of(delivery):
    return list(delivery.attempt_log.order_by("number").values_list("status_code", flat=True))


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


def test_after_a_secret_rotation_events_are_signed_with_both_secrets(celery_worker, alice, receiver):
    endpoint = register(alice, receiver.url)

    rotated = api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret").json()
    api_client(alice).post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    [request] = receiver.wait_for(1)

    assert rotated["secret"] != endpoint["secret"]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert verify_standard_webhook(endpoint["secret"], request["headers"], request["body"])
    assert verify_standard_webhook(rotated["secret"], request["headers"], request["body"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://0177.0.0.1/hook",
        "http://localhost/hook",
        "http://100.100.100.200/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused_at_registration(alice, url):
    response = api_client(alice).post("/api/v1/webhooks", {"url": url, "events": ["task.failed"]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "url"
    assert not WebhookEndpoint.objects.exists()


def test_the_address_is_checked_again_at_each_send_by_name(alice, receiver):
    # Given an endpoint whose name resolved to a public address when registered but to loopback now
    port = receiver.url.split(":")[2].split("/")[0]
    endpoint = WebhookEndpoint.objects.create(
        owner=alice,
        url=f"http://localhost:{port}/hooks",
        events=["webhook.ping"],
        secret_encrypted=encrypt("whsec_" + "A" * 32),
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id="msg_1", event_type="webhook.ping", payload={}, next_attempt_at=timezone.now()
    )

    webhook_attempt(delivery_id=delivery.pk)

    attempt = delivery.attempt_log.get()
    assert "non-public address" in attempt.error and attempt.status_code is None
    assert receiver.requests == []


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


def test_another_users_endpoint_is_a_404(alice, charlie, receiver):
    endpoint = register(alice, receiver.url)

    assert_isolated(
        detail_url=f"/api/v1/webhooks/{endpoint['id']}",
        owner=alice,
        outsider=charlie,
        writes=[
            ("patch", f"/api/v1/webhooks/{endpoint['id']}"),
            ("delete", f"/api/v1/webhooks/{endpoint['id']}"),
            ("post", f"/api/v1/webhooks/{endpoint['id']}/ping"),
            ("post", f"/api/v1/webhooks/{endpoint['id']}/rotate-secret"),
        ],
        list_url="/api/v1/webhooks",
    )
    assert api_client(charlie).get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").status_code == 404


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "fec0::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "::7f00:1",
        "::ffff:0:a9fe:a9fe",
        "2002:7f00:1::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "ff02::1",
    ],
)
def test_non_public_addresses_are_recognised_in_every_ip_form(address):
    from tasks.outbound import is_public_address

    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_pass(address):
    from tasks.outbound import is_public_address

    assert is_public_address(address)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001", "localhost"])
def test_numeric_spellings_of_loopback_are_resolved_then_refused(host):
    from tasks.outbound import UnsafeDestination, check_url

    with pytest.raises(UnsafeDestination, match="non-public"):
        check_url(f"http://{host}:8080/hook")


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


def test_a_read_only_key_cannot_cancel_tasks_or_see_webhooks(alice):
    from tests.conftest import make_key

    reader = api_client(key=make_key(alice, scopes=["tasks:read"]))
    with transaction.atomic():
        record, _ = task_start(kind="tests.slow_append", owner=alice, input={"key": "k", "steps": 1, "step_seconds": 0})

    assert reader.get(f"/api/v1/tasks/{record.pk}").status_code == 200
    assert reader.post(f"/api/v1/tasks/{record.pk}/cancel").status_code == 403
    assert reader.get("/api/v1/webhooks").status_code == 403
