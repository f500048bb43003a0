"""The platform's periodic jobs are rows of django-celery-beat, so operators can change them in the admin.

Each app registers its jobs from a migration with these two functions (created once, never overwritten).
"""


def register_periodic_task(apps, *, name: str, task: str, every: int, period: str, description: str) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    PeriodicTask.objects.get_or_create(
        name=name, defaults={"task": task, "interval": interval, "description": description}
    )


def unregister_periodic_tasks(apps, *names: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()
