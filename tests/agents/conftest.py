from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache

from agents.models import AgentType, LanguageModel, Provider
from agents.services.agents import agent_create
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def fake_llm():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def clean_redis():
    cache.clear()  # response cache entries, namespace versions, breaker state


@pytest.fixture
def model(db, fake_llm):
    provider = Provider.objects.create(
        name="fake", kind=Provider.Kind.OPENAI, base_url=fake_llm.base_url, timeout_seconds=5, max_retries=0
    )
    return LanguageModel.objects.create(
        name="fake-gpt",
        provider=provider,
        provider_model="gpt-fake",
        input_price_per_mtok=Decimal("2.50"),
        output_price_per_mtok=Decimal("10.00"),
    )


@pytest.fixture
def agent_type(model):
    return AgentType.objects.create(slug="helper", default_model=model, cache_ttl_seconds=60)


@pytest.fixture
def agent(alice, agent_type):
    return agent_create(owner=alice, agent_type=agent_type, name="helper", system_prompt="Be brief.")


def ask(client, agent, text="hello there", **extra):
    client.raise_request_exception = False  # 5xx answers are also reported to Django's error log, as they should
    return client.post(
        f"/api/v1/agents/{agent.pk}/invoke", {"messages": [{"role": "user", "content": text}]}, format="json", **extra
    )


def read_stream(response) -> str:
    """The whole body of a streamed (async) response, read as a client reads it."""

    async def read():
        return b"".join([part async for part in response.streaming_content])

    return async_to_sync(read)().decode()
