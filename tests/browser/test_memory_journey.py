import json
import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests.browser.pages import ARTIFACTS, SIZES
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
    expect(page.get_by_role("cell", name="My cat is called Tofu", exact=True)).to_be_visible()

    page.locator("tr", has_text="Tofu").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Memory deleted.")).to_be_visible()
    expect(page.get_by_role("cell", name="My cat is called Tofu", exact=True)).to_have_count(0)


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


def sign_in(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def snap(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"memory-journey-{name}.png", full_page=True)


def add(page, content, metadata="", expires=""):
    form = page.locator("section", has=page.get_by_role("heading", name="Add a memory"))
    form.get_by_label("Content").fill(content)
    form.get_by_label("Metadata").fill(metadata or "{}")
    form.get_by_label("Expires").fill(expires)
    form.get_by_role("button", name="Save memory").click()
    expect(page.get_by_text("Memory saved.")).to_be_visible()


def kept(user) -> list[tuple]:
    fields = ("content", "namespace", "kind", "metadata", "importance", "archived", "expires_at", "created_at")
    return list(user.memories.order_by("created_at").values_list(*fields))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", SIZES)
def test_memories_added_searched_archived_and_exported_are_imported_unchanged_by_another_user(
    page, celery_worker, tmp_path, size
):
    dora, erin = make_user("dora"), make_user("erin")
    page.set_viewport_size(SIZES[size])
    sign_in(page, "dora")
    page.goto("/memories/")

    # Dora adds memories with metadata, one with an expiry.
    add(page, "The invoice for March is due on Friday", '{"topic": "billing", "priority": 2}', "2031-05-01T09:30")
    add(page, "The invoice template lives in the shared drive", '{"topic": "docs"}')
    add(page, "My cat is called Miso")
    row = page.locator("tr", has_text="due on Friday")
    row.get_by_text("Metadata").click()
    expect(row.locator("pre")).to_have_text('{\n  "topic": "billing",\n  "priority": 2\n}')
    expect(row).to_contain_text("2031-05-01 09:30")
    assert dora.memories.get(content__contains="March").expires_at == datetime(2031, 5, 1, 9, 30, tzinfo=UTC)

    # She searches with a metadata filter and sees how near each hit is.
    search = page.get_by_role("search", name="Memories")
    search.get_by_label("Search").fill("when is the invoice due")
    search.get_by_text("Filters").click()
    search.get_by_label("Metadata").fill("topic=billing")
    search.get_by_role("button", name="Search").click()
    hits = page.locator("table.memories tbody tr")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("The invoice for March is due on Friday")
    expect(hits.first.locator("td.distance")).to_have_text(re.compile(r"^0\.\d{3}$"))
    snap(page, f"search-{size}")

    # She ticks both invoices and archives them at once: the list then shows the cat alone.
    page.goto("/memories/")
    for content in ("The invoice for March", "The invoice template"):
        page.get_by_label(f"Tick memory: {content}").check()
    page.get_by_label("With the ticked memories").select_option("archive")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("2 memories archived.")).to_be_visible()
    expect(page.locator("table.memories tbody tr")).to_have_count(1)
    snap(page, f"archived-{size}")

    # She exports them all.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export all (JSON lines)").click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.name == "memories.jsonl" and len(exported.read_text().splitlines()) == 3

    # Erin imports the file and watches the import run to its end.
    page.context.clear_cookies()
    sign_in(page, "erin")
    page.goto("/memories/import/")
    page.get_by_label("JSON-lines file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Import")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.get_by_text("3 memories imported.")).to_be_visible()
    expect(page.get_by_label("Progress")).to_have_attribute("value", "100")
    snap(page, f"imported-{size}")
    page.get_by_role("link", name="See your memories").click()
    expect(page.locator("table.memories tbody tr")).to_have_count(1)  # the two archived stay archived
    assert kept(erin) == kept(dora)
    assert [json.loads(line)["archived"] for line in exported.read_text().splitlines()] == [True, True, False]


@pytest.mark.django_db(transaction=True)
def test_an_imports_page_follows_its_task_as_it_runs_and_shows_the_outcome_when_it_ends(page):
    from tasks.models import TaskRecord

    dora = make_user("dora")
    record = TaskRecord.objects.create(kind="memory.import", owner=dora, status="running", progress_percent=10)
    sign_in(page, "dora")
    page.goto(f"/memories/import/{record.pk}/")
    expect(page.get_by_label("Progress")).to_have_attribute("value", "10")

    # The worker reports progress (here written as it would): the page shows it without being reloaded.
    TaskRecord.objects.filter(pk=record.pk).update(progress_percent=45, progress_message="450 of 1000 embedded")
    expect(page.get_by_label("Progress")).to_have_attribute("value", "45")
    expect(page.locator(".import-task")).to_contain_text("45 % · 450 of 1000 embedded")

    # It fails on two lines: the page says which, in words.
    TaskRecord.objects.filter(pk=record.pk).update(
        status="failed", error="ImportProblems: Line 2: content is required.\nLine 7: not JSON (Expecting value)."
    )
    expect(page.get_by_role("status")).to_have_text("Failed")
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text(
        ["Line 2: content is required.", "Line 7: not JSON (Expecting value)."]
    )
