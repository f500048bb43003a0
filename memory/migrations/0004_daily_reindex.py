from django.db import migrations


def daily(apps, schema_editor):
    """Reindex now rebuilds only what bloated or changed: it can run daily (unless an operator changed it)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=24, period="hours")
    PeriodicTask.objects.filter(name="reindex memories", interval__every=24 * 7, interval__period="hours").update(
        interval=interval,
        description="Creates missing partition indexes; rebuilds those that bloated or whose settings changed.",
    )
    PeriodicTask.objects.filter(name="prune memories").update(
        description="Expired, past retention, faded and near-duplicate memories; owners' caps."
    )


class Migration(migrations.Migration):
    dependencies = [("memory", "0003_maintenance_schedules")]

    operations = [migrations.RunPython(daily, migrations.RunPython.noop)]
