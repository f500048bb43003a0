from django.conf import settings
from django.db import migrations

HEARTBEAT_NAME = "platform heartbeat"  # 0002's job, sent to the default queue


def job_name(queue: str) -> str:
    return HEARTBEAT_NAME if queue == "celery" else f"{HEARTBEAT_NAME}: {queue}"


def register_heartbeats(apps, schema_editor):
    """A heartbeat job per queue in HEARTBEAT_QUEUES, so /readyz tells which queues a worker takes. A heartbeat
    no worker takes within an interval expires: a worker that comes back skips the ones that waited."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    seconds = settings.HEARTBEAT_INTERVAL_SECONDS
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.filter(name=HEARTBEAT_NAME, queue__isnull=True).update(queue="celery")
    for queue in settings.HEARTBEAT_QUEUES:
        job, _ = PeriodicTask.objects.get_or_create(
            name=job_name(queue),
            defaults={
                "task": "platform.heartbeat",
                "interval": every,
                "queue": queue,
                "description": f"Proves beat runs and a worker takes the {queue} queue.",
            },
        )
        if job.expire_seconds is None:
            job.expire_seconds = seconds
            job.save(update_fields=["expire_seconds"])


def unregister_heartbeats(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="platform.heartbeat").exclude(name=HEARTBEAT_NAME).delete()
    PeriodicTask.objects.filter(name=HEARTBEAT_NAME).update(queue=None, expire_seconds=None)


class Migration(migrations.Migration):
    dependencies = [("platform_site", "0002_heartbeat_schedule")]

    operations = [migrations.RunPython(register_heartbeats, unregister_heartbeats)]
