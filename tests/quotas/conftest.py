import pytest
from django.core.cache import cache

from tests.agents.conftest import agent, agent_type, fake_llm, model  # noqa: F401  (the agents cast, reused)


@pytest.fixture(autouse=True)
def clean_redis():
    cache.clear()
