from django.conf import settings
from django.db import migrations

HEARTBEAT_NAME = "platform heartbeat"


def register_heartbeat(apps, schema_editor):
    """The schedule lives in the database so operators can change it in the admin."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=settings.HEARTBEAT_INTERVAL_SECONDS, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=HEARTBEAT_NAME,
        defaults={"task": "platform.heartbeat", "interval": every, "description": "Proves beat and a worker run."},
    )


def unregister_heartbeat(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=HEARTBEAT_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("platform_site", "0001_pgvector"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register_heartbeat, unregister_heartbeat)]
