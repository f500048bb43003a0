"""Agents in the admin: operators change them through the agents' service (the version moves on, as over
the API), delete them with their shares, and go from an agent to its runs, which stay read-only."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import object_share
from agents.models import Agent, AgentRun, AgentType
from agents.services.agents import agent_create
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def parrot(alice):
    return agent_create(owner=alice, agent_type=AgentType.objects.get(slug="assistant"), name="Parrot")


@pytest.fixture
def staff(operator):
    client = Client()
    client.force_login(operator)
    return client


def change_form(agent, **changes) -> dict:
    fields = {
        "name": agent.name,
        "agent_type": agent.agent_type_id,
        "model": agent.model_id or "",
        "system_prompt": agent.system_prompt,
        "temperature": "" if agent.temperature is None else agent.temperature,
        "max_tokens": agent.max_tokens or "",
    }
    if agent.use_memory:
        fields["use_memory"] = "on"
    return {**fields, **changes}


def test_an_operator_turns_an_agents_memory_on_in_the_admin_and_its_version_moves_on(staff, parrot):
    url = reverse("admin:agents_agent_change", args=[parrot.pk])
    assert staff.get(url).status_code == 200

    response = staff.post(url, change_form(parrot, use_memory="on", system_prompt="Remember things."))

    assert response.status_code == 302
    parrot.refresh_from_db()
    assert (parrot.use_memory, parrot.system_prompt, parrot.version) == (True, "Remember things.", 2)
    assert parrot.owner.username == "alice"


def test_a_rename_in_the_admin_keeps_the_version(staff, parrot):
    staff.post(reverse("admin:agents_agent_change", args=[parrot.pk]), change_form(parrot, name="Polly"))
    parrot.refresh_from_db()
    assert (parrot.name, parrot.version) == ("Polly", 1)


def test_a_name_the_owner_already_uses_is_refused_on_the_form(staff, alice, parrot):
    agent_create(owner=alice, agent_type=parrot.agent_type, name="Taken")

    response = staff.post(reverse("admin:agents_agent_change", args=[parrot.pk]), change_form(parrot, name="Taken"))

    assert (
        response.status_code == 200 and "This owner already has an agent with this name." in response.content.decode()
    )
    parrot.refresh_from_db()
    assert parrot.name == "Parrot"


def test_an_operator_creates_an_agent_for_a_user(staff, bob):
    response = staff.post(
        reverse("admin:agents_agent_add"),
        {"owner": bob.pk, "name": "Helper", "agent_type": AgentType.objects.get(slug="assistant").pk, "model": ""},
    )
    assert response.status_code == 302
    assert Agent.objects.get(owner=bob, name="Helper").version == 1


def test_deleting_in_the_admin_ends_the_agents_shares(staff, alice, bob, parrot):
    from guardian.models import UserObjectPermission

    object_share(obj=parrot, owner=alice, user=bob, level="use")

    staff.post(reverse("admin:agents_agent_delete", args=[parrot.pk]), {"post": "yes"})

    assert not Agent.objects.filter(pk=parrot.pk).exists()
    assert not UserObjectPermission.objects.filter(object_pk=str(parrot.pk)).exists()


def test_an_agent_links_to_its_runs_which_stay_read_only(staff, alice, parrot):
    other = agent_create(owner=alice, agent_type=parrot.agent_type, name="Other")
    run = RunFactory(agent=parrot, user=alice, text="hello")
    RunFactory(agent=other, user=alice, text="hello")
    runs = reverse("admin:agents_agentrun_changelist") + f"?agent__id__exact={parrot.pk}"

    assert runs.replace("&", "&amp;") in staff.get(reverse("admin:agents_agent_changelist")).content.decode()
    assert runs in staff.get(reverse("admin:agents_agent_change", args=[parrot.pk])).content.decode()
    listed = staff.get(runs)
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    change = reverse("admin:agents_agentrun_change", args=[run.pk])
    staff.post(change, {"output": "changed"})
    assert AgentRun.objects.get(pk=run.pk).output == "echo: hello"
    assert staff.get(change).context["has_change_permission"] is False


def test_a_member_cannot_open_the_admin(alice, parrot):
    client = Client()
    client.force_login(alice)
    response = client.get(reverse("admin:agents_agent_change", args=[parrot.pk]))
    assert response.status_code == 302 and "login" in response["Location"]
