"""Agents: create, change (a change to what shapes the answers bumps the version), delete."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.services import object_shares_end
from agents.models import Agent


def agent_create(*, owner, **fields) -> Agent:
    agent = Agent(owner=owner, **fields)
    agent.full_clean()
    try:
        agent.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have an agent with this name."}) from error
    return agent


def agent_update(*, agent: Agent, **fields) -> Agent:
    """Change an agent; a change to what shapes its answers bumps its version (old cache entries no longer match)."""
    before = [getattr(agent, name) for name in Agent.CONFIG_FIELDS]
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.full_clean()
    if before != [getattr(agent, name) for name in Agent.CONFIG_FIELDS]:
        agent.version += 1
    try:
        agent.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have an agent with this name."}) from error
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent) -> None:
    """Delete the agent with its runs and its shares; its cached answers are no longer reachable (the key
    names the agent)."""
    object_shares_end(obj=agent)
    agent.delete()
