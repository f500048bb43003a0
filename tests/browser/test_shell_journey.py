import pytest
from playwright.sync_api import expect


@pytest.mark.django_db(transaction=True)
def test_a_user_logs_in_sees_the_dashboard_shell_and_logs_out(page, django_user_model):
    django_user_model.objects.create_user("alice", password="correct-horse-battery")

    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("API docs")
    expect(page.locator(".who")).to_have_text("alice")
    stylesheet_applied = page.evaluate("getComputedStyle(document.querySelector('.topbar')).display")
    assert stylesheet_applied == "flex"

    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url("/accounts/login/")
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")


@pytest.mark.django_db(transaction=True)
def test_a_wrong_password_shows_an_error_and_stays_logged_out(page, django_user_model):
    django_user_model.objects.create_user("alice", password="correct-horse-battery")

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
