"""Schedules: a workflow run on a cron schedule, through a django-celery-beat row (operators see and pause
it in the admin; beat starts the run as the schedule's owner)."""

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from workflows.models import Workflow, WorkflowSchedule
from workflows.services.runs import run_inputs


@transaction.atomic
def schedule_create(*, workflow: Workflow, owner, cron: str, inputs=None) -> WorkflowSchedule:
    fields = (cron or "").split()
    if len(fields) != 5:
        raise ValidationError({"cron": "Five fields: minute hour day-of-month month day-of-week (UTC)."})
    run_inputs(workflow.current_version.definition, inputs or {})  # refused now, not at 3 a.m.
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
    )
    try:
        crontab.full_clean()
    except ValidationError as error:
        raise ValidationError({"cron": "; ".join(error.messages)}) from error
    schedule = WorkflowSchedule(workflow=workflow, owner=owner, cron=" ".join(fields), inputs=inputs or {})
    schedule.periodic_task = PeriodicTask.objects.create(
        name=f"workflow {workflow.pk} schedule {WorkflowSchedule.objects.count() + 1} ({workflow.name})",
        task="workflows.start_scheduled",
        crontab=crontab,
        kwargs="{}",
        description=f"Runs the workflow {workflow.name} of {owner.username}.",
    )
    schedule.save()
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(kwargs=json.dumps({"schedule_id": schedule.pk}))
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: WorkflowSchedule) -> None:
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()  # cascades to the schedule
