from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    key_scopes = {
        "agents:read": "Read agents and their runs",
        "agents:write": "Create and change agents",
        "agents:invoke": "Invoke agents",
    }
    default_key_scopes = ["agents:read", "agents:invoke"]

    # Viewers read; members build and invoke their own agents; operators run the catalog and the cache.
    role_permissions = {
        "viewer": ["agents.view_agent", "agents.view_agentrun", "agents.view_agenttype", "agents.view_languagemodel"],
        "member": ["agents.add_agent", "agents.change_agent", "agents.delete_agent", "agents.invoke_agent"],
        "operator": [
            "agents.view_provider",
            "agents.add_provider",
            "agents.change_provider",
            "agents.delete_provider",
            "agents.add_languagemodel",
            "agents.change_languagemodel",
            "agents.delete_languagemodel",
            "agents.add_agenttype",
            "agents.change_agenttype",
            "agents.delete_agenttype",
            "agents.view_exposedmodel",
            "agents.add_exposedmodel",
            "agents.change_exposedmodel",
            "agents.delete_exposedmodel",
            "agents.invalidate_cache",
            # Content policies and external guards, and the verdicts they gave (docs/guardrails.md).
            *(
                f"agents.{action}_{model}"
                for model in ("contentpolicy", "guardservice", "policyguard")
                for action in ("view", "add", "change", "delete")
            ),
            "agents.view_guardverdict",
        ],
    }

    def ready(self):
        from agents import audit, invalidation  # noqa: F401  (audit registry, cache invalidation)
        from agents.services.catalog import catalog_ensure_builtins

        post_migrate.connect(catalog_ensure_builtins, sender=self, dispatch_uid="agents.builtins")
