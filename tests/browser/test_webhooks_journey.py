import pytest
from playwright.sync_api import expect

from tasks.models import WebhookDelivery
from tests.conftest import PASSWORD, make_user
from tests.tasks.conftest import Receiver, wait_until


@pytest.mark.django_db(transaction=True)
def test_a_user_adds_an_endpoint_sees_its_secret_once_sends_a_test_and_sees_the_delivery(page, celery_worker):
    receiver = Receiver()
    try:
        make_user("dora")
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("dora")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").click()
        page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
        page.get_by_label("webhook.ping", exact=False).check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_text("non-public address")).to_be_visible()

        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("webhook.ping", exact=False).check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_role("heading", name="Endpoint added")).to_be_visible()
        secret = page.locator("#signing-secret").inner_text()
        assert secret.startswith("whsec_")

        page.get_by_role("link", name="Go to the endpoint").click()
        assert secret not in page.content()
        page.get_by_role("button", name="Send a test event").click()
        expect(page.get_by_text("A test event is on its way")).to_be_visible()
        receiver.wait_for(1)
        wait_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())
        page.reload()
        expect(page.locator(".delivery-succeeded").first).to_have_text("succeeded")
        expect(page.get_by_text("#1: 200").first).to_be_visible()

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
        expect(page.get_by_role("cell", name="webhooks.ping")).to_be_visible()
        expect(page.get_by_role("cell", name="Succeeded")).to_be_visible()
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
