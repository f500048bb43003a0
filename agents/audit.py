"""Audit trail of the catalog and agents (django-auditlog); stored provider keys never enter it."""

from auditlog.registry import auditlog

from agents.models import Agent, AgentType, ExposedModel, LanguageModel, Provider

auditlog.register(Provider, exclude_fields=["api_key_encrypted"])
auditlog.register(LanguageModel)
auditlog.register(AgentType)
auditlog.register(Agent)
auditlog.register(ExposedModel)
