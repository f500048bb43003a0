"""Agents that use memory: what reaches their prompt, and how it shapes the cache key."""

import pytest

from memory.services import memory_create
from tests.agents.conftest import ask
from tests.conftest import api_client


@pytest.mark.django_db
def test_agents_that_use_memory_get_it_in_their_prompt_and_a_changed_memory_is_a_new_cache_key(alice, agent, fake_llm):
    agent.use_memory = True
    agent.save()
    memory = memory_create(owner=alice, content="Alice's favourite colour is green", agent_id=agent.pk)
    memory_create(owner=alice, content="Another agent's note about colours", agent_id=agent.pk + 1000)
    client = api_client(alice)

    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "MISS"
    system = fake_llm.requests[-1]["body"]["messages"][0]["content"]
    assert "favourite colour is green" in system and "Another agent" not in system
    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "HIT"

    memory.content = "Alice's favourite colour is blue"
    memory.save()
    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "MISS"
    assert "favourite colour is blue" in fake_llm.requests[-1]["body"]["messages"][0]["content"]

    from accounts.services import preferences_update

    preferences_update(user=alice, memory_enabled=False)
    ask(client, agent, "what else")
    assert "favourite colour" not in fake_llm.requests[-1]["body"]["messages"][0]["content"]
