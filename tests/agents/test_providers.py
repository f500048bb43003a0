"""Model providers: their errors and timeouts, the circuit breaker, the Anthropic SDK, key settings."""

import time
from decimal import Decimal

import pytest

from agents.models import AgentRun, AgentType
from tests.agents.conftest import ask, read_stream
from tests.conftest import api_client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure, status",
    [([500], 502), ([429], 503), ([400], 400)],
)
def test_provider_errors_become_clear_statuses_and_are_never_cached(alice, agent, fake_llm, failure, status):
    fake_llm.failures = failure

    response = ask(api_client(alice), agent)

    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == "provider_error"
    assert "injected" not in str(response.json()), "the provider's own words stay in the log"
    if status == 503:
        assert "Retry-After" in response
    run = AgentRun.objects.get()
    assert run.status == "failed" and run.cost == 0
    assert ask(api_client(alice), agent)["X-Cache"] == "MISS", "an error was cached"


@pytest.mark.django_db
def test_an_unreachable_provider_is_a_503_and_a_slow_one_a_504(alice, agent, model, fake_llm):
    fake_llm.latency = 1.5
    model.provider.timeout_seconds = 1
    model.provider.save()
    assert ask(api_client(alice), agent).status_code == 504

    model.provider.base_url = "http://127.0.0.1:9/v1"
    model.provider.save()
    assert ask(api_client(alice), agent, "other").status_code == 503


@pytest.mark.django_db
def test_the_breaker_opens_after_repeated_failures_fails_fast_then_closes(alice, agent, fake_llm, settings):
    settings.BREAKER_FAILURES, settings.BREAKER_OPEN_SECONDS = 2, 1
    client = api_client(alice)
    fake_llm.failures = [500, 500]
    assert [ask(client, agent, f"q{n}").status_code for n in range(2)] == [502, 502]

    calls = fake_llm.chat_calls()
    open_response = ask(client, agent, "q3")
    assert open_response.status_code == 503 and fake_llm.chat_calls() == calls, "the open breaker called anyway"
    assert int(open_response["Retry-After"]) >= 1

    time.sleep(1.1)
    assert ask(client, agent, "q4").status_code == 200, "the trial call after the pause"
    assert ask(client, agent, "q5").status_code == 200


@pytest.mark.django_db
def test_an_anthropic_provider_is_driven_through_its_sdk_plain_and_streamed(alice, fake_llm):
    from agents.models import LanguageModel, Provider
    from agents.services.agents import agent_create

    provider = Provider.objects.create(
        name="claude", kind=Provider.Kind.ANTHROPIC, base_url=fake_llm.base_url.removesuffix("/v1"), max_retries=0
    )
    model = LanguageModel.objects.create(
        name="claude-fake",
        provider=provider,
        provider_model="claude-x",
        input_price_per_mtok=Decimal("3"),
        output_price_per_mtok=Decimal("15"),
    )
    agent_type = AgentType.objects.create(slug="claude-type", default_model=model, cache_ttl_seconds=0)
    agent = agent_create(owner=alice, agent_type=agent_type, name="claude", system_prompt="Be brief.")
    client = api_client(alice)

    plain = ask(client, agent, "hello there")
    streamed = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": "stream me"}], "stream": True},
        format="json",
    )
    body = read_stream(streamed)

    assert plain.status_code == 200 and plain.json()["output"] == "echo: hello there"
    sent = fake_llm.requests[0]["body"]
    assert sent["system"] == "Be brief." and sent["messages"] == [{"role": "user", "content": "hello there"}]
    run = AgentRun.objects.get(pk=plain.json()["run"])
    assert (run.input_tokens, run.output_tokens, run.cost) == (4, 3, Decimal("0.00005700"))
    assert "event: done" in body and AgentRun.objects.get(streamed=True).output == "echo: stream me"


def test_a_provider_key_variable_must_be_an_api_key_name():
    from django.core.exceptions import ValidationError

    from agents.models import Provider

    for name in ("SECRET_KEY", "DATABASE_URL", "openai_api_key"):
        with pytest.raises(ValidationError):
            Provider(name="p", kind="openai", api_key_env=name).full_clean(exclude=["name"])
    Provider(name="p", kind="openai", api_key_env="OPENAI_API_KEY").full_clean(validate_unique=False)
