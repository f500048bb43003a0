import pytest
from playwright.sync_api import expect

from agents.models import AgentRun
from tests.conftest import PASSWORD, make_user


@pytest.mark.django_db(transaction=True)
def test_a_user_creates_an_echo_agent_chats_with_it_and_sees_its_runs(page):
    make_user("dora")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    page.get_by_label("Name").fill("Parrot")
    page.get_by_label("Agent type").select_option(label="assistant")
    page.get_by_role("button", name="Create agent").click()

    expect(page.get_by_role("heading", name="Parrot")).to_be_visible()
    expect(page.get_by_text("echo provider")).to_be_visible()
    page.get_by_label("Message").fill("Hello, parrot")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant")).to_contain_text("echo: Hello, parrot")
    expect(page.get_by_role("cell", name="MISS")).to_be_visible()

    page.get_by_label("Message").fill("Hello, parrot")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant")).to_have_count(2)
    assert AgentRun.objects.filter(agent__name="Parrot").count() == 2
