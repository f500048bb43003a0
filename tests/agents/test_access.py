"""Who may invoke an agent and see its runs: roles, key scopes, other users' agents."""

import pytest

from agents.models import AgentRun
from tests.agents.conftest import ask
from tests.conftest import api_client, make_key, make_user


@pytest.mark.django_db
def test_a_viewer_reads_an_agent_shared_for_use_but_cannot_invoke_it(alice, agent, fake_llm):
    viewer = make_user("vic", role="viewer")
    from accounts.services import object_share

    object_share(obj=agent, owner=alice, user=viewer, level="use")
    assert api_client(viewer).get(f"/api/v1/agents/{agent.pk}").status_code == 200
    assert ask(api_client(viewer), agent).status_code == 403


@pytest.mark.django_db
def test_a_key_needs_the_invoke_scope(alice, agent, fake_llm):
    reader = make_key(alice, scopes=["agents:read"])
    invoker = make_key(alice, scopes=["agents:invoke"])

    assert ask(api_client(key=reader), agent).status_code == 403
    response = ask(api_client(key=invoker), agent)
    assert response.status_code == 200
    assert AgentRun.objects.get().api_key.prefix == invoker[: len("sb_") + 12]


@pytest.mark.django_db
def test_filtering_runs_by_someone_elses_agent_looks_like_an_unknown_agent(alice, bob, agent, fake_llm):
    ask(api_client(alice), agent)

    others = api_client(bob).get(f"/api/v1/runs?agent={agent.pk}")
    unknown = api_client(bob).get("/api/v1/runs?agent=999999")

    assert others.status_code == unknown.status_code == 200
    assert others.json()["results"] == unknown.json()["results"] == []
