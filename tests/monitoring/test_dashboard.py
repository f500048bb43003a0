"""The operators' dashboard on the admin index: today's figures, the charts' buckets and percentiles over the last
day and week, the top users and agents by cost, the status tables (a recent readiness answer reused for a few
seconds), and the page itself."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from celery import current_app
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents import recording
from agents.models import AgentRun
from monitoring import dashboard
from tasks import heartbeats
from tests.conftest import make_user
from tests.factories import AgentFactory, RunFactory

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # a Tuesday; the day's window starts Monday 15:00


def recorded(agent, *, at, latency_ms=100.0, cost="0.01", tokens=(10, 20), status="succeeded", user=None):
    """A run as the recorder writes it (with its usage record), at a chosen time, latency and cost."""
    run = AgentRun(
        agent=agent,
        user=user or agent.owner,
        agent_version=agent.version,
        model_name="echo",
        input=[{"role": "user", "content": "hi"}],
        status=status,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=Decimal(cost),
        latency_ms=latency_ms,
        cache=AgentRun.Cache.MISS,
        created_at=at,
    )
    recording.write_runs([(run, recording.usage_of(run, agent_type=agent.agent_type.slug, cached=False), None)])
    return run


@pytest.fixture
def alices_agent(alice):
    return AgentFactory(owner=alice, name="researcher")


@pytest.mark.django_db
def test_the_day_chart_has_24_hourly_buckets_each_with_its_requests_errors_latency_percentiles_tokens_and_cost(
    alices_agent,
):
    for minute, latency in [(5, 100), (10, 200), (20, 300), (25, 400)]:
        recorded(alices_agent, at=NOW.replace(minute=minute), latency_ms=latency, cost="0.25", tokens=(100, 50))
    recorded(alices_agent, at=NOW.replace(hour=13, minute=10), latency_ms=50, status="failed", cost="0")
    recorded(alices_agent, at=NOW - timedelta(hours=30))  # before the window

    series = dashboard.window_series(window=dashboard.DAY, now=NOW)

    buckets = series["buckets"]
    assert len(buckets) == 24
    assert (series["start"], series["end"]) == (
        datetime(2026, 3, 9, 15, tzinfo=UTC),
        datetime(2026, 3, 10, 15, tzinfo=UTC),
    )
    assert [row["bucket"].hour for row in buckets[:3]] == [15, 16, 17]
    now_bucket, hour_before = buckets[-1], buckets[-2]
    assert now_bucket["bucket"] == datetime(2026, 3, 10, 14, tzinfo=UTC)
    assert (now_bucket["requests"], now_bucket["errors"]) == (4, 0)
    assert (now_bucket["p50"], now_bucket["p95"]) == (250.0, 385.0)  # interpolated: percentile_cont
    assert (now_bucket["input_tokens"], now_bucket["output_tokens"], now_bucket["cost"]) == (400, 200, Decimal("1"))
    assert (hour_before["requests"], hour_before["errors"], hour_before["p95"]) == (1, 1, 50.0)
    quiet = buckets[0]
    assert (quiet["requests"], quiet["p50"], quiet["p95"], quiet["cost"]) == (0, None, None, 0)

    summary = series["summary"]
    assert (summary["requests"], summary["errors"], summary["cost"]) == (5, 1, Decimal("1"))
    assert summary["busiest"]["bucket"] == summary["slowest"]["bucket"] == now_bucket["bucket"]


@pytest.mark.django_db
def test_the_week_chart_has_28_six_hour_buckets_and_leaves_out_older_runs(alices_agent):
    recorded(alices_agent, at=NOW - timedelta(hours=30), latency_ms=80)  # Monday 08:30: the 06:00 bucket
    recorded(alices_agent, at=NOW - timedelta(days=6), latency_ms=120)  # Wednesday 14:30: the 12:00 bucket
    recorded(alices_agent, at=NOW - timedelta(days=8))  # before the window

    series = dashboard.window_series(window=dashboard.WEEK, now=NOW)

    buckets = series["buckets"]
    assert len(buckets) == 28
    assert series["start"] == datetime(2026, 3, 3, 18, tzinfo=UTC)
    assert {row["bucket"] for row in buckets} == {series["start"] + i * timedelta(hours=6) for i in range(28)}
    busy = {row["bucket"]: (row["requests"], row["p50"]) for row in buckets if row["requests"]}
    assert busy == {datetime(2026, 3, 9, 6, tzinfo=UTC): (1, 80.0), datetime(2026, 3, 4, 12, tzinfo=UTC): (1, 120.0)}
    assert series["summary"]["requests"] == 2


@pytest.mark.django_db
def test_todays_figures_count_the_runs_since_midnight(alices_agent):
    recorded(alices_agent, at=NOW.replace(hour=0, minute=1), cost="0.5", tokens=(7, 3))
    recorded(alices_agent, at=NOW.replace(hour=9), cost="0.25", tokens=(5, 5), status="failed")
    recorded(alices_agent, at=NOW.replace(hour=0, minute=0) - timedelta(minutes=10), cost="9")  # yesterday

    today = dashboard.today_figures(now=NOW)

    assert (today["requests"], today["tokens"], today["cost"], today["errors"]) == (2, 20, Decimal("0.75"), 1)


@pytest.mark.django_db
def test_the_top_users_and_agents_by_cost_differ_between_the_last_day_and_the_last_week(alice, bob, alices_agent):
    bobs_agent = AgentFactory(owner=bob, name="summariser")
    recorded(alices_agent, at=NOW - timedelta(hours=1), cost="2")
    recorded(alices_agent, at=NOW - timedelta(hours=2), cost="1", user=bob)  # bob calls alice's agent
    recorded(bobs_agent, at=NOW - timedelta(hours=3), cost="0.5")
    recorded(bobs_agent, at=NOW - timedelta(days=3), cost="10")

    day_users = dashboard.top_users(window=dashboard.DAY, now=NOW)
    week_users = dashboard.top_users(window=dashboard.WEEK, now=NOW)
    day_agents = dashboard.top_agents(window=dashboard.DAY, now=NOW)
    week_agents = dashboard.top_agents(window=dashboard.WEEK, now=NOW)

    assert [(row["user__username"], row["cost"], row["requests"]) for row in day_users] == [
        ("alice", Decimal("2"), 1),
        ("bob", Decimal("1.5"), 2),
    ]
    assert [(row["user__username"], row["cost"]) for row in week_users] == [("bob", Decimal("11.5")), ("alice", 2)]
    assert [(row["agent__name"], row["agent__owner__username"], row["cost"]) for row in day_agents] == [
        ("researcher", "alice", Decimal("3")),
        ("summariser", "bob", Decimal("0.5")),
    ]
    assert [(row["agent__name"], row["cost"], row["tokens"]) for row in week_agents] == [
        ("summariser", Decimal("10.5"), 60),
        ("researcher", Decimal("3"), 60),
    ]


@pytest.mark.django_db
def test_the_top_tables_keep_the_five_biggest_spenders(alice):
    for i in range(7):
        user = make_user(f"user{i}")
        recorded(AgentFactory(owner=user), at=NOW - timedelta(minutes=5), cost=str(i + 1))

    users = dashboard.top_users(window=dashboard.DAY, now=NOW)

    assert [row["user__username"] for row in users] == ["user6", "user5", "user4", "user3", "user2"]


@pytest.mark.django_db
def test_the_whole_dashboard_takes_seven_queries_however_many_runs_users_and_agents_there_are(
    alice, bob, alices_agent, django_assert_num_queries
):
    recorded(alices_agent, at=NOW - timedelta(minutes=5))
    with django_assert_num_queries(7):
        dashboard.dashboard(now=NOW)

    for hours in range(0, 160, 3):
        recorded(AgentFactory(owner=bob), at=NOW - timedelta(hours=hours), latency_ms=hours, user=alice)
    with django_assert_num_queries(7):
        figures = dashboard.dashboard(now=NOW)
    assert figures["today"]["requests"] == 6  # 14:25, and 14:30, 11:30, 08:30, 05:30, 02:30
    assert [len(top["agents"]) for top in figures["top"]] == [dashboard.TOP, dashboard.TOP]


@pytest.mark.django_db
def test_the_charts_data_has_a_time_and_a_value_per_bucket_for_every_series(alices_agent):
    recorded(alices_agent, at=NOW, latency_ms=42, cost="0.125")

    data = dashboard.chart_data([dashboard.window_series(window=window, now=NOW) for window in dashboard.WINDOWS])

    assert data["timezone"] == "UTC"
    day = data["windows"]["day"]
    assert day["per"] == "per hour" and data["windows"]["week"]["per"] == "per 6 hours"
    assert day["t"][-1] == int(datetime(2026, 3, 10, 14, tzinfo=UTC).timestamp())
    assert (day["requests"][-1], day["p95"][-1], day["cost"][-1], day["p50"][0]) == (1, 42.0, 0.125, None)
    assert {len(values) for values in day.values() if isinstance(values, list)} == {24}


def test_every_section_of_the_readiness_answer_becomes_a_status_table_whatever_its_keys():
    body = {
        "status": "ok",
        "down": [],
        "checks": {
            "database": {"ok": True, "latency_ms": 1.5},
            "broker": {"ok": False, "latency_ms": 3000, "error": "Timeout"},
        },
        "workers": {"agents": {"status": "ok", "age_seconds": 4}, "webhooks": {"status": "missing"}},
        "beat": {"status": "stale", "age_seconds": 400.0},
        "run_backlog": {"status": "ok", "waiting": 0, "limit": 10000},
    }

    sections = dashboard.status_sections(body)

    assert [section["name"] for section in sections] == ["Checks", "Workers", "Beat", "Run backlog"]
    database, broker = sections[0]["rows"]
    assert (database["name"], database["status"], database["state"]) == ("Database", "ok", "good")
    assert (broker["status"], broker["state"], broker["details"]) == (
        "down",
        "bad",
        [("Latency ms", 3000), ("Error", "Timeout")],
    )
    assert [(row["name"], row["state"]) for row in sections[1]["rows"]] == [("Agents", "good"), ("Webhooks", "bad")]
    [beat] = sections[2]["rows"]
    assert (beat["name"], beat["status"], beat["state"], beat["details"]) == (
        "Beat",
        "stale",
        "bad",
        [("Age seconds", 400.0)],
    )
    assert dashboard.state_of("unknown") == "warn"


@pytest.mark.django_db
def test_a_message_no_worker_takes_shows_in_its_queues_row_with_the_time_it_has_waited(settings):
    waiting = "dashboard-waiting"  # a queue of this test's own, which no worker consumes
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, "tests.unclaimed": {"queue": waiting}}
    current_app.send_task("tests.unclaimed", queue=waiting)
    try:
        time.sleep(1)
        queues = {queue["name"]: queue for queue in dashboard.system_status()["queues"]}
    finally:
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_purge(waiting)

    assert queues[waiting]["depth"] == 1
    assert queues[waiting]["oldest_seconds"] >= 1


def worker_status(queue_name: str) -> str:
    """The dashboard's status of the worker for `queue_name`."""
    [workers] = [section for section in dashboard.system_status()["sections"] if section["name"] == "Workers"]
    return {row["name"]: row["status"] for row in workers["rows"]}[dashboard.humanise(queue_name)]


