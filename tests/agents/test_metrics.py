"""What the invocation pipeline shows in /metrics: runs by outcome, cache hits, quota refusals, provider errors,
streams' first chunks; model, provider and agent-type labels only from the catalog."""

import asyncio
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from agents import metrics as agent_metrics
from agents.models import Agent, AgentType, LanguageModel, Provider
from agents.services.pipeline import Call
from quotas.models import QuotaPolicy
from tests.agents.conftest import post
from tests.conftest import in_one_minute, make_key
from tests.metrics import scrape, value
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-test-token"
FAKE = {"gen_ai_provider_name": "fake", "gen_ai_request_model": "fake-gpt"}


@pytest.fixture
def web(tmp_path):
    server = GunicornProcess(
        tmp_path / "gunicorn.log",
        workers=1,
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "METRICS_WIPE_ON_START": "true",
            "METRICS_TOKEN": TOKEN,
        },
    )
    server.wait_for_log("Booting worker", timeout=30)
    yield server
    server.stop()


def invoke(web, agent, key, text: str, **extra) -> tuple[int, bytes]:
    body = {"messages": [{"role": "user", "content": text}], **extra}
    return asyncio.run(post(web.port, f"/api/v1/agents/{agent.pk}/invoke", body, key))


def metrics(web) -> str:
    status, text = scrape(web.url, TOKEN)
    assert status == 200
    return text


def test_a_cache_hit_a_quota_refusal_and_a_provider_error_each_show_in_their_metric(web, alice, agent, fake_llm):
    key = make_key(alice, scopes=["agents:invoke"])

    # Given an answer asked for twice: a miss, then a hit
    assert invoke(web, agent, key, "same question")[0] == 200
    assert invoke(web, agent, key, "same question")[0] == 200
    text = metrics(web)
    assert value(text, "switchboard_runs_total", status="succeeded", cache="MISS", agent_type="helper") == 1
    assert value(text, "switchboard_runs_total", status="succeeded", cache="HIT", agent_type="helper") == 1
    assert value(text, "gen_ai_client_token_usage_count", gen_ai_token_type="input", **FAKE) == 1  # a hit calls no one

    # When the provider fails (a 500: we answer 502)
    fake_llm.failures = [500]
    assert invoke(web, agent, key, "another question")[0] == 502
    text = metrics(web)
    errors = {"gen_ai_provider_name": "fake", "status": "502", "error_type": "bad_answer"}
    assert value(text, "switchboard_provider_errors_total", **errors) == 1
    assert value(text, "gen_ai_client_operation_duration_seconds_count", error_type="bad_answer", **FAKE) == 1
    assert value(text, "switchboard_runs_total", status="failed", cache="MISS", agent_type="helper") == 1

    # When a quota of two requests a minute refuses the third
    QuotaPolicy.objects.create(name="tight", requests_per_minute=2)
    time.sleep(1.5)  # a policy reaches the other processes within a second (through Redis), not at once
    in_one_minute()
    statuses = [invoke(web, agent, key, f"question {n}")[0] for n in range(3)]
    assert statuses == [200, 200, 429]
    text = metrics(web)
    assert value(text, "switchboard_quota_refusals_total", limit="requests_per_minute") == 1
    assert value(text, "http_requests_total", route="api/v1/agents/<str:pk>/invoke", status="429") == 1


def test_a_stream_shows_its_time_to_first_chunk_and_its_whole_duration(web, alice, agent, fake_llm):
    key = make_key(alice, scopes=["agents:invoke"])

    status, body = invoke(web, agent, key, "tell me a story", stream=True)

    assert status == 200 and b"event: done" in body
    text = metrics(web)
    assert value(text, "gen_ai_server_time_to_first_token_seconds_count", **FAKE) == 1
    assert value(text, "gen_ai_client_operation_duration_seconds_count", error_type="", **FAKE) == 1
    assert value(text, "gen_ai_client_token_usage_count", gen_ai_token_type="output", **FAKE) == 1


def test_the_scrape_reads_the_breakers_the_run_backlog_and_the_queues(web, agent):
    text = metrics(web)
    assert value(text, "switchboard_breaker_state", gen_ai_provider_name="fake") == 0
    assert value(text, "switchboard_breaker_state", gen_ai_provider_name="echo") == 0
    assert "switchboard_run_backlog " in text
    assert {"celery", "webhooks", "agents"} <= {
        line.split('"')[1] for line in text.splitlines() if line.startswith("switchboard_queue_depth{")
    }


def call_on(agent: Agent) -> Call:
    return Call(user=agent.owner, agent=agent, messages=[])


def test_names_outside_the_catalog_fold_into_other_and_a_new_model_is_named_at_once(agent):
    # Given labels read once (the catalog's names are then kept in the process)
    assert async_to_sync(agent_metrics.labels)(call_on(agent)) == ("fake", "fake-gpt", "helper")

    # When a call carries names the catalog does not hold (an object that was never saved)
    stranger = Agent(
        owner=agent.owner,
        name="x",
        agent_type=AgentType(slug="made-up-type"),
        model=LanguageModel(name="made-up-model", provider=Provider(name="made-up-provider")),
    )
    # Then each is `other`
    assert async_to_sync(agent_metrics.labels)(call_on(stranger)) == ("other", "other", "other")

    # And a model added to the catalog is named by the next call, not `other`
    new_model = LanguageModel.objects.create(
        name="fresh-model",
        provider=agent.agent_type.default_model.provider,
        provider_model="gpt-fresh",
        input_price_per_mtok=Decimal(1),
        output_price_per_mtok=Decimal(1),
    )
    agent.model = new_model
    assert async_to_sync(agent_metrics.labels)(call_on(agent)) == ("fake", "fresh-model", "helper")
