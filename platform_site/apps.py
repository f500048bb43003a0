from django.apps import AppConfig


class PlatformSiteConfig(AppConfig):
    """The project as an app: migrations (pgvector, the beat schedule) and management commands."""

    name = "platform_site"
    verbose_name = "Platform"

    # Operators read the audit trail and login records and run the schedules (accounts.roles).
    role_permissions = {
        "operator": [
            "auditlog.view_logentry",
            "axes.view_accessattempt",
            "axes.delete_accessattempt",
            "axes.view_accessfailurelog",
            "axes.view_accesslog",
            "django_celery_results.view_taskresult",
            "django_celery_beat.view_periodictask",
            "django_celery_beat.add_periodictask",
            "django_celery_beat.change_periodictask",
            "django_celery_beat.view_intervalschedule",
            "django_celery_beat.add_intervalschedule",
            "django_celery_beat.view_crontabschedule",
            "django_celery_beat.add_crontabschedule",
        ],
    }

    def ready(self):
        from monitoring import dashboard
        from platform_site import (
            checks,  # noqa: F401  (registers the database checks)
            health,
        )

        dashboard.readiness = health.readiness  # the admin index shows what /readyz answers
