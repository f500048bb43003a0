"""The dashboard's queries stay cheap on a big table: each is bounded by time and read through an index, never a
scan of every run or usage record (checked on PostgreSQL's plans for 100,000 runs over a quarter)."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import dashboard
from tests.conftest import make_user
from tests.factories import AgentFactory

RUNS = 100_000
DAYS = 90


def fill(agent_ids: list[int], user_ids: list[int]) -> None:
    """RUNS runs and their usage records, spread evenly over the last DAYS days, written in two statements."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO agents_agentrun (id, agent_id, user_id, agent_version, model_name, input, output, tool_calls,
                finish_reason, metadata, status, error, input_tokens, output_tokens, cost, latency_ms, cache,
                streamed, idempotency_key, request_id, created_at)
            SELECT gen_random_uuid(), (%(agents)s::bigint[])[1 + i %% cardinality(%(agents)s::bigint[])],
                (%(users)s::bigint[])[1 + i %% cardinality(%(users)s::bigint[])], 1, 'echo', '[]', '', '[]', 'stop',
                '{}', CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'succeeded' END, '', 10 + i %% 90, 20 + i %% 300,
                (i %% 100) / 10000.0, 50 + i %% 2000, 'MISS', false, '', '', %(now)s - i * %(step)s
            FROM generate_series(1, %(runs)s) AS i
            """,
            {
                "agents": agent_ids,
                "users": user_ids,
                "now": timezone.now(),
                "step": timedelta(days=DAYS) / RUNS,
                "runs": RUNS,
            },
        )
        cursor.execute(
            """
            INSERT INTO quotas_usagerecord (run_id, user_id, agent_type, model, input_tokens, output_tokens, cost,
                cached, created_at)
            SELECT id, user_id, 'assistant', model_name, input_tokens, output_tokens, cost, false, created_at
            FROM agents_agentrun
            """
        )
        cursor.execute("ANALYZE agents_agentrun")
        cursor.execute("ANALYZE quotas_usagerecord")


def scanned_tables(plan: dict) -> set[str]:
    """The tables a plan reads with a sequential scan."""
    found = {plan["Relation Name"]} if plan["Node Type"] == "Seq Scan" else set()
    for child in plan.get("Plans", []):
        found |= scanned_tables(child)
    return found


@pytest.mark.django_db
def test_every_dashboard_query_reads_runs_and_usage_through_an_index_on_100k_runs_over_a_quarter():
    users = [make_user(f"user{i}") for i in range(20)]
    agents = [AgentFactory(owner=users[i % len(users)]) for i in range(50)]
    fill([agent.pk for agent in agents], [user.pk for user in users])

    with CaptureQueriesContext(connection) as queries:
        figures = dashboard.dashboard()

    assert len(queries) == 7
    assert figures["windows"][1]["summary"]["requests"] > 7_000  # about a week of the quarter's runs
    for query in queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + query["sql"])
            [[explained]] = cursor.fetchall()
        explained = json.loads(explained) if isinstance(explained, str) else explained
        plan = explained[0]["Plan"]
        assert not scanned_tables(plan) & {"agents_agentrun", "quotas_usagerecord"}, query["sql"]
