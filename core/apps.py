from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel as an app: it connects the request id to Celery's signals."""

    name = "core"
    verbose_name = "Core"

    def ready(self):
        from core import correlation  # noqa: F401  (Celery signal handlers)
