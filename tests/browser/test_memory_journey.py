import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, make_user


@pytest.mark.django_db(transaction=True)
def test_a_user_adds_searches_edits_and_deletes_memories(page):
    make_user("dora")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Memories").click()

    for text in ("My cat is called Miso", "The invoice is due on Friday"):
        page.get_by_label("Content").fill(text)
        page.get_by_role("button", name="Save memory").click()
        expect(page.get_by_text("Memory saved.")).to_be_visible()

    page.get_by_label("Search").fill("what is the cat called")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr").first).to_contain_text("Miso")

    page.get_by_role("link", name="Edit").first.click()
    page.get_by_label("Content").fill("My cat is called Tofu")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Memory updated.")).to_be_visible()
    expect(page.get_by_role("cell", name="My cat is called Tofu")).to_be_visible()

    page.locator("tr", has_text="Tofu").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Memory deleted.")).to_be_visible()
    expect(page.get_by_role("cell", name="My cat is called Tofu")).to_have_count(0)
