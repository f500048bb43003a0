from django.conf import settings
from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

NAME = "expire API keys"


def register(apps, schema_editor):
    register_periodic_task(
        apps,
        name=NAME,
        task="accounts.expire_api_keys",
        every=settings.API_KEY_EXPIRY_CHECK_MINUTES,
        period="minutes",
        description="Marks keys past their expiry as expired and ends finished rotation grace periods.",
    )


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_role_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
