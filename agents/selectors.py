"""Reads of agents and runs, each scoped to who is asking; what they may not see is a 404."""

from django.db.models import F, QuerySet
from django.http import Http404

from accounts.selectors import object_shares_by_id, owned_get, owned_or_shared, owned_or_shared_get
from agents.models import Agent, AgentRun, AgentType, ExposedModel, LanguageModel
from core import local_cache
from core.async_db import database_sync_to_async

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


async def agent_for_model(*, user, model: str) -> Agent:
    """The agent an OpenAI-compatible request names in `model`: `agent:<id>`, or `<owner>/<agent name>`
    (the owner's username, then the name as the owner wrote it); 404 unless the user may invoke it."""
    missing = Http404(f"The model {model!r} does not exist or you do not have access to it.")
    if model.startswith("agent:") and model[6:].isdigit():
        try:
            return await agent_get_for_invocation(user=user, pk=int(model[6:]))
        except Http404:
            raise missing from None
    owner, _, name = model.partition("/")
    if not name:  # a catalog model an operator exposed, if the user's role may call it
        exposure = next((e for e in await exposed_models_async() if e["name"] == model), None)
        if exposure is None or not await _role_may_call(user, exposure):
            raise missing
        return await local_cache.aget("agent", exposure["agent"], load=lambda: AGENTS.get(pk=exposure["agent"]))
    pk = await local_cache.aget("agent_name", model, load=lambda: _agent_pk_named(owner, name))
    agent = None if pk is None else await local_cache.aget("agent", pk, load=lambda: AGENTS.filter(pk=pk).first())
    if agent is None or agent.name != name or agent.owner.username != owner:  # renamed since: look again
        pk = await database_sync_to_async(_agent_pk_named)(owner, name)
        agent = None if pk is None else await database_sync_to_async(AGENTS.filter(pk=pk).first)()
    if agent is not None and (agent.owner_id == user.pk or await _shared_for_use(agent, user)):
        return agent
    raise missing


def exposed_models() -> list[dict]:
    """The catalog models operators exposed (name, roles, backing agent), from the process's cache."""
    return local_cache.get("exposed", "all", load=_exposed_rows)


async def exposed_models_async() -> list[dict]:
    return await local_cache.aget("exposed", "all", load=_exposed_rows)


def _exposed_rows() -> list[dict]:
    return list(ExposedModel.objects.values("name", "roles", "agent", created=F("agent__created_at")))


async def _role_may_call(user, exposure: dict) -> bool:
    if exposure["roles"] and "_role" not in user.__dict__:
        await database_sync_to_async(getattr)(user, "role")
    return role_may_call(user, exposure)


def role_may_call(user, exposure: dict) -> bool:
    return not exposure["roles"] or user.role in exposure["roles"]


def _agent_pk_named(owner: str, name: str) -> int | None:
    return Agent.objects.filter(owner__username=owner, name=name).values_list("pk", flat=True).first()


def model_name(agent: Agent) -> str:
    """How the OpenAI-compatible API names an agent."""
    return f"{agent.owner.username}/{agent.name}"


def agents_usable(*, user) -> QuerySet[Agent]:
    """The agents the user may invoke: theirs and those shared with them for use."""
    return owned_or_shared(user=user, queryset=AGENTS, level="use")


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
