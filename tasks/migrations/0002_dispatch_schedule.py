from django.conf import settings
from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "dispatch due webhook deliveries"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="webhooks.dispatch_due",
        every=settings.WEBHOOK_DISPATCH_INTERVAL_SECONDS,
        period="seconds",
        description="Sends webhook deliveries whose next attempt is due (waits too long for a worker to hold).",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0001_task_records_and_webhooks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
