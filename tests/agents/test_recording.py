"""Runs recorded through the Redis stream and written by the recorder (`manage.py record_runs`): nothing lost
when a web process or the recorder dies, nothing written twice, the ledger exact once the backlog drains."""

import asyncio
import os
import signal
import sys

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Sum
from django_redis import get_redis_connection

from accounts.models import ApiKey
from agents import recording
from agents.models import AgentRun
from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.ledger import usage_reconcile
from tests.agents.conftest import ask, invoke_all
from tests.conftest import api_client, make_key
from tests.processes import GunicornProcess, PlatformProcess
from tests.quotas.helpers import counter
from tests.tasks.conftest import wait_until


@pytest.fixture
def streamed(settings):
    settings.RUN_RECORDING = "stream"


def ask_with_key(alice, agent, questions):
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))
    for text in questions:
        assert ask(client, agent, text).status_code == 200


@pytest.mark.django_db
def test_answered_runs_wait_in_the_stream_until_the_recorder_writes_them(streamed, alice, agent, fake_llm, client):
    ask_with_key(alice, agent, ["one", "two", "one"])  # the third is a cache hit

    assert AgentRun.objects.count() == 0
    assert recording.backlog() == 3
    assert client.get("/readyz").json()["run_backlog"] == {"status": "ok", "waiting": 3, "limit": 100_000}

    call_command("record_runs", "--once")

    assert recording.backlog() == 0
    assert sorted(AgentRun.objects.values_list("cache", flat=True)) == ["HIT", "MISS", "MISS"]
    assert UsageRecord.objects.count() == 3
    assert ApiKey.objects.get().last_used_at == AgentRun.objects.latest("created_at").created_at


@pytest.mark.django_db
def test_past_the_backlog_limit_requests_write_their_own_runs(streamed, settings, alice, agent, fake_llm):
    settings.RUN_STREAM_MAX_BACKLOG = 2

    ask_with_key(alice, agent, ["one", "two", "three", "four"])

    assert recording.backlog() == 2
    assert AgentRun.objects.count() == 2
    call_command("record_runs", "--once")
    assert AgentRun.objects.count() == UsageRecord.objects.count() == 4


@pytest.mark.django_db
def test_a_batch_written_but_never_acknowledged_is_written_once(streamed, alice, agent, fake_llm):
    # Given a recorder that wrote a batch and died before acknowledging it
    ask_with_key(alice, agent, [f"question {n}" for n in range(5)])
    redis = get_redis_connection("default")
    recording.ensure_group(redis)
    taken = redis.xreadgroup(recording.GROUP, "gone", {recording.STREAM: ">"}, count=10)[0][1]
    recording.write_runs([recording.decode(fields[b"data"]) for _, fields in taken])

    # When the next recorder runs
    call_command("record_runs", "--once")

    # Then the batch is acknowledged, and each run is one row
    assert recording.backlog() == 0
    assert AgentRun.objects.count() == UsageRecord.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_recorder_killed_mid_batch_loses_nothing_and_the_next_one_writes_it_once(
    streamed, alice, agent, fake_llm, tmp_path
):
    # Given 20 runs in the stream, and a recorder stuck writing them (the runs table is locked)
    ask_with_key(alice, agent, [f"question {n}" for n in range(20)])
    redis = get_redis_connection("default")
    recording.ensure_group(redis)  # (the recorder makes it too, but may not have yet when it logs that it started)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE agents_agentrun IN ACCESS EXCLUSIVE MODE")
        recorder = PlatformProcess(
            [sys.executable, "manage.py", "record_runs"], tmp_path / "recorder.log", env={"RUN_RECORDING": "stream"}
        )
        recorder.wait_for_log("recording runs as")
        wait_until(lambda: redis.xpending(recording.STREAM, recording.GROUP)["pending"] == 20)

        # When it is killed in the middle of the batch
        os.kill(recorder.process.pid, signal.SIGKILL)
        recorder.process.wait()

    # Then nothing was written and nothing is lost: the next recorder writes every run, once
    assert AgentRun.objects.count() == 0
    call_command("record_runs", "--once")
    assert AgentRun.objects.count() == UsageRecord.objects.count() == 20
    assert recording.backlog() == 0


@pytest.mark.django_db(transaction=True)
def test_after_a_burst_and_a_killed_web_process_the_ledger_matches_the_counters(alice, agent, fake_llm, tmp_path):
    # Given a token budget, a provider taking 300 ms, and one web process recording through the stream
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000_000)
    key = make_key(alice, scopes=["agents:invoke"])
    fake_llm.latency = 0.3
    web = GunicornProcess(tmp_path / "web.log", workers=1, env={"RUN_RECORDING": "stream"})
    try:
        web.wait_for_log("Booting worker")

        # When 300 calls arrive at once, 100 of them asking the same 10 questions (hits, single flight),
        # and the web process is killed as soon as they are answered
        questions = [f"question {n}" for n in range(200)] + [f"again {n % 10}" for n in range(100)]
        answers = asyncio.run(invoke_all(web.port, agent.pk, key, questions, streams=50))
    finally:
        web.kill()
    assert [status for status, _ in answers] == [200] * 300

    # Then once the recorder has drained the stream, every run is there once, and the ledger agrees with
    # the budget's counter to the token
    call_command("record_runs", "--once")
    assert AgentRun.objects.count() == UsageRecord.objects.count() == 300
    ledger = UsageRecord.objects.aggregate(tokens=Sum("input_tokens") + Sum("output_tokens"))["tokens"]
    assert counter("budget", alice, "tokens_per_day") == ledger > 0
    assert usage_reconcile() == []
    assert fake_llm.chat_calls() == 210, "the repeated questions were asked once each (single flight)"
    assert AgentRun.objects.filter(cache="HIT").count() == 90
