from decimal import Decimal

from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

SCHEDULE = "evaluate alert rules"

# The rules every platform starts with (created once; operators change, add or turn them off in the admin).
DEFAULT_RULES = [
    {"name": "Agent runs failing", "kind": "error_rate", "threshold": 10, "window_minutes": 5, "severity": "critical"},
    {"name": "Provider failing", "kind": "provider_failures", "threshold": 10, "window_minutes": 5,
     "severity": "critical"},
    {"name": "Budget at 80%", "kind": "budget", "threshold": 80, "severity": "warning", "cooldown_minutes": 1440},
    {"name": "Budget at 100%", "kind": "budget", "threshold": 100, "severity": "warning", "cooldown_minutes": 1440},
    {"name": "Budget at 120%", "kind": "budget", "threshold": 120, "severity": "critical", "cooldown_minutes": 1440},
    {"name": "Tasks failing", "kind": "task_failures", "threshold": 5, "window_minutes": 15, "severity": "warning"},
    {"name": "Queue backlog", "kind": "queue_age", "threshold": 300, "severity": "critical"},
    {"name": "Workers or beat silent", "kind": "silent", "threshold": 180, "severity": "critical"},
    {"name": "Errors logged", "kind": "error_logs", "threshold": 1, "window_minutes": 5, "severity": "warning"},
    {"name": "Security trail broken", "kind": "security_trail", "threshold": 1, "severity": "critical",
     "cooldown_minutes": 1440},
]


def create(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for rule in DEFAULT_RULES:
        fields = {**rule, "threshold": Decimal(rule["threshold"])}
        AlertRule.objects.get_or_create(name=fields.pop("name"), defaults=fields)
    register_periodic_task(
        apps,
        name=SCHEDULE,
        task="monitoring.evaluate",
        every=30,
        period="seconds",
        description="Evaluates the alert rules: opens, repeats and resolves alerts and sends their notifications.",
    )


def remove(apps, schema_editor):
    apps.get_model("monitoring", "AlertRule").objects.filter(name__in=[r["name"] for r in DEFAULT_RULES]).delete()
    unregister_periodic_tasks(apps, SCHEDULE)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_alerts"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(create, remove)]
