from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "verify the security trail"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="accounts.verify_security_trail",
        every=1,
        period="days",
        description="Walks the security-event chain and records the first broken link (an alert rule watches it).",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_security_trail"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
