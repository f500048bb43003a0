"""The usage page: a chart and tables of the last 30 days by day, model, agent type or key, live for today
(today from the ledger, never the roll-up's figure of a few minutes ago)."""

import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from quotas.services.ledger import usage_roll_up
from tests.conftest import make_key
from tests.quotas.test_dashboard_page import spend

pytestmark = pytest.mark.django_db


def usage_page(client, **params):
    return client.get(reverse("usage"), params)


def test_todays_row_counts_calls_made_after_the_roll_up(client, alice):
    spend(alice)
    usage_roll_up(day=timezone.now().date())  # the roll-up now says 1 request
    spend(alice)
    spend(alice)
    client.force_login(alice)

    response = usage_page(client, group="day")

    [today] = response.context["rows"]
    assert (today["requests"], today["tokens"], today["cost"]) == (3, 450, Decimal("0.03"))
    chart = json.loads(re.search(r'id="usage-data"[^>]*>(.*?)</script>', response.content.decode()).group(1))
    assert len(chart["days"]) == 30 and chart["tokens"][-1] == 450 and chart["cost"][-1] == 0.03


def test_the_table_groups_by_model_agent_type_or_key_and_says_which_key(client, alice, bob):
    make_key(alice, name="crawler")
    key = ApiKey.objects.get(user=alice, name="crawler")
    spend(alice, model="fake-gpt", agent_type="helper", api_key=key, cost="0.03")
    spend(alice, model="tiny", agent_type="summariser", cost="0.01")
    spend(bob, model="bobs-model")
    client.force_login(alice)

    by_model = usage_page(client, group="model")
    by_type = usage_page(client, group="agent_type")
    by_key = usage_page(client, group="key")

    assert [row["label"] for row in by_model.context["rows"]] == ["fake-gpt", "tiny"]
    assert [row["label"] for row in by_type.context["rows"]] == ["helper", "summariser"]
    assert [row["label"] for row in by_key.context["rows"]] == [
        f"crawler ({key.prefix})",
        "no key (browser or deleted key)",
    ]
    page = by_key.content.decode()
    assert "By API key" in page and "Per day" in page, "the per-day table stays: it is the chart's text"
    assert '<option value="key" selected>' in page


def test_an_unknown_grouping_is_a_400(client, alice):
    client.force_login(alice)

    assert usage_page(client, group="password").status_code == 400


def test_the_page_has_no_inline_script_or_style(client, alice):
    spend(alice)
    client.force_login(alice)

    page = usage_page(client).content.decode()  # by model, and per day

    scripts = re.findall(r"<script([^>]*)>", page)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts), scripts
    assert " style=" not in page
    assert 'src="/static/js/usage.js"' in page or "js/usage" in page
