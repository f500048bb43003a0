from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "resend queued tasks"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="tasks.resend_queued",
        every=60,
        period="seconds",
        description="Sends again tracked tasks still queued minutes after they started (lost message).",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_dispatch_schedule"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register, unregister)]
