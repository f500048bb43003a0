from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from quotas import selectors

CHART_HEIGHT = 120
BAR_STEP = 22  # pixels per day
DAYS = 30


@login_required
def usage(request):
    """Your last 30 days: a bar chart of tokens per day (server-drawn SVG) and the totals per model."""
    by_day = {row["day"]: row for row in selectors.usage_by_day(user=request.user, days=DAYS)}
    today = timezone.now().date()
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    empty = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0}
    rows = [{"day": day, **by_day.get(day, empty)} for day in days]
    peak = max(row["input_tokens"] + row["output_tokens"] for row in rows) or 1
    bars = []
    for index, row in enumerate(rows):
        tokens = row["input_tokens"] + row["output_tokens"]
        height = round(CHART_HEIGHT * tokens / peak)
        bars.append({**row, "tokens": tokens, "height": height, "x": index * BAR_STEP, "y": CHART_HEIGHT - height})
    context = {
        "bars": bars,
        "peak": peak if peak > 1 else 0,
        "chart_height": CHART_HEIGHT,
        "chart_width": DAYS * BAR_STEP,
        "by_model": selectors.usage_by(user=request.user, days=DAYS, dimension="model"),
    }
    return render(request, "quotas/usage.html", context)
