from django.conf import settings
from django.db import migrations

SCHEDULE_NAME = "dispatch due webhook deliveries"


def register_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.WEBHOOK_DISPATCH_INTERVAL_SECONDS, period="seconds"
    )
    PeriodicTask.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "task": "webhooks.dispatch_due",
            "interval": every,
            "description": "Sends webhook deliveries whose next attempt is due (waits too long for a worker to hold).",
        },
    )


def unregister_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0001_task_records_and_webhooks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register_schedule, unregister_schedule)]
