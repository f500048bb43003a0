import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD


def status_with_key(base_url, key) -> int:
    request = urllib.request.Request(f"{base_url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
def test_a_new_user_signs_up_creates_a_key_sees_it_once_uses_it_and_revokes_it(page, live_server):
    # Sign up from the login page
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Email").fill("dora@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    # Lands on the API keys page, signed in
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.locator(".who")).to_have_text("dora")

    # Create a key: the full secret is shown once
    page.get_by_label("Name").fill("laptop agent")
    page.get_by_label("account:read", exact=False).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Key created")).to_be_visible()
    full_key = page.locator("#full-key").inner_text()
    assert full_key.startswith("sb_")
    assert status_with_key(live_server.url, full_key) == 200

    # Back on the list, only the public prefix is shown, never the secret
    page.get_by_role("link", name="Back to your keys").click()
    prefix = full_key[: len("sb_") + 12]
    expect(page.get_by_role("cell", name=prefix, exact=True)).to_be_visible()
    assert full_key not in page.content()
    page.reload()
    assert full_key not in page.content()

    # Revoke it: it stops working at once
    page.get_by_role("button", name=f"Revoke {prefix}").click()
    expect(page.get_by_text("revoked; it stopped working at once")).to_be_visible()
    assert status_with_key(live_server.url, full_key) == 401

    # Both events are on the security page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    expect(page.get_by_role("cell", name="API key revoked")).to_be_visible()
    expect(page.get_by_role("cell", name="API key created")).to_be_visible()
    expect(page.get_by_role("cell", name="Signed up")).to_be_visible()


@pytest.mark.django_db(transaction=True)
def test_preferences_are_saved_and_bad_values_are_explained(page, django_user_model):
    from tests.conftest import make_user

    make_user("erin")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Preferences").click()
    page.get_by_label("Timezone").fill("Nowhere/City")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("is not a known time zone")).to_be_visible()

    page.get_by_label("Timezone").fill("Europe/Lisbon")
    page.get_by_label("Memory retention days").fill("90")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Preferences saved.")).to_be_visible()
    expect(page.get_by_label("Timezone")).to_have_value("Europe/Lisbon")
    expect(page.get_by_label("Memory retention days")).to_have_value("90")
