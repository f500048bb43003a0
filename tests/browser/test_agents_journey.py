"""Agents in the browser, as people use them, on a desktop and on a phone: create one, chat with it (the
answer streams in), change its settings, share it, and delete it."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from agents.models import Agent, AgentRun
from tests.browser.pages import ARTIFACTS, SIZES
from tests.conftest import PASSWORD, make_user


def sign_in(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def send(page, text):
    answers = page.locator(".message.assistant")
    before = answers.count()
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(answers).to_have_count(before + 1)
    expect(page.locator('.message.assistant[aria-busy="true"]')).to_have_count(0)  # the answer is whole


def snap(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"agents-journey-{name}.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_a_user_creates_an_echo_agent_chats_with_it_and_sees_its_runs(page):
    make_user("dora")
    sign_in(page, "dora")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    page.get_by_label("Name").fill("Parrot")
    page.get_by_label("Agent type").select_option(label="assistant")
    page.get_by_role("button", name="Create agent").click()

    expect(page.get_by_role("heading", name="Parrot")).to_be_visible()
    expect(page.get_by_text("echo provider")).to_be_visible()
    send(page, "Hello, parrot")
    expect(page.locator(".message.assistant")).to_contain_text("echo: Hello, parrot")
    expect(page.get_by_role("cell", name="MISS")).to_be_visible()

    send(page, "Hello, parrot")
    expect(page.locator(".message.assistant")).to_have_count(2)
    assert AgentRun.objects.filter(agent__name="Parrot").count() == 2
    page.reload()  # the conversation was kept
    expect(page.locator(".message.assistant")).to_have_count(2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", SIZES)
def test_an_agent_is_created_given_memory_shared_chatted_with_by_a_friend_unshared_and_deleted(page, open_page, size):
    make_user("alice")
    make_user("bob")
    page.set_viewport_size(SIZES[size])
    sign_in(page, "alice")

    # Alice creates an agent, and turns its memory on in its settings.
    page.goto(reverse("agents"))
    page.get_by_label("Name").fill("Scribe")
    page.get_by_label("Agent type").select_option(label="assistant")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name="Scribe")).to_be_visible()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Use memory").check()
    page.get_by_label("System prompt").fill("Write it down.")
    page.get_by_label("Temperature").fill("0.3")
    snap(page, f"edit-{size}")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("It is now version 2")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("memory on")
    agent = Agent.objects.get(name="Scribe")
    assert (agent.use_memory, agent.system_prompt, agent.temperature, agent.version) == (True, "Write it down.", 0.3, 2)

    # She shares it with bob, for use.
    page.get_by_label("With user").fill("bob")
    page.get_by_label("Level").select_option("use")
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.get_by_text("Shared with bob (use).")).to_be_visible()
    snap(page, f"shared-{size}")

    # Bob finds it among his agents, marked as alice's, and chats with it: the answer streams in.
    bob = open_page(viewport=SIZES[size])
    sign_in(bob, "bob")
    bob.goto(reverse("agents"))
    expect(bob.get_by_role("row", name="Scribe")).to_contain_text("shared by alice")
    bob.get_by_role("link", name="Scribe").click()
    send(bob, "Note: <b>buy milk</b>")
    expect(bob.locator(".message.assistant p").last).to_have_text("echo: Note: <b>buy milk</b>")
    expect(bob.locator("#recent-runs").get_by_role("cell", name="MISS")).to_be_visible()
    snap(bob, f"bob-chat-{size}")
    bob.locator("#recent-runs").get_by_role("link").first.click()
    expect(bob.get_by_role("heading", name="Run of Scribe")).to_be_visible()
    expect(bob.locator("pre.text").last).to_have_text("echo: Note: <b>buy milk</b>")
    assert AgentRun.objects.get(user__username="bob").streamed

    # Alice stops sharing it: bob's page of it is gone.
    page.reload()
    page.get_by_role("button", name="Stop sharing with bob").click()
    expect(page.get_by_text("No longer shared with bob.")).to_be_visible()
    assert bob.goto(reverse("agent_chat", args=[agent.pk])).status == 404
    bob.context.close()

    # And deletes it, after a confirmation page.
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Delete Scribe?")).to_be_visible()
    snap(page, f"delete-{size}")
    assert Agent.objects.filter(pk=agent.pk).exists()
    page.get_by_role("button", name="Delete Scribe").click()
    expect(page.get_by_text("Agent Scribe deleted, with its runs.")).to_be_visible()
    expect(page.get_by_role("link", name="Scribe")).to_have_count(0)
    assert not Agent.objects.filter(pk=agent.pk).exists()
