"""Workflows in the browser, on a desktop and on a phone: a member writes a workflow in the editor (a mistake
first, shown with its line), sees its diagram, starts a run and watches it finish live; a run waits for an
approval that someone else decides on their approvals page, and the run page shows the run go on."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.pages import SIZES
from tests.conftest import PASSWORD, make_user
from workflows.models import WorkflowRun
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker", "agents_worker")]
LIVE = 20_000  # ms: long enough for the workers to run a few steps and a 2 s wait

GREETING = """version: 1
name: greeting
inputs:
  who: {type: string, description: Who to greet}
steps:
  - id: hello
    kind: transform
    output: "Hello, ${inputs.who}"
  - id: pause
    kind: wait
    needs: [hello]
    for: 2s
  - id: shout
    kind: transform
    needs: [pause]
    output: "${steps.hello.output}!"
outputs:
  greeting: "${steps.shout.output}"
"""
MISTAKE = GREETING.replace("needs: [pause]", "needs: [paus]")
MISTAKE_LINE = MISTAKE.splitlines().index("    needs: [paus]") + 1

REVIEW = """version: 1
name: review
inputs:
  draft: {type: string}
steps:
  - id: ask
    kind: approval
    approvers: {users: [otto]}
    context: "Publish ${inputs.draft}?"
    branches: {approved: [publish], rejected: [drop]}
  - id: publish
    kind: transform
    needs: [ask]
    output: "published: ${inputs.draft}"
  - id: drop
    kind: transform
    needs: [ask]
    output: dropped
