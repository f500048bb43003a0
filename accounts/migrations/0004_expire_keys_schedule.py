from django.conf import settings
from django.db import migrations

SCHEDULE_NAME = "expire API keys"


def register_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=settings.API_KEY_EXPIRY_CHECK_MINUTES, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "task": "accounts.expire_api_keys",
            "interval": every,
            "description": "Marks keys past their expiry as expired and ends finished rotation grace periods.",
        },
    )


def unregister_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_role_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register_schedule, unregister_schedule)]
