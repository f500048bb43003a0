"""Alert rules operators manage in the admin, the alerts they open, and every notification sent about them."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AlertRule(models.Model):
    """A condition checked by the evaluator on every round; each subject that meets it has one open alert."""

    class Kind(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate of agent runs"
        PROVIDER_FAILURES = "provider_failures", "Provider failures or an open circuit breaker"
        BUDGET = "budget", "A user's or key's budget used"
        TASK_FAILURES = "task_failures", "Background task failures"
        QUEUE_AGE = "queue_age", "Age of a queue's oldest message"
        SILENT = "silent", "Workers or beat silent"
        ERROR_LOGS = "error_logs", "Errors logged by the platform"
        SECURITY_TRAIL = "security_trail", "The security-event trail broken"

    class Severity(models.TextChoices):
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    # What `threshold` means for each kind, shown in the admin and in the notifications.
    UNITS = {
        Kind.ERROR_RATE: "% of runs failed",
        Kind.PROVIDER_FAILURES: "failed calls (or the breaker open)",
        Kind.BUDGET: "% of the limit",
        Kind.TASK_FAILURES: "failed tasks",
        Kind.QUEUE_AGE: "seconds",
        Kind.SILENT: "seconds since the last heartbeat",
        Kind.ERROR_LOGS: "records at ERROR or above",
        Kind.SECURITY_TRAIL: "(any broken link: the threshold is not used)",
    }

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Met at or above this value: a percentage (error rate, budget), a count or seconds (see the kind).",
    )
    window_minutes = models.PositiveIntegerField(
        default=5, help_text="Error rate, provider failures, task failures and error logs: counted over this window."
    )
    min_runs = models.PositiveIntegerField(
        default=20, help_text="Error rate: not judged on fewer runs than this in the window."
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=60, help_text="An alert still open is notified again at most this often."
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    email_to = models.TextField(blank=True, default="", help_text="Addresses to notify, one per line or comma.")
    webhook_endpoints = models.ManyToManyField(
        "tasks.WebhookEndpoint",
        blank=True,
        related_name="+",
        help_text="Sent alert.opened, alert.repeated and alert.resolved events (signed, retried, logged).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def unit(self) -> str:
        return self.UNITS[self.kind]

    def email_addresses(self) -> list[str]:
        return sorted({part.strip() for part in self.email_to.replace(",", "\n").splitlines() if part.strip()})


class Alert(models.Model):
    """One crossing of a rule by one subject: open while the condition holds, resolved by the evaluator after."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=200, help_text="What crossed the rule: a provider, a queue, a user's budget…")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    value = models.DecimalField(max_digits=16, decimal_places=2, help_text="The last value the evaluator saw.")
    summary = models.CharField(max_length=500)
    opened_at = models.DateTimeField(default=timezone.now)
    last_notified_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    silenced_until = models.DateTimeField(
        null=True, blank=True, help_text="Until then it sends nothing: no reminder, no resolve message."
    )
    silenced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # However many evaluators run, a subject has at most one open alert per rule.
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=models.Q(state="open"), name="one_open_alert_per_subject"
            )
        ]
        indexes = [models.Index(fields=["state", "-opened_at"])]

    def __str__(self):
        return f"{self.rule}: {self.subject}"

    def silenced(self, now) -> bool:
        return self.silenced_until is not None and now < self.silenced_until


class AlertNotification(models.Model):
    """One message about an alert to one destination: an e-mail (sent and retried by a task) or a webhook
    delivery (the tasks app signs, retries and logs it)."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        REPEATED = "repeated", "Still open"
        RESOLVED = "resolved", "Resolved"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10, choices=Event.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    destination = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    webhook_delivery = models.ForeignKey(
        "tasks.WebhookDelivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_event_display()} {self.alert} → {self.destination}"
