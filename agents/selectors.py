"""Reads of agents and runs, each scoped to who is asking; what they may not see is a 404."""

from django.db.models import QuerySet

from accounts.selectors import owned_get, owned_or_shared, owned_or_shared_get
from agents.models import Agent, AgentRun, AgentType, LanguageModel

AGENTS = Agent.objects.select_related("agent_type__default_model__provider", "model__provider", "owner")


def agent_list(*, user) -> QuerySet[Agent]:
    return owned_or_shared(user=user, queryset=AGENTS)


def agent_get(*, user, pk, level: str = "view") -> Agent:
    """An agent the user owns or that is shared with them at `level` (view or use)."""
    return owned_or_shared_get(user=user, queryset=AGENTS, pk=pk, level=level)


def agent_get_owned(*, user, pk) -> Agent:
    return owned_get(user=user, queryset=AGENTS, pk=pk)


def run_list(*, user) -> QuerySet[AgentRun]:
    """The runs the user made (of their own agents and of agents shared with them)."""
    return AgentRun.objects.filter(user=user).select_related("agent")


def run_get(*, user, pk) -> AgentRun:
    from django.http import Http404

    run = run_list(user=user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such run.")
    return run


def agent_type_list() -> QuerySet[AgentType]:
    return AgentType.objects.select_related("default_model").order_by("slug")


def model_list() -> QuerySet[LanguageModel]:
    return LanguageModel.objects.filter(is_active=True, provider__is_active=True).select_related("provider")
