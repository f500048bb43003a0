"""A user's home page shows what they spent, and the usage page draws it on a chart with labelled axes and
groups its table by model, agent type or key: at desktop and phone widths."""

import pytest
from playwright.sync_api import expect

from tests.browser.pages import ARTIFACTS, SIZES
from tests.conftest import PASSWORD, make_user
from tests.quotas.test_dashboard_page import spend


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.django_db(transaction=True)
def test_home_figures_match_what_was_spent_and_the_usage_chart_is_drawn_and_regrouped(page, size):
    page.set_viewport_size(SIZES[size])
    user = make_user("hana")
    spend(user, tokens=(120, 30), cost="0.0125", model="fake-gpt")
    spend(user, tokens=(40, 10), cost="0.0025", model="tiny")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    today = page.locator("#figures-today")
    expect(today.locator(".figure-requests")).to_have_text("2")
    expect(today.locator(".figure-tokens")).to_have_text("200")
    expect(today.locator(".figure-cost")).to_have_text("0.0150")
    page.screenshot(path=ARTIFACTS / f"home-{size}.png", full_page=True)

    page.get_by_role("link", name="Usage by day, model, agent type and key").click()
    plot = page.locator("#usage-plot canvas")
    expect(plot).to_be_visible()
    box = plot.bounding_box()
    assert box["width"] > 100 and box["height"] > 100
    expect(page.locator("#usage-plot")).to_have_attribute("data-axes", "day (UTC)|tokens per day|cost (USD per day)")
    expect(page.locator("#usage-plot .u-legend")).to_contain_text("Cost (USD)")
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["width"]
    expect(page.get_by_role("heading", name="By model")).to_be_visible()
    expect(page.get_by_role("rowheader", name="tiny")).to_be_visible()

    page.get_by_label("Group the table by").select_option("agent_type")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="By agent type")).to_be_visible()
    expect(page.get_by_role("rowheader", name="helper")).to_be_visible()
    page.screenshot(path=ARTIFACTS / f"usage-{size}.png", full_page=True)
