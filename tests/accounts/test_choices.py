"""Values that name something are picked from what exists, and checked on the server: the default agent and
model in preferences, a quota policy's agent type and model, and the scopes a key may carry."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Preferences
from accounts.services import object_share
from agents.models import AgentType
from agents.services.agents import agent_create
from quotas.models import QuotaPolicy
from tests.agents.conftest import agent, agent_type, fake_llm, model  # noqa: F401
from tests.conftest import api_client

pytestmark = pytest.mark.django_db


def preferences_post(client, **fields):
    data = {"timezone": "UTC", "memory_enabled": "on", **fields}
    return client.post(reverse("preferences"), data)


def test_the_default_agent_is_one_of_yours_or_shared_with_you_for_use(client, alice, bob, charlie, agent_type):  # noqa: F811
    mine = agent_create(owner=alice, agent_type=agent_type, name="mine", system_prompt="")
    used = agent_create(owner=bob, agent_type=agent_type, name="bobs", system_prompt="")
    object_share(obj=used, owner=bob, user=alice, level="use")
    seen = agent_create(owner=bob, agent_type=agent_type, name="only-seen", system_prompt="")
    object_share(obj=seen, owner=bob, user=alice, level="view")
    hidden = agent_create(owner=charlie, agent_type=agent_type, name="charlies", system_prompt="")
    client.force_login(alice)

    offered = dict(client.get(reverse("preferences")).context["form"].fields["default_agent"].choices)

    assert offered == {"": "None", f"agent:{used.pk}": "bob/bobs", f"agent:{mine.pk}": "mine"}
    refused = preferences_post(client, default_agent=f"agent:{hidden.pk}")
    assert refused.status_code == 200 and "default_agent" in refused.context["form"].errors
    assert preferences_post(client, default_agent=f"agent:{used.pk}").status_code == 302
    assert Preferences.objects.get(user=alice).default_agent == f"agent:{used.pk}"


def test_the_default_model_is_a_model_of_the_catalog(client, alice, model):  # noqa: F811
    client.force_login(alice)

    refused = preferences_post(client, default_model="gpt-made-up")
    accepted = preferences_post(client, default_model=model.name)

    assert "default_model" in refused.context["form"].errors
    assert accepted.status_code == 302 and Preferences.objects.get(user=alice).default_model == model.name


def test_a_quota_policy_names_an_existing_agent_type_and_model_or_none(client, admin_user, agent_type):  # noqa: F811
    client.force_login(admin_user)
    add = reverse("admin:quotas_quotapolicy_add")
    base = {"name": "p", "applies_to": "everyone", "tokens_per_day": "100", "is_active": "on"}

    form = client.get(add).context["adminform"].form
    refused = client.post(add, {**base, "agent_type": "no-such-type", "model": ""})
    unknown_model = client.post(add, {**base, "agent_type": "", "model": "no-such-model"})
    accepted = client.post(add, {**base, "agent_type": agent_type.slug, "model": agent_type.default_model.name})

    offered = dict(form.fields["agent_type"].choices)
    assert offered[""] == "Any agent type" and set(offered) - {""} == set(
        AgentType.objects.values_list("slug", flat=True)
    )
    assert "agent_type" in refused.context["adminform"].form.errors
    assert "model" in unknown_model.context["adminform"].form.errors
    assert accepted.status_code == 302
    assert QuotaPolicy.objects.get(name="p").agent_type == "helper"
    assert QuotaPolicy.objects.get(name="p").tokens_per_day == Decimal(100)


def test_a_member_is_not_offered_users_manage_in_the_browser_and_cannot_post_it(client, alice):
    client.force_login(alice)

    offered = dict(client.get(reverse("keys")).context["form"].fields["scopes"].choices)
    refused = client.post(reverse("keys"), {"name": "sneaky", "scopes": ["users:manage"]})

    assert "users:manage" not in offered
    assert {"workflows:read", "workflows:run", "agents:invoke", "keys:manage"} <= offered.keys()
    assert "scopes" in refused.context["form"].errors and not ApiKey.objects.filter(name="sneaky").exists()


def test_an_operator_is_offered_users_manage(client, operator):
    client.force_login(operator)

    offered = dict(client.get(reverse("keys")).context["form"].fields["scopes"].choices)

    assert "users:manage" in offered


def test_the_keys_api_grants_only_the_scopes_the_role_can_use(alice, operator):
    member = api_client(alice)

    refused = member.post("/api/v1/keys", {"name": "sneaky", "scopes": ["users:manage"]}, format="json")
    workflows = member.post("/api/v1/keys", {"name": "flows", "scopes": ["workflows:run"]}, format="json")
    for_operator = api_client(operator).post("/api/v1/keys", {"name": "ops", "scopes": ["users:manage"]}, format="json")

    assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "scopes"
    assert workflows.status_code == 201 and for_operator.status_code == 201
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_the_preferences_api_takes_only_an_agent_you_may_invoke_and_a_catalog_model(alice, charlie, agent_type, model):  # noqa: F811
    mine = agent_create(owner=alice, agent_type=agent_type, name="mine", system_prompt="")
    hidden = agent_create(owner=charlie, agent_type=agent_type, name="charlies", system_prompt="")
    client = api_client(alice)

    refused = client.patch(
        "/api/v1/preferences", {"default_agent": f"agent:{hidden.pk}", "default_model": "gpt-made-up"}, format="json"
    )
    assert refused.status_code == 400
    assert {field["attr"] for field in refused.json()["errors"]} == {"default_agent", "default_model"}
    accepted = client.patch(
        "/api/v1/preferences", {"default_agent": f"agent:{mine.pk}", "default_model": model.name}, format="json"
    )
    assert accepted.status_code == 200
    assert (accepted.json()["default_agent"], accepted.json()["default_model"]) == (f"agent:{mine.pk}", model.name)
