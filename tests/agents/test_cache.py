"""The response cache: hits, keys, TTLs, bypass, single flight, stale answers, invalidation, outages."""

import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection

from agents.models import AgentRun
from agents.services.agents import agent_update
from agents.services.invocation import agent_invoke
from tests.agents.conftest import ask
from tests.conftest import api_client, make_user


def change(agent_type, **fields):
    """An operator's change, saved as the admin saves it: every process drops what it kept of it."""
    for name, value in fields.items():
        setattr(agent_type, name, value)
    agent_type.save()


@pytest.mark.django_db
def test_the_same_question_is_answered_from_the_cache_costing_no_tokens(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    again = ask(client, agent)

    assert again["X-Cache"] == "HIT" and again.json()["output"] == "echo: hello there"
    assert fake_llm.chat_calls() == 1
    run = AgentRun.objects.get(pk=again.json()["run"])
    assert (run.cache, run.input_tokens, run.output_tokens, run.cost) == ("HIT", 0, 0, 0)


@pytest.mark.django_db
def test_the_cache_key_holds_what_changes_the_answer_and_nothing_else(alice, bob, agent, agent_type, fake_llm):
    client = api_client(alice)
    assert ask(client, agent, "one")["X-Cache"] == "MISS"
    assert ask(client, agent, "two")["X-Cache"] == "MISS", "other messages"
    agent_update(agent=agent, name="renamed")
    assert ask(client, agent, "one")["X-Cache"] == "HIT", "the name does not shape the answer"
    agent_update(agent=agent, temperature=0.1)
    assert agent.version == 2
    assert ask(client, agent, "one")["X-Cache"] == "MISS", "a new configuration"

    from accounts.services import object_share

    object_share(obj=agent, owner=alice, user=bob, level="use")
    assert ask(api_client(bob), agent, "one")["X-Cache"] == "MISS", "per-user scope: bob gets his own answer"
    change(agent_type, cache_scope="shared")
    agent.refresh_from_db()
    ask(client, agent, "three")
    assert ask(api_client(bob), agent, "three")["X-Cache"] == "HIT", "shared scope"


@pytest.mark.django_db
def test_ttl_per_agent_type_and_zero_turns_caching_off(alice, agent, agent_type, fake_llm):
    client = api_client(alice)
    change(agent_type, cache_ttl_seconds=1)
    ask(client, agent)
    assert ask(client, agent)["X-Cache"] == "HIT"
    time.sleep(1.1)
    assert ask(client, agent)["X-Cache"] == "MISS"

    change(agent_type, cache_ttl_seconds=0)
    assert [ask(client, agent)["X-Cache"] for _ in range(2)] == ["BYPASS", "BYPASS"]


@pytest.mark.django_db
def test_cache_control_no_cache_bypasses_the_cache(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    bypass = ask(client, agent, HTTP_CACHE_CONTROL="no-cache")

    assert bypass["X-Cache"] == "BYPASS" and fake_llm.chat_calls() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_misses_make_one_provider_call(alice, agent, fake_llm):
    fake_llm.latency = 0.5
    outcomes, barrier = [], threading.Barrier(5)

    def invoke():
        barrier.wait()
        try:
            result = async_to_sync(agent_invoke)(
                user=alice, agent=agent, messages=[{"role": "user", "content": "same"}]
            )
            outcomes.append(result.cache)
        finally:
            connection.close()

    threads = [threading.Thread(target=invoke) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert fake_llm.chat_calls() == 1
    assert sorted(outcomes) == ["HIT", "HIT", "HIT", "HIT", "MISS"]


@pytest.mark.django_db
def test_an_expired_answer_is_served_marked_stale_while_the_provider_is_down(alice, agent, agent_type, fake_llm):
    client = api_client(alice)
    change(agent_type, cache_ttl_seconds=1)
    ask(client, agent)
    time.sleep(1.1)
    fake_llm.failures = [500]

    stale = ask(client, agent)

    assert stale.status_code == 200 and stale["X-Cache"] == "STALE"
    assert stale.json()["output"] == "echo: hello there"
    fake_llm.failures = [500]
    assert ask(client, agent, "never asked").status_code == 502, "no stale answer to fall back on"


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["entry", "agent", "agent_type", "all"])
def test_each_invalidation_scope_drops_the_cached_answer(alice, agent, fake_llm, scope):
    client = api_client(alice)
    first = ask(client, agent)
    body = {
        "entry": {"scope": "entry", "key": first["X-Cache-Key"]},
        "agent": {"scope": "agent", "agent": agent.pk},
        "agent_type": {"scope": "agent_type", "agent_type": "helper"},
        "all": {"scope": "all"},
    }[scope]

    assert api_client(alice).post("/api/v1/cache/invalidate", body, format="json").status_code == 403
    response = api_client(make_user("olga", role="operator")).post("/api/v1/cache/invalidate", body, format="json")

    assert response.status_code == 204
    assert ask(client, agent)["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_the_invalidation_command(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    call_command("cache_invalidate", "--agent-type", "helper")

    assert ask(client, agent)["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_a_cache_outage_never_fails_a_request(alice, agent, fake_llm, settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{tmp_path}/no-redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }

    responses = [ask(api_client(alice), agent) for _ in range(2)]

    assert [(r.status_code, r["X-Cache"]) for r in responses] == [(200, "BYPASS"), (200, "BYPASS")]
    assert fake_llm.chat_calls() == 2
