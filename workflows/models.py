"""Workflows, their immutable versions, and the rows the engine runs on: runs, step runs, approvals, events.

The language is in docs/workflows.md; the engine in workflows/engine.py. A run is pinned to the version it
started with; every state a user can see (a step's input, output, attempts, tokens, cost, timings, an
approval's decisions, the run's event stream) is a row here.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Workflow(models.Model):
    """A named workflow of a user; what it does is its current version."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows")
    name = models.SlugField(max_length=100)
    description = models.CharField(max_length=500, blank=True, default="")
    current_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # The inbound webhook's signing secret (Standard Webhooks), kept encrypted (core.encryption).
    hook_secret_encrypted = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        permissions = [("use_workflow", "Can use (run) a shared workflow")]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="workflow_name_unique_per_owner")]

    def __str__(self):
        return self.name


class WorkflowVersion(models.Model):
    """One saved definition, never changed: saving a workflow makes a new version."""

    class Format(models.TextChoices):
        YAML = "yaml", "YAML"
        JSON = "json", "JSON"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField(help_text="The definition as written.")
    format = models.CharField(max_length=4, choices=Format.choices)
    definition = models.JSONField(help_text="The validated, normalised definition the engine runs.")
    note = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_unique")]

    def __str__(self):
        return f"{self.workflow} v{self.number}"


class RunQuerySet(models.QuerySet):
    def unfinished(self):
        return self.filter(status__in=WorkflowRun.UNFINISHED)


class WorkflowRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        API = "api", "API"
        BROWSER = "browser", "Browser"
        SCHEDULE = "schedule", "Schedule"
        WEBHOOK = "webhook", "Inbound webhook"
        RERUN = "rerun", "Re-run"
        WORKFLOW = "workflow", "Called by a workflow"

    UNFINISHED = (Status.RUNNING,)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflow_runs", help_text="Who started it."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.API)
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.CASCADE, related_name="child_runs", editable=False
    )
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    rerun_from = models.CharField(max_length=63, blank=True, default="")
    tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    saved_tokens = models.PositiveBigIntegerField(default=0, help_text="Tokens of the steps a re-run reused.")
    saved_cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        verbose_name = "workflow run"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["workflow", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "workflow", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="workflow_run_idempotency_unique",
            )
        ]

    def __str__(self):
        return f"run {self.id} of {self.workflow}"


class StepRun(models.Model):
    """One step of a run (a map's item and a parallel branch are step runs with a parent)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED)
    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=200, help_text="The step's id; 'map[3]' for an item, 'par.branch' for a branch.")
    step_id = models.CharField(max_length=63, help_text="The id of its definition in the workflow.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    index = models.PositiveIntegerField(null=True, blank=True, help_text="A map item's place in the list.")
    kind = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(default=1)
    claim = models.PositiveIntegerField(default=0, help_text="Bumped by each worker that takes the step.")
    item = models.JSONField(null=True, blank=True, help_text="A map item's value.")
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    agent_run_id = models.UUIDField(null=True, blank=True)
    reused = models.BooleanField(default=False, help_text="Copied from the earlier run a re-run started from.")
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Re-queued by the reaper after this.")
    wake_at = models.DateTimeField(null=True, blank=True, help_text="When a waiting step times out or wakes.")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="step_run_key_unique")]
        indexes = [
            models.Index(
                fields=["lease_until"], condition=models.Q(status__in=["queued", "running"]), name="step_lease"
            ),
            models.Index(fields=["wake_at"], condition=models.Q(status="waiting"), name="step_wake"),
        ]

    def __str__(self):
        return f"{self.key} ({self.status})"

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() * 1000
        return None


class Approval(models.Model):
    """What an approval step waits for: `required` approvals from the named people (one rejection rejects)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    step = models.OneToOneField(StepRun, on_delete=models.CASCADE, related_name="approval")
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="approvals")
    approvers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    role = models.CharField(max_length=20, blank=True, default="", help_text="Anyone of this role may decide.")
    required = models.PositiveSmallIntegerField(default=1)
    context = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"approval of {self.step}"


class ApprovalDecision(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    class Via(models.TextChoices):
        BROWSER = "browser", "Browser"
        API = "api", "API"
        LINK = "link", "Signed link"

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    decision = models.CharField(max_length=7, choices=Decision.choices)
    comment = models.CharField(max_length=1000, blank=True, default="")
    via = models.CharField(max_length=7, choices=Via.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["approval", "user"], name="one_decision_per_user")]


class RunEvent(models.Model):
    """The run's history, in order: what the run page and the server-sent events stream show. Its id is the
    event id a stream resumes from (`Last-Event-ID`)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40)
    step = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"])]


class RunSignal(models.Model):
    """An event posted to a run (for a `wait: {event: ...}` step), kept until a step takes it."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="signals")
    name = models.CharField(max_length=100)
    data = models.JSONField(null=True, blank=True)
    taken_by = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class WorkflowSchedule(models.Model):
    """Runs a workflow on a cron schedule, through a django-celery-beat row operators see in the admin."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    cron = models.CharField(max_length=100, help_text="minute hour day-of-month month day-of-week, in UTC.")
    inputs = models.JSONField(default=dict, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.CASCADE, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
