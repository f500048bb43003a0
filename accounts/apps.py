from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    key_scopes = {
        "account:read": "Read your profile, preferences and security events",
        "account:write": "Change your profile and preferences",
        "keys:manage": "List, create, rotate and revoke API keys",
        "users:manage": "Manage users and roles (admins)",
    }

    # Everyone manages their own keys and preferences; operators see every user, key and security event.
    role_permissions = {
        "viewer": [
            "accounts.view_apikey",
            "accounts.add_apikey",
            "accounts.change_apikey",
            "accounts.view_preferences",
            "accounts.change_preferences",
        ],
        "operator": [
            "accounts.view_user",
            "accounts.view_securityevent",
            "accounts.view_trailcheck",
            "accounts.manage_all_keys",
        ],
    }

    def ready(self):
        # audit registry, schema extensions, login events, cache invalidation
        from accounts import audit, invalidation, roles, schema, signals  # noqa: F401

        post_migrate.connect(roles.on_post_migrate, sender=self, dispatch_uid="accounts.roles_sync")