@pytest.mark.django_db
def test_the_status_reuses_the_last_readiness_answer_for_a_few_seconds_then_shows_what_changed(
    client, settings, monkeypatch
):
    monkeypatch.setattr(dashboard, "STATUS_MAX_AGE_SECONDS", 1.5)
    queue_name = "dashboard-reused"  # a queue of this test's own, its heartbeat written and removed by hand
    settings.HEARTBEAT_QUEUES = [*settings.HEARTBEAT_QUEUES, queue_name]
    heartbeats.record_worker_heartbeat(queue_name=queue_name, hostname="worker@test")
    try:
        # Given /readyz has just seen the queue's worker
        assert client.get(reverse("readyz")).json()["workers"][queue_name]["status"] == "ok"

        # When the worker's heartbeat goes, the dashboard shows /readyz's answer a moment longer (no checks run)
        cache.delete(heartbeats.worker_key(queue_name))
        assert worker_status(queue_name) == "ok"
        # while /readyz itself always checks afresh, and the dashboard then shows that newer answer
        assert client.get(reverse("readyz")).json()["workers"][queue_name] == {"status": "missing"}
        assert worker_status(queue_name) == "missing"

        # When the worker comes back, the dashboard shows it within STATUS_MAX_AGE_SECONDS
        heartbeats.record_worker_heartbeat(queue_name=queue_name, hostname="worker@test")
        assert worker_status(queue_name) == "missing"
        time.sleep(dashboard.STATUS_MAX_AGE_SECONDS)
        assert worker_status(queue_name) == "ok"
    finally:
        cache.delete(heartbeats.worker_key(queue_name))


