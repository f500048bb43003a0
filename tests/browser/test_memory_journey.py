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


@pytest.mark.django_db(transaction=True)
def test_a_user_shares_a_namespace_and_the_other_user_reads_it_but_cannot_change_it(page):
    from memory.services import memory_create

    dora, erin = make_user("dora"), make_user("erin")
    memory_create(owner=dora, content="Grandma's soup: leeks, potatoes, thyme", namespace="recipes")

    def log_in(username):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto("/memories/")

    log_in("dora")
    sharing = page.locator("#sharing")
    sharing.get_by_label("Namespace").fill("recipes")
    sharing.get_by_label("With user").fill("erin")
    sharing.get_by_role("button", name="Share").click()
    expect(page.get_by_text("Namespace recipes shared.")).to_be_visible()
    expect(page.locator("#sharing")).to_contain_text("erin (view)")
    page.get_by_role("button", name="Log out").click()

    log_in("erin")
    row = page.locator("tr", has_text="Grandma's soup")
    expect(row).to_contain_text("shared by dora")
    expect(row.get_by_role("link", name="Edit")).to_have_count(0)
    page.get_by_label("Search").fill("soup with leeks")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr").first).to_contain_text("Grandma's soup")
    assert erin.memories.count() == 0
