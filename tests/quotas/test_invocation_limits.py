"""Quotas on agent invocations: 429s and their headers, per-key and per-type limits, prompt sizes."""

import pytest

from accounts.models import SecurityEvent
from quotas.models import QuotaPolicy
from tests.agents.conftest import ask
from tests.conftest import api_client, in_one_minute, make_key


@pytest.mark.django_db
def test_refusals_are_429s_with_retry_after_ratelimit_headers_and_a_body_naming_the_limit(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="slow", requests_per_minute=2)
    in_one_minute()
    client = api_client(alice)

    first = ask(client, agent, "one")
    ask(client, agent, "two")
    refused = ask(client, agent, "three")

    assert first["RateLimit-Policy"] == '"slow";q=2;w=60' and first["RateLimit"].startswith('"slow";r=1;t=')
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit"].startswith('"slow";r=0;t=')
    quota = refused.json()["quota"]
    assert (quota["policy"], quota["limit"], quota["window_seconds"]) == ("slow", "requests_per_minute", 60)
    assert refused.json()["errors"][0]["code"] == "quota_exceeded"
    assert SecurityEvent.objects.filter(kind="quota_exceeded", user=alice).count() == 1
    assert fake_llm.chat_calls() == 2


@pytest.mark.django_db
def test_a_policy_on_an_api_key_counts_that_key_only(alice, agent, fake_llm):
    limited_key = make_key(alice, scopes=["agents:invoke"], name="limited")
    other_key = make_key(alice, scopes=["agents:invoke"], name="other")
    from accounts.models import ApiKey

    QuotaPolicy.objects.create(
        name="one-per-minute", applies_to="api_key", api_key=ApiKey.objects.get(name="limited"), requests_per_minute=1
    )
    in_one_minute()

    assert ask(api_client(key=limited_key), agent, "a").status_code == 200
    assert ask(api_client(key=limited_key), agent, "b").status_code == 429
    assert ask(api_client(key=other_key), agent, "c").status_code == 200


@pytest.mark.django_db
def test_agent_type_default_limits_apply(alice, agent, agent_type, fake_llm):
    agent_type.requests_per_minute = 1
    agent_type.save()
    in_one_minute()

    assert ask(api_client(alice), agent, "a").status_code == 200
    refused = ask(api_client(alice), agent, "b")
    assert refused.status_code == 429 and refused.json()["quota"]["policy"] == "@type-helper"


@pytest.mark.django_db
def test_unpriced_models_and_prompts_too_big_are_refused_before_any_provider_call(alice, agent, model, fake_llm):
    model.context_window = 50
    model.save()
    too_big = ask(api_client(alice), agent, "word " * 200)
    model.input_price_per_mtok = None
    model.save()
    unpriced = ask(api_client(alice), agent, "hi")

    assert too_big.status_code == 400 and too_big.json()["errors"][0]["attr"] == "messages"
    assert unpriced.status_code == 400 and unpriced.json()["errors"][0]["attr"] == "model"
    assert fake_llm.chat_calls() == 0


@pytest.mark.django_db
def test_max_tokens_are_clamped_to_what_the_context_window_leaves(alice, agent, model, fake_llm):
    model.context_window = 100
    model.save()

    ask(api_client(alice), agent, "hello there")

    assert fake_llm.requests[0]["body"]["max_tokens"] < 100


@pytest.mark.django_db
def test_a_request_bigger_than_a_whole_limit_is_a_400_not_an_endless_429(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="tiny", tokens_per_minute=100)

    response = ask(api_client(alice), agent)

    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "max_tokens"
