from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"
    verbose_name = "Quotas and usage"

    role_permissions = {
        "viewer": ["quotas.view_usagedaily"],
        "operator": [
            "quotas.view_quotapolicy",
            "quotas.add_quotapolicy",
            "quotas.change_quotapolicy",
            "quotas.delete_quotapolicy",
            "quotas.view_usagerecord",
            "quotas.view_all_usage",
        ],
    }

    def ready(self):
        from quotas import invalidation  # noqa: F401  (the policies' cache invalidation)