# --- the page --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_operator_opens_the_admin_index_and_sees_todays_figures_status_charts_top_spenders_and_the_apps(
    client, operator, alice, alices_agent
):
    RunFactory(agent=alices_agent, user=alice, text="hello from the pipeline")
    recorded(alices_agent, at=dashboard.timezone.now(), cost="0.5", status="failed")
    client.force_login(operator)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Operators&#x27; dashboard | Switchboard administration</title>" in page
    assert "Django administration" not in page
    for figure in [
        "<dt>Requests</dt><dd>2</dd>",
        "<dt>Cost</dt><dd>$0.5000</dd>",
        'Errors</dt><dd class="ops-bad">1</dd>',
    ]:
        assert figure in page, figure
    for text in ["System status", "Database", "Queues", "No open alerts.", "Last 24 hours", "Last 7 days"]:
        assert text in page, text
    assert page.count('class="ops-plot"') == 8
    assert 'id="dashboard-data" type="application/json"' in page
    assert f'href="{reverse("admin:agents_agent_change", args=[alices_agent.pk])}">researcher</a> (alice)' in page
    # The apps' list below the dashboard, the agents and quotas first.
    assert page.index("app-agents module") < page.index("app-quotas module") < page.index("app-accounts module")
    assert page.index('id="ops-apps"') > page.index('id="ops-top"')


@pytest.mark.django_db
def test_the_admin_index_makes_as_many_queries_with_many_runs_as_with_one(client, operator, alice, alices_agent):
    client.force_login(operator)
    recorded(alices_agent, at=dashboard.timezone.now())
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("admin:index")).status_code == 200

    for i in range(8):
        user = make_user(f"user{i}")
        recorded(AgentFactory(owner=user), at=dashboard.timezone.now() - timedelta(hours=i * 20), user=user)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("admin:index")).status_code == 200

    assert len(many) == len(few)


@pytest.mark.django_db
def test_a_member_who_opens_the_admin_index_is_sent_to_the_login_page(client, alice):
    client.force_login(alice)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_with_the_broker_unreachable_the_index_still_answers_and_says_the_queues_are_unknown(
    client, operator, settings
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    client.force_login(operator)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "(down: broker)" in page
    assert "The broker did not answer: queue depths unknown." in page
