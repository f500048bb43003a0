"""Budget gauges for /metrics, read at scrape time from the usage ledger (quotas.selectors.budget_usage).

They are the one exception to the rule that no label names a user or a key: a budget belongs to one. The
series are bounded by the budgets operators set and the users or keys that spent something of one in its
current window (a user who spent nothing has no series: their whole budget remains), and capped at
BUDGET_GAUGE_MAX_SERIES, the most used first.
"""

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from accounts.models import ApiKey, User
from agents.models import AgentType
from quotas.selectors import budget_usage

LABELS = ["policy", "limit", "user", "api_key"]
HELP = {
    "switchboard_budget_used_ratio": "Share of a token or cost budget a user (or key) has spent in its current "
    "window (1 = all of it), for those who spent something.",
    "switchboard_budget_remaining": "What is left of a token or cost budget in its current window, in the "
    "limit's unit (tokens, or USD for cost_*), for those who spent something.",
}


class BudgetCollector:
    def collect(self):
        type_limits = dict(AgentType.objects.filter(tokens_per_day__isnull=False).values_list("slug", "tokens_per_day"))
        uses = sorted(budget_usage(type_limits=type_limits), key=lambda use: -use.percent)
        uses = uses[: settings.BUDGET_GAUGE_MAX_SERIES]
        names = dict(User.objects.filter(pk__in={use.user_id for use in uses}).values_list("pk", "username"))
        keys = {
            key.pk: key.prefix
            for key in ApiKey.objects.filter(pk__in={use.api_key_id for use in uses if use.api_key_id})
        }
        used = GaugeMetricFamily("switchboard_budget_used_ratio", HELP["switchboard_budget_used_ratio"], labels=LABELS)
        left = GaugeMetricFamily("switchboard_budget_remaining", HELP["switchboard_budget_remaining"], labels=LABELS)
        for use in uses:
            labels = [use.policy, use.limit, names.get(use.user_id, ""), keys.get(use.api_key_id, "")]
            used.add_metric(labels, round(use.percent / 100, 6))
            left.add_metric(labels, float(use.remaining))
        yield used
        yield left
