"""Webhook destinations must be public addresses: checked at registration and again at each send."""

import pytest
from django.utils import timezone

from core.encryption import encrypt
from tasks.models import WebhookDelivery, WebhookEndpoint
from tasks.services.delivery import webhook_attempt
from tests.conftest import api_client

pytestmark = pytest.mark.django_db(transaction=True)


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
