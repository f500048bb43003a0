"""Reads of agents and runs, each scoped to who is asking; what they may not see is a 404."""

from django.db.models import QuerySet
from django.http import Http404

from accounts.selectors import object_shares_by_id, owned_get, owned_or_shared, owned_or_shared_get
from agents.models import Agent, AgentRun, AgentType, LanguageModel
from core import local_cache

AGENTS = Agent.objects.select_related("agent_type__default_model__provider", "model__provider", "owner")


def agent_list(*, user) -> QuerySet[Agent]:
    return owned_or_shared(user=user, queryset=AGENTS)


def agent_get(*, user, pk, level: str = "view") -> Agent:
    """An agent the user owns or that is shared with them at `level` (view or use)."""
    return owned_or_shared_get(user=user, queryset=AGENTS, pk=pk, level=level)


async def agent_get_for_invocation(*, user, pk: int) -> Agent:
    """An agent the user may invoke (theirs, or shared with them for use), for the invocation pipeline:
    read once per process (core.local_cache, dropped everywhere when it or a share changes); 404 else."""
    agent = await local_cache.aget("agent", pk, load=lambda: AGENTS.filter(pk=pk).first())
    if agent is not None and (agent.owner_id == user.pk or await _shared_for_use(agent, user)):
        return agent
    raise Http404("No such agent.")


async def agent_for_pipeline(agent: Agent) -> Agent:
    """The agent as the pipeline reads it (its type, model and provider loaded), from the process's cache:
    code on the event loop must not load a relation from the database."""
    return await local_cache.aget("agent", agent.pk, load=lambda: AGENTS.get(pk=agent.pk))


def agent_for_task(pk: int) -> Agent:
    """The agent a task was started for, as the pipeline reads it, from the process's cache (the task's
    caller was authorized when it started it)."""
    return local_cache.get("agent", pk, load=lambda: AGENTS.get(pk=pk))


async def _shared_for_use(agent: Agent, user) -> bool:
    levels = await local_cache.aget(
        "shares", f"agents.agent:{agent.pk}", load=lambda: dict(object_shares_by_id(obj=agent))
    )
    return levels.get(user.pk) == "use"


def agent_get_owned(*, user, pk) -> Agent:
    return owned_get(user=user, queryset=AGENTS, pk=pk)


def run_list(*, user) -> QuerySet[AgentRun]:
    """The runs the user made (of their own agents and of agents shared with them)."""
    return AgentRun.objects.filter(user=user).select_related("agent")


def run_get(*, user, pk) -> AgentRun:
    run = run_list(user=user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such run.")
    return run


def agent_type_list() -> QuerySet[AgentType]:
    return AgentType.objects.select_related("default_model").order_by("slug")


def model_list() -> QuerySet[LanguageModel]:
    return LanguageModel.objects.filter(is_active=True, provider__is_active=True).select_related("provider")
