from django.apps import AppConfig


class PlatformSiteConfig(AppConfig):
    """The project as an app: migrations (pgvector, the beat schedule) and management commands."""

    name = "platform_site"
    verbose_name = "Platform"

    def ready(self):
        from platform_site import checks, correlation  # noqa: F401  (registers checks, Celery signal handlers)
