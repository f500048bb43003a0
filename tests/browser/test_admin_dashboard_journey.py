"""The operators' dashboard in the browser, on a desktop and on a phone: an operator signs in to the admin and
finds today's figures and the charts of the last day and week drawn (by the vendored uPlot, from the page's JSON
data), sized to the screen, with legends and text alternatives, no console error and no inline script."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.pages import NARROWEST, SIZES
from tests.conftest import PASSWORD, make_user
from tests.factories import AgentFactory
from tests.monitoring.test_dashboard import recorded

pytestmark = pytest.mark.django_db(transaction=True)

CANVASES = """() => [...document.querySelectorAll('.ops-plot')].map(plot => {
  const canvas = plot.querySelector('canvas');
  const box = canvas ? canvas.getBoundingClientRect() : {width: 0, height: 0, right: 0};
  return {chart: plot.dataset.chart + '/' + plot.dataset.window, width: box.width, height: box.height,
          right: box.right, container: plot.getBoundingClientRect().right};
})"""
SCRIPTS = """() => [...document.querySelectorAll('script:not([src])')].map(s => s.type)"""


def some_traffic():
    """Runs over the past week with their latencies and costs, as the run recorder writes them (the pipeline's own
    runs are on the page in tests/monitoring/test_dashboard.py)."""
    alice = make_user("alice")
    agent = AgentFactory(owner=alice, name="researcher")
    now = timezone.now()
    for hours in range(1, 7 * 24, 5):
        recorded(agent, at=now - timedelta(hours=hours), latency_ms=80 + hours % 400, cost="0.02", tokens=(40, 90))
    recorded(agent, at=now, latency_ms=1500, status="failed", cost="0")  # today's, whatever the time


def console_error(message) -> bool:
    """An error in the console, but the browser's own request for /favicon.ico (the site has none)."""
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")


@pytest.mark.parametrize("size", SIZES)
def test_an_operator_signs_in_to_the_admin_and_finds_the_dashboards_charts_drawn_for_the_screen(page, size):
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if console_error(message) else None)
    page.set_viewport_size(SIZES[size])
    make_user("olga", role="operator")
    some_traffic()

    page.goto(reverse("admin:login"))
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # The dashboard, with today's figures at the top and the platform's name in the header.
    expect(page.get_by_role("heading", name="Operators' dashboard", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Switchboard administration")).to_be_visible()
    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    figures = page.locator(".ops-figures")
    expect(figures).to_contain_text("Requests")
    expect(figures.locator("dd").first).to_have_text(re.compile(r"^[1-9][0-9]*$"))
    expect(page.get_by_text("No open alerts.")).to_be_visible()

    # Eight charts drawn, each on a canvas of some size that stays within its box, with its legend.
    expect(page.locator(".ops-plot canvas")).to_have_count(8)
    for chart in page.evaluate(CANVASES):
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["right"] <= chart["container"] + 1, chart
    legend = page.locator('.ops-plot[data-chart="latency"][data-window="day"] .u-legend')
    expect(legend).to_contain_text("p50 (ms)")
    expect(legend).to_contain_text("p95 (ms)")
    # The charts are hidden from screen readers: each has a summary in words, and each window a table.
    expect(page.locator(".ops-plot[aria-hidden=true]")).to_have_count(8)
    latency = page.locator("figure", has=page.get_by_role("heading", name="Latency (p50 and p95)")).first
    expect(latency.locator("figcaption")).to_contain_text("Slowest p95: ")
    page.get_by_text("The figures of these charts, per hour").click()
    expect(page.get_by_role("table", name="Last 24 hours, per hour (UTC)")).to_be_visible()

    # No script but the page's JSON data is inline (a Content-Security-Policy will forbid inline script).
    assert page.evaluate(SCRIPTS) == ["application/json"]
    assert not pages.layout_problems(page)

    # On the narrowest phone the charts shrink with the page.
    if size == "phone":
        page.set_viewport_size(NARROWEST)
        page.wait_for_function(
            "[...document.querySelectorAll('.ops-plot canvas')].every(c => c.getBoundingClientRect().right <= window.innerWidth)"
        )
        assert not pages.layout_problems(page)
    assert not problems, problems
