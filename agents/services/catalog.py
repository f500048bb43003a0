"""The catalog's built-ins, and invalidation of the response cache by entry, agent, agent type or all."""

import logging
from decimal import Decimal

from django.db import transaction
from django.http import Http404

from agents import cache as response_cache
from agents.models import Agent, AgentType, ExposedModel, LanguageModel, Provider
from agents.services.agents import agent_create, agent_update

logger = logging.getLogger("switchboard.agents")


def catalog_ensure_builtins(**kwargs) -> None:
    """The built-in echo provider and model and a general agent type, so the platform works without any key.

    Run after every migrate (post_migrate); creates what is missing and changes nothing else.
    """
    provider, _ = Provider.objects.get_or_create(name="echo", defaults={"kind": Provider.Kind.ECHO})
    model, _ = LanguageModel.objects.get_or_create(
        name="echo",
        defaults={
            "provider": provider,
            "provider_model": "echo",
            "context_window": 100_000,
            "input_price_per_mtok": Decimal("0"),
            "output_price_per_mtok": Decimal("0"),
        },
    )
    AgentType.objects.get_or_create(
        slug="assistant", defaults={"description": "A general assistant.", "default_model": model}
    )


def cache_invalidate(*, scope: str, key: str = "", agent: int | None = None, agent_type: str = "") -> None:
    """One entry, an agent's, an agent type's, or every cached answer; each one Redis command."""
    if scope == "entry":
        response_cache.invalidate_entry(key)
    elif scope == "agent":
        if not Agent.objects.filter(pk=agent).exists():
            raise Http404("No such agent.")
        response_cache.invalidate_agent(agent)
    elif scope == "agent_type":
        type_id = AgentType.objects.filter(slug=agent_type).values_list("pk", flat=True).first()
        if type_id is None:
            raise Http404("No such agent type.")
        response_cache.invalidate_agent_type(type_id)
    else:
        response_cache.invalidate_all()
    logger.info(
        "response cache invalidated: %s", scope, extra={"scope": scope, "agent": agent, "agent_type": agent_type}
    )


@transaction.atomic
def exposed_model_save(*, exposure: ExposedModel, actor) -> ExposedModel:
    """Save an exposed catalog model with its backing agent (made on first save, owned by `actor`, kept in
    step with the exposure's type and model): the pipeline runs the exposure's calls through that agent."""
    exposure.full_clean(exclude=["agent"])
    fields = {"agent_type": exposure.agent_type, "model": exposure.model, "name": f"exposed: {exposure.name}"}
    if exposure.agent_id is None:
        exposure.agent = agent_create(owner=actor, system_prompt="", **fields)
    else:
        agent_update(agent=exposure.agent, **fields)
    exposure.save()
    return exposure
