from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "reap workflow steps"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="workflows.reap",
        every=15,
        period="seconds",
        description="Queues again workflow steps whose worker vanished; wakes waiting steps whose time came.",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register, unregister)]
