from datetime import timedelta

from django.db.models import Sum
from django.utils import timezone

from quotas.models import UsageDaily


def usage_by_day(*, user=None, days: int = 30) -> list[dict]:
    """Requests, tokens and cost per day from the roll-up, for one user or (user=None) everyone."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(day__gte=since)
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values("day")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by("day")
    )


def usage_by(*, user=None, days: int = 30, dimension: str) -> list[dict]:
    """The same totals per model, agent type or API key over the period."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(day__gte=since)
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values(dimension)
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by(dimension)
    )
