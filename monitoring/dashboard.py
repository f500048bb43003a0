"""The operators' dashboard on the admin index: today's figures, charts of the last day and week, the top
spenders, the queues and the platform's status.

Every read is bounded by time and served by the `created_at` indexes of the runs and the usage ledger; a chart
window is one aggregate query (buckets by `date_bin`, latency percentiles by `percentile_cont`), so the
dashboard costs the same seven queries however many runs there are. Charts and top agents read the runs;
top users read the usage ledger (what quotas and the usage pages count as spent).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Aggregate, Count, DateTimeField, DurationField, FloatField, Func, Q, Sum, Value
from django.utils import timezone

from agents.models import AgentRun
from quotas.models import UsageRecord
from tasks.selectors import queue_depths, queue_oldest_ages, worker_queues

TOP = 5  # rows in each top-by-cost table
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets start at whole hours (and 00, 06, 12, 18 h) UTC


@dataclass(frozen=True)
class Window:
    name: str  # the key of the window in the page's data
    title: str
    bucket: timedelta
    buckets: int

    @property
    def per(self) -> str:
        """The bucket in words, for axis labels and tables ("per hour")."""
        hours = int(self.bucket.total_seconds() // 3600)
        return "per hour" if hours == 1 else f"per {hours} hours"

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """From the start of the first bucket to the end of the one holding `now`."""
        current = ORIGIN + (now - ORIGIN) // self.bucket * self.bucket
        return current - (self.buckets - 1) * self.bucket, current + self.bucket


DAY = Window("day", "Last 24 hours", timedelta(hours=1), 24)
WEEK = Window("week", "Last 7 days", timedelta(hours=6), 28)
WINDOWS = (DAY, WEEK)


class DateBin(Func):
    """PostgreSQL's `date_bin`: the start of the `stride`-long bucket holding the timestamp."""

    function = "date_bin"
    output_field = DateTimeField()

    def __init__(self, stride: timedelta, expression):
        super().__init__(Value(stride, output_field=DurationField()), expression, Value(ORIGIN))


