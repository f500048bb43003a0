from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "release unsettled quota reservations"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="quotas.release_holds",
        every=60,
        period="seconds",
        description="Gives back the budget reservations of requests whose process died before settling.",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [("quotas", "0003_usage_permission"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register, unregister)]
