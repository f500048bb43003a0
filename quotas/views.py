from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from quotas import selectors

CHART_HEIGHT = 120


@login_required
def usage(request):
    """Your last 30 days: a bar chart of tokens per day (server-drawn SVG) and the totals per model."""
    days = selectors.usage_by_day(user=request.user, days=30)
    peak = max((row["input_tokens"] + row["output_tokens"] for row in days), default=0) or 1
    bars = [
        {
            **row,
            "tokens": row["input_tokens"] + row["output_tokens"],
            "height": round(CHART_HEIGHT * (row["input_tokens"] + row["output_tokens"]) / peak),
            "x": index * 22,
            "y": CHART_HEIGHT - round(CHART_HEIGHT * (row["input_tokens"] + row["output_tokens"]) / peak),
        }
        for index, row in enumerate(days)
    ]
    context = {
        "bars": bars,
        "chart_height": CHART_HEIGHT,
        "chart_width": max(len(bars) * 22, 22),
        "by_model": selectors.usage_by(user=request.user, days=30, dimension="model"),
    }
    return render(request, "quotas/usage.html", context)
