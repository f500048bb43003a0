from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Brokers that redeliver an unacknowledged message after a visibility timeout.
VISIBILITY_TIMEOUT_BROKERS = {"redis", "rediss", "redis+socket", "sentinel", "sqs"}


def _policies() -> list[dict]:
    return [
        settings.TASK_DEFAULT_POLICY,
        *({**settings.TASK_DEFAULT_POLICY, **p} for p in settings.TASK_POLICIES.values()),
    ]


def longest_hold_seconds() -> float:
    """The longest a worker may hold a message unacknowledged: a retry wait plus a run to its time limit."""
    longest_task = max((p.get("retry_backoff_max") or 0) + (p.get("time_limit") or 0) for p in _policies())
    longest_webhook = settings.WEBHOOK_MAX_COUNTDOWN_SECONDS + settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 10
    return max(longest_task, longest_webhook)


def check_task_settings() -> None:
    """Refuse to start on task settings that would make Celery fail or deliver a task twice."""
    for kind, policy in [("default", settings.TASK_DEFAULT_POLICY), *settings.TASK_POLICIES.items()]:
        merged = {**settings.TASK_DEFAULT_POLICY, **policy}
        soft, hard = merged.get("soft_time_limit"), merged.get("time_limit")
        if soft and hard and soft >= hard:
            raise ImproperlyConfigured(
                f"TASK_POLICIES[{kind!r}]: soft_time_limit ({soft}) must be below time_limit ({hard})."
            )
    check_visibility_timeout()


def check_visibility_timeout() -> None:
    """Refuse to start when the broker would hand a held message to a second worker."""
    if urlsplit(settings.CELERY_BROKER_URL).scheme not in VISIBILITY_TIMEOUT_BROKERS:
        return
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    longest = longest_hold_seconds()
    if timeout <= longest:
        raise ImproperlyConfigured(
            f"BROKER_VISIBILITY_TIMEOUT ({timeout} s) must exceed the longest time a task can be held "
            f"({longest:g} s: retry wait plus time limit), or a task would be delivered twice. "
            "Raise it or lower TASK_POLICIES / TASK_*_SECONDS."
        )


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks and webhooks"

    key_scopes = {
        "tasks:read": "Read background tasks",
        "tasks:write": "Cancel background tasks",
        "webhooks:manage": "Manage webhook endpoints (they receive your task results)",
    }
    default_key_scopes = ["tasks:read"]

    role_permissions = {
        "viewer": ["tasks.view_taskrecord", "tasks.view_webhookendpoint"],
        "member": [
            "tasks.change_taskrecord",  # cancel their own
            "tasks.add_webhookendpoint",
            "tasks.change_webhookendpoint",
            "tasks.delete_webhookendpoint",
        ],
        "operator": [
            "tasks.retry_taskrecord",
            "tasks.view_webhookdelivery",
            "tasks.view_webhookattempt",
            "tasks.replay_webhookdelivery",
        ],
    }

    def ready(self):
        from tasks import invalidation  # noqa: F401  (the webhook endpoints each process keeps)

        check_task_settings()