"""


def sign_in(page, username):
    page.goto(reverse("login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


@pytest.mark.parametrize("size", SIZES)
def test_a_member_fixes_the_mistake_the_editor_shows_then_runs_the_workflow_and_watches_it_finish_live(page, size):
    page.set_viewport_size(SIZES[size])
    make_user("wendy")
    sign_in(page, "wendy")
    page.goto(reverse("workflows"))

    # Given a definition with a mistake, validating shows the problem at its line, and saves nothing.
    page.get_by_label("Name", exact=True).fill("greeting")
    editor = page.get_by_role("textbox", name="Definition")
    editor.fill(MISTAKE)
    page.get_by_role("button", name="Validate").click()
    problems = page.locator("#source-problems")
    expect(problems).to_contain_text(f"Line {MISTAKE_LINE}:13")
    expect(problems).to_contain_text("paus")
    expect(editor).to_have_attribute("aria-invalid", "true")
    problems.get_by_role("link", name=f"Line {MISTAKE_LINE}:13").click()  # selects the mistake in the editor
    expect(editor).to_be_focused()
    assert page.evaluate("(e => e.value.slice(e.selectionStart, e.selectionEnd))(document.activeElement)") == "paus]"

    # When it is fixed, the workflow is created and drawn: a node for each step, with its kind and id.
    editor.fill(GREETING)
    page.get_by_role("button", name="Create workflow").click()
    expect(page.get_by_role("heading", name="greeting", level=1)).to_be_visible()
    diagram = page.locator("#diagram")
    for kind, step in [("transform", "hello"), ("wait", "pause"), ("transform", "shout")]:
        expect(diagram.get_by_role("button", name=f"{kind} step {step}")).to_be_visible()
    diagram.get_by_role("button", name="wait step pause").click()
    expect(page.locator("#step-details")).to_contain_text('"for": 2,')

    # A run started from the page is drawn live: its steps turn succeeded without the page being reloaded.
    page.get_by_label("who", exact=True).fill("Ada")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("heading", name="Run of greeting")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    run_diagram = page.locator("#run-diagram")
    pause, shout = run_diagram.locator('[data-key="pause"]'), run_diagram.locator('[data-key="shout"]')
    # (the page opens while `pause` holds the run for 2 s, so `shout` is still to come)
    expect(shout).not_to_have_class(re.compile(r"status-succeeded\b"))
    expect(pause).to_have_class(re.compile(r"status-(queued|running|waiting|succeeded)\b"))
    expect(shout).to_have_class(re.compile(r"status-succeeded\b"), timeout=LIVE)
    expect(pause).to_have_attribute("aria-label", re.compile("wait step pause: succeeded"))
    expect(shout).to_have_attribute("aria-label", re.compile("succeeded"))
    expect(page.locator("[data-run-field=status]")).to_have_text("succeeded")
    expect(page.locator("[data-run-field=outputs]")).to_contain_text('"greeting": "Hello, Ada!"')
    expect(page.locator("#run-events")).to_contain_text("run.succeeded")
    assert page.evaluate("window.notReloaded") is True
    assert WorkflowRun.objects.get().trigger == WorkflowRun.Trigger.BROWSER

    # Clicking a step shows its output; from the keyboard too.
    shout.click()
    details = page.locator("#step-details")
    expect(details.get_by_role("heading", level=2)).to_have_text("Step shout")
    expect(details.get_by_label("Output of shout")).to_have_text("Hello, Ada!")
    run_diagram.locator('[data-key="hello"]').focus()
    page.keyboard.press("Enter")
    expect(details.get_by_role("heading", level=2)).to_have_text("Step hello")
    expect(details.get_by_role("heading", level=2)).to_be_focused()
    expect(details.get_by_label("Output of hello")).to_have_text("Hello, Ada")
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    expect(run_diagram.locator('[data-key="hello"]')).to_be_focused()

    # Re-running from the last step reuses the steps before it (no second wait) and says so.
    shout.click()
    details.get_by_role("button", name="Re-run from shout").click()
    expect(page.get_by_text("Re-running from shout")).to_be_visible()
    expect(page.locator('#run-diagram [data-key="pause"]')).to_have_attribute("aria-label", re.compile("reused"))
    expect(page.locator('#run-diagram [data-key="shout"]')).to_have_class(
        re.compile(r"status-succeeded\b"), timeout=LIVE
    )
    rerun = WorkflowRun.objects.get(trigger=WorkflowRun.Trigger.RERUN)
    assert (rerun.rerun_from, rerun.outputs) == ("shout", {"greeting": "Hello, Ada!"})


@pytest.mark.parametrize("size", SIZES)
def test_a_run_waits_for_an_approval_decided_on_the_approvers_page_and_the_run_page_shows_it_go_on(
    open_page, page, size
):
    page.set_viewport_size(SIZES[size])
    wendy, _ = make_user("wendy"), make_user("otto")
    workflow = workflow_create(owner=wendy, name="review", source=REVIEW)
    sign_in(page, "wendy")
    page.goto(reverse("workflow_detail", args=[workflow.pk]))
    page.get_by_label("draft", exact=True).fill("the launch post")
    page.get_by_role("button", name="Start run").click()
    run_diagram = page.locator("#run-diagram")
    expect(run_diagram.locator('[data-key="ask"]')).to_have_class(re.compile(r"status-waiting\b"), timeout=LIVE)

    # Otto, in a browser of his own, finds the approval with its context and approves it with a comment.
    otto = open_page(viewport=SIZES[size])
    sign_in(otto, "otto")
    otto.goto(reverse("workflows"))
    otto.get_by_role("link", name="Approvals waiting for you: 1").click()
    expect(otto.get_by_text("Publish the launch post?")).to_be_visible()
    otto.get_by_label("Comment (optional)").fill("Ship it")
    otto.get_by_role("button", name="Approve review step ask").click()
    expect(otto.get_by_text("Approved: review, step ask.")).to_be_visible()
    expect(otto.get_by_text("Nothing waits for your decision.")).to_be_visible()
    otto.context.close()

    # Wendy's run page, never reloaded, shows the run go on down the approved branch.
    expect(run_diagram.locator('[data-key="publish"]')).to_have_class(re.compile(r"status-succeeded\b"), timeout=LIVE)
    expect(run_diagram.locator('[data-key="drop"]')).to_have_class(re.compile(r"status-skipped\b"))
    expect(page.locator("[data-run-field=status]")).to_have_text("succeeded")
    run_diagram.locator('[data-key="ask"]').click()
    output = page.locator("#step-details").get_by_label("Output of ask")
    expect(output).to_contain_text('"decision": "approved"')
    expect(output).to_contain_text('"comment": "Ship it"')


def test_a_workflow_exported_by_its_owner_is_imported_by_someone_else_who_sees_only_what_is_theirs(page, tmp_path):
    wendy, _ = make_user("wendy"), make_user("bob")
    workflow = workflow_create(owner=wendy, name="greeting", source=GREETING, description="Says hello")
    sign_in(page, "wendy")
    page.goto(reverse("workflow_detail", args=[workflow.pk]))
    with page.expect_download() as download:
        page.get_by_role("link", name="Export (JSON)").click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.name == "greeting.workflow.json"

    page.context.clear_cookies()
    sign_in(page, "bob")
    page.goto(reverse("workflow_detail", args=[workflow.pk]))
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()  # not shared: it is not there
    page.goto(reverse("workflows"))
    page.get_by_label("Export file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported greeting (version 1).")).to_be_visible()
    expect(page.get_by_role("heading", name="greeting", level=1)).to_be_visible()
    expect(page.locator("#diagram").get_by_role("button", name="wait step pause")).to_be_visible()
    expect(page.get_by_role("heading", name="Edit the definition")).to_be_visible()  # bob's own copy