class Percentile(Aggregate):
    """`percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`: the interpolated percentile."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float):
        if not 0 <= fraction <= 1:
            raise ValueError("a percentile's fraction lies between 0 and 1")
        super().__init__(expression, fraction=repr(float(fraction)))


FAILED = Q(status=AgentRun.Status.FAILED)


def dashboard(*, now: datetime | None = None) -> dict:
    """Everything the dashboard shows from PostgreSQL: seven queries."""
    now = now or timezone.now()
    return {
        "today": today_figures(now=now),
        "windows": [window_series(window=window, now=now) for window in WINDOWS],
        "top": [
            {
                "window": window,
                "users": top_users(window=window, now=now),
                "agents": top_agents(window=window, now=now),
            }
            for window in WINDOWS
        ],
    }


def today_figures(*, now: datetime) -> dict:
    """Requests, tokens, cost and errors since midnight (in the site's time zone)."""
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    totals = AgentRun.objects.filter(created_at__gte=midnight, created_at__lte=now).aggregate(
        requests=Count("id"),
        errors=Count("id", filter=FAILED),
        input_tokens=Sum("input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
        cost=Sum("cost", default=Decimal(0)),
    )
    return {**totals, "tokens": totals["input_tokens"] + totals["output_tokens"], "since": midnight}


def window_series(*, window: Window, now: datetime) -> dict:
    """One query: per bucket, requests and errors, latency p50 and p95, tokens in and out, and cost. Every
    bucket is there, empty ones with zeros (and no latency)."""
    start, end = window.bounds(now)
    rows = (
        AgentRun.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(bucket=DateBin(window.bucket, "created_at"))
        .values("bucket")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=FAILED),
            p50=Percentile("latency_ms", fraction=0.5),
            p95=Percentile("latency_ms", fraction=0.95),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by("bucket")
    )
    found = {row["bucket"]: row for row in rows}
    empty = {"requests": 0, "errors": 0, "p50": None, "p95": None, "input_tokens": 0, "output_tokens": 0}
    buckets = []
    for i in range(window.buckets):
        at = start + i * window.bucket
        row = {**empty, "cost": Decimal(0), **found.get(at, {}), "bucket": at}
        for percentile in ("p50", "p95"):
            if row[percentile] is not None:
                row[percentile] = round(row[percentile], 1)
        buckets.append(row)
    return {"window": window, "start": start, "end": end, "buckets": buckets, "summary": summarise(buckets)}


def summarise(buckets: list[dict]) -> dict:
    """The window in a few figures, for the charts' text alternatives."""
    busiest = max(buckets, key=lambda row: row["requests"])
    slowest = max(buckets, key=lambda row: row["p95"] if row["p95"] is not None else -1)
    return {
        "requests": sum(row["requests"] for row in buckets),
        "errors": sum(row["errors"] for row in buckets),
        "input_tokens": sum(row["input_tokens"] for row in buckets),
        "output_tokens": sum(row["output_tokens"] for row in buckets),
        "cost": sum((row["cost"] for row in buckets), Decimal(0)),
        "busiest": busiest if busiest["requests"] else None,
        "slowest": slowest if slowest["p95"] is not None else None,
    }


def top_users(*, window: Window, now: datetime) -> list[dict]:
    """The users who spent most in the window, from the usage ledger."""
    start, end = window.bounds(now)
    return list(
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("user_id", "user__username")
        .annotate(
            cost=Sum("cost"),
            requests=Count("id"),
            tokens=Sum("input_tokens") + Sum("output_tokens"),
        )
        .order_by("-cost", "-requests", "user_id")[:TOP]
    )


def top_agents(*, window: Window, now: datetime) -> list[dict]:
    """The agents whose runs cost most in the window, with their owners."""
    start, end = window.bounds(now)
    return list(
        AgentRun.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("agent_id", "agent__name", "agent__owner__username")
        .annotate(
            cost=Sum("cost"),
            requests=Count("id"),
            tokens=Sum("input_tokens") + Sum("output_tokens"),
        )
        .order_by("-cost", "-requests", "agent_id")[:TOP]
    )


def chart_data(windows: list[dict]) -> dict:
    """The series the charts draw (for `json_script`): times in Unix seconds, numbers as JSON numbers."""
    data = {"timezone": settings.TIME_ZONE, "windows": {}}
    for series in windows:
        window, buckets = series["window"], series["buckets"]
        data["windows"][window.name] = {
            "per": window.per,
            "t": [int(row["bucket"].timestamp()) for row in buckets],
            **{
                key: [row[key] for row in buckets]
                for key in ("requests", "errors", "p50", "p95", "input_tokens", "output_tokens")
            },
            "cost": [float(row["cost"]) for row in buckets],
        }
    return data


# --- the platform's status: the readiness checks and the broker's queues ----------------------------------

GOOD = {"ok"}
BAD = {"down", "unavailable", "failed", "stale", "missing", "dead", "behind"}


# What /readyz answers (platform_site.health.readiness, called with `max_age`): platform_site wires it in at
# start-up (its apps.py), since no app imports platform_site.
readiness = None
# The status shown may be this old: the process's last readiness answer (the dashboard's own, or /readyz's) is
# reused meanwhile, so reloading the page runs no checks; a dependency that goes down shows within this long.
STATUS_MAX_AGE_SECONDS = 5


def system_status() -> dict:
    """What /readyz reports, laid out as tables whatever sections it has (dependencies, workers, beat, the run
    backlog...), and each queue's depth and oldest message. Bounded in time: every probe has its own timeout,
    and the queues are not asked for when the broker check already failed."""
    body = readiness(max_age=STATUS_MAX_AGE_SECONDS) if readiness else {}
    down = body.get("down", [])
    names = worker_queues()
    depths = {} if "broker" in down else queue_depths(names)
    ages = queue_oldest_ages(names) if depths else {}
    return {
        "state": state_of(body.get("status", "")),
        "status": body.get("status", ""),
        "down": down,
        "sections": status_sections(body),
        "queues": [
            {"name": name, "depth": depth, "oldest_seconds": None if name not in ages else round(ages[name])}
            for name, depth in sorted(depths.items())
        ],
    }


def status_sections(body: dict) -> list[dict]:
    """A section per entry of the readiness body: a mapping of mappings (`checks`, `workers`) is a row per
    name; a mapping of values (`heartbeat`, `run_backlog`, `beat`) is one row."""
    sections = []
    for key, value in body.items():
        if key in ("status", "down"):
            continue
        if isinstance(value, dict) and value and all(isinstance(item, dict) for item in value.values()):
            rows = [status_row(name, item) for name, item in value.items()]
        else:
            rows = [status_row(key, value if isinstance(value, dict) else {"value": value})]
        sections.append({"name": humanise(key), "rows": rows})
    return sections


def status_row(name: str, fields: dict) -> dict:
    if "ok" in fields:
        status = "ok" if fields["ok"] else "down"
    else:
        status = str(fields.get("status", ""))
    details = [(humanise(key), value) for key, value in fields.items() if key not in ("ok", "status")]
    return {"name": humanise(name), "status": status or "unknown", "state": state_of(status), "details": details}


def state_of(status: str) -> str:
    """good, bad or warn: the colour a status is shown in (beside its word)."""
    return "good" if status in GOOD else "bad" if status in BAD else "warn"


def humanise(key: str) -> str:
    return str(key).replace("_", " ").capitalize()


# --- the apps' list under the dashboard -----------------------------------------------------------------

# What operators use most first: the catalog and runs, quotas and usage, people, then the rest; apps not
# named here follow in Django's (alphabetical) order.
APP_ORDER = [
    "monitoring",
    "agents",
    "quotas",
    "accounts",
    "workflows",
    "memory",
    "tasks",
    "django_celery_beat",
    "auth",
    "auditlog",
    "axes",
    "django_celery_results",
]


def apps_in_order(app_list: list[dict]) -> list[dict]:
    rank = {label: i for i, label in enumerate(APP_ORDER)}
    return sorted(app_list, key=lambda app: rank.get(app["app_label"], len(APP_ORDER)))
