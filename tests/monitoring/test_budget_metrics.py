"""The budget gauges of /metrics, and the example Prometheus rules and Grafana dashboard in docs/: they name
only metrics the platform exports."""

import json
import re
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from prometheus_client import Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from core import metrics as core_metrics
from monitoring.metrics import HELP as BUDGET_HELP
from quotas.models import QuotaPolicy
from quotas.services.ledger import usage_record
from tests.conftest import api_client, make_user
from tests.factories import ApiKeyFactory

DOCS = Path(settings.BASE_DIR) / "docs"


def scrape() -> dict[tuple[str, tuple], float]:
    text = api_client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("switchboard_budget")
    }


def spend(user, usd: str, api_key=None):
    usage_record(
        run_id=uuid.uuid4(),
        user=user,
        api_key=api_key,
        agent_type="assistant",
        model="echo",
        input_tokens=100,
        output_tokens=50,
        cost=Decimal(usd),
        cached=False,
    )


@pytest.mark.django_db
def test_budgets_spent_show_as_used_ratio_and_remaining_per_user_and_key(alice, bob):
    key = ApiKeyFactory(owner=alice, name="ci")
    QuotaPolicy.objects.create(name="daily", applies_to="everyone", cost_per_day=Decimal("10"), tokens_per_day=1000)
    QuotaPolicy.objects.create(name="ci-key", applies_to="api_key", api_key=key, cost_per_month=Decimal("4"))
    spend(alice, "2.5")
    spend(alice, "1", api_key=key)

    found = scrape()
    labels = (("api_key", ""), ("limit", "cost_per_day"), ("policy", "daily"), ("user", "alice"))
    assert found[("switchboard_budget_used_ratio", labels)] == pytest.approx(0.35)
    assert found[("switchboard_budget_remaining", labels)] == pytest.approx(6.5)
    tokens = (("api_key", ""), ("limit", "tokens_per_day"), ("policy", "daily"), ("user", "alice"))
    assert found[("switchboard_budget_remaining", tokens)] == 700
    on_key = (("api_key", key.prefix), ("limit", "cost_per_month"), ("policy", "ci-key"), ("user", "alice"))
    assert found[("switchboard_budget_used_ratio", on_key)] == pytest.approx(0.25)
    assert not [labels for _, labels in found if ("user", "bob") in labels]  # bob spent nothing: no series


@pytest.mark.django_db
def test_the_budget_series_are_capped_the_most_used_first(settings):
    settings.BUDGET_GAUGE_MAX_SERIES = 2
    QuotaPolicy.objects.create(name="daily", applies_to="everyone", cost_per_day=Decimal("10"))
    for name, usd in (("u1", "1"), ("u2", "9"), ("u3", "5")):
        spend(make_user(name), usd)
    users = {dict(labels)["user"] for name, labels in scrape() if name == "switchboard_budget_used_ratio"}
    assert users == {"u2", "u3"}


def exported_names() -> set[str]:
    """Every series and label name the platform exports: core/metrics.py's counters and histograms, the
    in-flight gauge, and the gauges read at scrape time."""
    names = {"http_requests_in_flight", *core_metrics.SCRAPED, *BUDGET_HELP}
    for value in vars(core_metrics).values():
        if isinstance(value, core_metrics.Family):
            metric = value.metric
            names |= set(metric._labelnames)
            if isinstance(metric, Counter):
                names.add(f"{metric._name}_total")
            elif isinstance(metric, Histogram):
                names |= {f"{metric._name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def named_metrics(expression: str) -> set[str]:
    return set(re.findall(r"\b(?:http|gen_ai|switchboard)_[a-z_]+\b", expression))


def test_the_example_prometheus_rules_and_grafana_dashboard_name_only_exported_metrics():
    exported = exported_names()
    rules = yaml.safe_load((DOCS / "prometheus" / "switchboard-rules.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DOCS / "grafana" / "switchboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]

    assert len(expressions) > 25
    unknown = {name for expression in expressions for name in named_metrics(expression)} - exported
    assert not unknown, unknown
