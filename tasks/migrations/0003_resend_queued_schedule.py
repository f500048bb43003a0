from django.db import migrations

SCHEDULE_NAME = "resend queued tasks"


def register_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "task": "tasks.resend_queued",
            "interval": every,
            "description": "Sends again tracked tasks still queued minutes after they started (lost message).",
        },
    )


def unregister_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_dispatch_schedule"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register_schedule, unregister_schedule)]
