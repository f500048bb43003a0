import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import ROLES

# (limit field, dimension counted, window) for every limit a policy can set.
LIMITS = (
    ("requests_per_minute", "requests", "minute"),
    ("requests_per_hour", "requests", "hour"),
    ("requests_per_day", "requests", "day"),
    ("tokens_per_minute", "tokens", "minute"),
    ("tokens_per_day", "tokens", "day"),
    ("cost_per_day", "cost", "day"),
    ("cost_per_month", "cost", "month"),
)
LIMITS_BY_FIELD = {name: (dimension, window) for name, dimension, window in LIMITS}


class QuotaPolicy(models.Model):
    """Limits for whom it applies to, on what it covers. Every policy that applies to a request must pass.

    Counters are kept per API key for a policy on a key, per user otherwise (a policy for everyone or a role
    gives each user that allowance). Agent types and models are named by slug / catalog name, blank = any.
    """

    class AppliesTo(models.TextChoices):
        EVERYONE = "everyone", "Everyone"
        ROLE = "role", "A role"
        USER = "user", "A user"
        API_KEY = "api_key", "An API key"

    name = models.SlugField(max_length=60, unique=True, help_text="Named in refusals and RateLimit headers.")
    applies_to = models.CharField(max_length=10, choices=AppliesTo.choices, default=AppliesTo.EVERYONE)
    role = models.CharField(max_length=10, choices=[(role, role) for role in ROLES], blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    agent_type = models.SlugField(max_length=50, blank=True, default="", help_text="Slug; blank: any agent type.")
    model = models.SlugField(max_length=100, blank=True, default="", help_text="Catalog name; blank: any model.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    cost_per_day = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True, help_text="USD")
    cost_per_month = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True, help_text="USD")
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "quota policies"
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        needed = {"role": "role", "user": "user", "api_key": "api_key"}.get(self.applies_to)
        if needed and not getattr(self, needed if needed == "role" else f"{needed}_id"):
            raise ValidationError({needed: f"Choose the {needed.replace('_', ' ')} this policy applies to."})
        if not any(getattr(self, field) is not None for field, _, _ in LIMITS):
            raise ValidationError("Set at least one limit.")


class UsageRecord(models.Model):
    """The ledger: one row per agent run with what it used and cost (written when the quota is settled)."""

    run_id = models.UUIDField(default=uuid.uuid4, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent_type = models.CharField(max_length=50)
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    cached = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"])]


class UsageDaily(models.Model):
    """Usage rolled up per day, user, key, agent type and model (a periodic task keeps it current)."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent_type = models.CharField(max_length=50)
    model = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        verbose_name_plural = "daily usage"
        ordering = ["-day", "user_id"]
        permissions = [("view_all_usage", "Can see every user's usage")]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "api_key", "agent_type", "model"],
                name="usage_daily_unique",
                nulls_distinct=False,
            )
        ]
