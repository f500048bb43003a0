from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

SCHEDULES = [
    ("roll up usage", "quotas.roll_up_usage", 300, "Today's and yesterday's usage roll-ups from the ledger."),
    ("reconcile quota counters", "quotas.reconcile", 3600, "Compares Redis token counters with the ledger."),
]


def register(apps, schema_editor):
    for name, task, seconds, description in SCHEDULES:
        register_periodic_task(apps, name=name, task=task, every=seconds, period="seconds", description=description)


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, *(name for name, *_ in SCHEDULES))


class Migration(migrations.Migration):
    dependencies = [("quotas", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register, unregister)]
