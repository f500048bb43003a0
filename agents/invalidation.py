"""The agents each process keeps for the invocation pipeline (agents.selectors.agent_get_for_invocation)
are dropped everywhere when they change: an agent, or the catalog rows it carries (its type, its model,
that model's provider), which operators change in the admin; so are the catalog names metrics take as labels,
and the content policies (agents.services.guarding), with their external guard services."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from agents.metrics import CATALOG as METRIC_LABELS
from agents.models import (
    Agent,
    AgentType,
    ContentPolicy,
    ExposedModel,
    GuardService,
    LanguageModel,
    PolicyGuard,
    Provider,
)
from core.local_cache import invalidate


@receiver([post_save, post_delete], sender=Agent, dispatch_uid="agents.invalidate_agent")
def _agent_changed(sender, instance, **kwargs):
    invalidate("agent", instance.pk)


@receiver([post_save, post_delete], sender=AgentType, dispatch_uid="agents.invalidate_agent_types")
@receiver([post_save, post_delete], sender=LanguageModel, dispatch_uid="agents.invalidate_models")
@receiver([post_save, post_delete], sender=Provider, dispatch_uid="agents.invalidate_providers")
def _catalog_changed(sender, **kwargs):
    invalidate("agent")  # every agent carries its type, model and provider
    invalidate(METRIC_LABELS)  # the names metrics may use as labels (agents/metrics.py)


@receiver([post_save, post_delete], sender=ExposedModel, dispatch_uid="agents.invalidate_exposed")
def _exposed_changed(sender, **kwargs):
    invalidate("exposed")


@receiver([post_save, post_delete], sender=ContentPolicy, dispatch_uid="agents.invalidate_content_policies")
@receiver([post_save, post_delete], sender=PolicyGuard, dispatch_uid="agents.invalidate_policy_guards")
@receiver([post_save, post_delete], sender=GuardService, dispatch_uid="agents.invalidate_guard_services")
def _content_policy_changed(sender, **kwargs):
    invalidate("guardpolicies", "all")
