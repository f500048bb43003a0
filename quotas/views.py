from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone

from quotas import selectors

DAYS = 30
TITLES = {"model": "By model", "agent_type": "By agent type", "key": "By API key"}


@login_required
def usage(request):
    """Your last 30 days, live for today: a chart of tokens and cost per day (drawn by static/js/usage.js from
    the JSON below it, with the per-day table as its text) and a table grouped by day, model, agent type or
    key (`?group=`)."""
    grouping = request.GET.get("group", "model")  # the per-day table is always shown too
    if grouping not in selectors.USAGE_GROUPINGS:
        return HttpResponseBadRequest(f"group must be one of {', '.join(selectors.USAGE_GROUPINGS)}.")
    now = timezone.now()
    by_day = selectors.usage_live_by(user=request.user, grouping="day", days=DAYS, now=now)
    rows = by_day if grouping == "day" else selectors.usage_live_by(user=request.user, grouping=grouping, now=now)
    filled = {row["day"]: row for row in by_day}
    today = now.date()
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    chart = {
        "days": [day.isoformat() for day in days],
        "tokens": [filled[day]["tokens"] if day in filled else 0 for day in days],
        "cost": [float(filled[day]["cost"]) if day in filled else 0 for day in days],
    }
    context = {
        "grouping": grouping,
        "groupings": [(value, heading) for value, (_, heading) in selectors.USAGE_GROUPINGS.items()],
        "heading": selectors.USAGE_GROUPINGS[grouping][1],
        "title": TITLES.get(grouping, "Per day"),
        "rows": rows,
        "by_day": by_day,
        "chart": chart,
        "totals": selectors.usage_totals(user=request.user, now=now),
        "days": DAYS,
    }
    return render(request, "quotas/usage.html", context)
