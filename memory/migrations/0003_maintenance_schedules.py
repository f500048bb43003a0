from django.db import migrations

from core.schedules import register_periodic_task, unregister_periodic_tasks

SCHEDULES = [
    ("prune memories", "memory.prune", 6, "Expired, past retention, and faded memories."),
    ("archive memories", "memory.archive", 24, "Memories unused for a long time leave the live indexes."),
    ("reindex memories", "memory.reindex", 24 * 7, "Creates missing partition indexes, rebuilds the others."),
    ("re-embed memories", "memory.reembed", 1, "Embeds again memories made by another model than the configured one."),
]


def register(apps, schema_editor):
    for name, task, hours, description in SCHEDULES:
        register_periodic_task(apps, name=name, task=task, every=hours, period="hours", description=description)


def unregister(apps, schema_editor):
    unregister_periodic_tasks(apps, *(name for name, *_ in SCHEDULES))


class Migration(migrations.Migration):
    dependencies = [("memory", "0002_partition_indexes"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(register, unregister)]
