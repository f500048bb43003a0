import asyncio
import json
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


# --- against a live server: many clients at once ------------------------------------------------------


async def post(port: int, path: str, body: dict, key: str) -> tuple[int, bytes]:
    """One POST on its own connection, as a separate client would make it; (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode()
        + raw
    )
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():  # a stream
        payload = b"".join(payload.split(b"\r\n")[1::2])
    return int(head.split()[1]), payload


async def invoke_all(port: int, agent_id: int, key: str, questions: list[str], streams: int = 0) -> list:
    """Every question asked at once, each by its own client, the first `streams` of them for a stream;
    [(status, body)] in the same order."""
    return await asyncio.gather(
        *[
            post(
                port,
                f"/api/v1/agents/{agent_id}/invoke",
                {"messages": [{"role": "user", "content": question}], "stream": n < streams},
                key,
            )
            for n, question in enumerate(questions)
        ]
    )
