"""Every page of the browser UI, signed out, as a member and as an operator, on a desktop and on a phone:
no serious or critical axe-core violation, nothing wider than the screen (at 390 and 360 px), no inline
script, and nothing the Content-Security-Policy blocks (it forbids inline script and style). Screenshots and
axe reports go to tests/browser/artifacts/ (git-ignored).

The pages share one set of data and one signed-in browser context per role, made once for the module: a
live server test would otherwise flush the database after each of the ~90 page checks.
"""

import re
from pathlib import Path

import pytest
from django.urls import URLResolver, get_resolver, reverse
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.pages import ARTIFACTS, FAILING_IMPACTS, NARROWEST, PAGES, SIZES

TEMPLATES = Path(__file__).parents[2] / "templates"
API_ROUTES = ("api/", "^api/", "v1/", "admin/")  # the API, and the admin (Django's pages, checked in part)


# The data is the module's (see `site`); the marker has the test database set up.
DATABASE = pytest.mark.django_db


@pytest.fixture(scope="module")
def site(request, django_db_blocker, browser):
    """The live server, the data of a member (mia) and an operator (olga), and one page per role, signed in."""
    from django.core import serializers
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connection
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from pytest_django.live_server_helper import LiveServer

    # Once the browser runs (its event loop gives this code other context variables, so other connections):
    # a database set up before it would keep a connection open that its teardown cannot see.
    request.getfixturevalue("django_db_setup")

    # A server of the module's own: a test that uses pytest-django's live_server gets the database flushed after it.
    with django_db_blocker.unblock():
        schedules = serializers.serialize("json", [*IntervalSchedule.objects.all(), *PeriodicTask.objects.all()])
        live_server = LiveServer("localhost")
        ids = pages.seed_site()
        contexts, tabs, errors, blocked = [], {}, [], []
        for role, username in [("visitor", None), ("member", "mia"), ("operator", "olga")]:
            contexts.append(browser.new_context(base_url=live_server.url))
            pages.load_axe(contexts[-1])
            tabs[role] = contexts[-1].new_page()
            tabs[role].set_default_timeout(15_000)
            tabs[role].on("pageerror", lambda error: errors.append(error))  # an uncaught error of a page's script
            pages.watch_csp(tabs[role], blocked)  # what the Content-Security-Policy refused
            if username:
                pages.sign_in_and_chat(tabs[role], username, ids[role])
        try:
            yield {"ids": ids, "tabs": tabs, "errors": errors, "blocked": blocked}
        finally:
            for context in contexts:
                context.close()
            live_server.stop()
            # Empty the database as a live server test does (post_migrate puts the groups and the catalog's
            # built-ins back), and put back the periodic tasks the migrations registered: the tests after
            # this module expect them.
            call_command("flush", interactive=False, verbosity=0)
            for restored in serializers.deserialize("json", schedules):
                restored.save()
            # (saved with their ids: the tables' sequences, which the flush restarted, must move past them)
            with connection.cursor() as cursor:
                for statement in connection.ops.sequence_reset_sql(no_style(), [IntervalSchedule, PeriodicTask]):
                    cursor.execute(statement)


@DATABASE
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("target", PAGES, ids=str)
def test_the_page_passes_axe_and_fits_the_screen(site, target, size):
    page = site["tabs"][target.role]
    page.set_viewport_size(SIZES[size])
    site["errors"].clear()
    site["blocked"].clear()
    response = page.goto(target.path(site["ids"][target.role]))
    assert response.status < 500
    if target.then:
        target.then(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{target}-{size}.png", full_page=True)
    # Nothing blocked by the policy, checked before axe-core runs (it makes <style> elements of its own).
    assert not site["blocked"], "\n".join(site["blocked"])
    assert "unsafe-inline" not in response.headers["content-security-policy"]

    violations = pages.axe_violations(page, ignore=target.ignore)
    pages.save_report(f"{target}-{size}", violations)
    problems = [violation for violation in violations if violation["impact"] in FAILING_IMPACTS]
    layout = pages.layout_problems(page)
    if size == "phone":
        page.set_viewport_size(NARROWEST)
        layout += pages.layout_problems(page)

    assert not problems, pages.describe(problems)
    assert not layout, "\n".join(layout)
    assert not pages.inline_script(page)
    assert not site["errors"]


def url_names(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from url_names(pattern.url_patterns, route)
        elif pattern.name:
            yield route, pattern.name


def test_every_url_name_of_the_browser_ui_is_checked_or_named_as_no_page():
    names = {name for route, name in url_names(get_resolver().url_patterns) if not route.startswith(API_ROUTES)}
    checked = {target.name for target in PAGES}
    assert names - checked - pages.NOT_PAGES == set()


def test_no_template_has_inline_script_event_handlers_or_style_attributes():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+\s*=|javascript:", text), template
        assert not re.search(r"\sstyle\s*=", text), template


@DATABASE
def test_on_a_phone_the_menu_folds_away_and_opens_and_closes_from_the_keyboard_with_visible_focus(site):
    page = site["tabs"]["member"]
    site["blocked"].clear()
    page.set_viewport_size(SIZES["phone"])
    page.goto("/")
    nav, menu = page.get_by_role("navigation", name="Main"), page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(menu).to_be_focused()
    outline = page.evaluate(
        "(s => [s.outlineStyle, parseFloat(s.outlineWidth)])(getComputedStyle(document.activeElement))"
    )
    assert outline[0] != "none" and outline[1] >= 2

    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    page.screenshot(path=ARTIFACTS / "member-menu-open-phone.png")
    page.keyboard.press("Tab")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_focused()
    expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
    assert not pages.layout_problems(page)

    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(menu).to_be_focused()

    page.set_viewport_size(SIZES["desktop"])
    expect(menu).to_be_hidden()
    expect(nav).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
    assert not site["blocked"], "\n".join(site["blocked"])


@DATABASE
def test_the_copy_button_of_a_new_key_copies_it(site):
    page = site["tabs"]["member"]
    site["blocked"].clear()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(reverse("keys"))
    pages.create_key(page)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#full-key").inner_text()
    assert not site["blocked"], "\n".join(site["blocked"])
