import hashlib
import re
import secrets
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone

# Roles, from most to least powerful; each is a group holding the role's model permissions (accounts.roles).
ROLES = ("admin", "operator", "member", "viewer")


class User(AbstractUser):
    """The platform's user, custom from the first migration so identity can grow without a data migration."""

    class Meta(AbstractUser.Meta):
        db_table = "accounts_user"
        permissions = [
            ("manage_roles", "Can change users' roles"),
            ("manage_all_keys", "Can list, create and revoke API keys of any user"),
        ]

    def refresh_from_db(self, *args, **kwargs):
        self.__dict__.pop("_role", None)
        super().refresh_from_db(*args, **kwargs)

    @property
    def role(self) -> str | None:
        """The most powerful role the user holds (superusers are admins)."""
        if self.is_superuser:
            return "admin"
        if not hasattr(self, "_role"):  # once per user object (a request); role services set it afresh
            held = {group.name for group in self.groups.all()}
            self._role = next((role for role in ROLES if role in held), None)
        return self._role


# --- API keys ------------------------------------------------------------------------------------------
# The full key is `sb_<key id>_<secret>`: the key id is public (shown in lists and logs, and the `sb_`
# prefix lets secret scanners find leaked keys), the secret is 256 random bits kept only as a SHA-256 hash.
# A fast hash is right here: the secret is random, not a password, and every API request checks one.

KEY_PREFIX = "sb_"
KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
KEY_ID_LENGTH = 12
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{43}})$")


API_KEY_STATUSES = ["active", "revoked", "expired"]


def new_key_id() -> str:
    return "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


def new_key_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_key_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(raw: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = KEY_PATTERN.match(raw)
    return (match.group(1), match.group(2)) if match else None


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    class RevokeReason(models.TextChoices):
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    key_id = models.CharField(max_length=KEY_ID_LENGTH, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scopes = ArrayField(models.CharField(max_length=40), default=list)
    secret_hash = models.CharField(max_length=64, editable=False)
    # After a rotation the previous secret keeps working until previous_valid_until.
    previous_secret_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=10, choices=RevokeReason.choices, blank=True, default="")
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self):
        return f"{self.prefix} ({self.name})"

    @property
    def prefix(self) -> str:
        return f"{KEY_PREFIX}{self.key_id}"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return self.revoke_reason or "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def full_key(self, secret: str) -> str:
        return f"{self.prefix}_{secret}"


# --- preferences ---------------------------------------------------------------------------------------


def validate_timezone(value: str):
    from django.core.exceptions import ValidationError

    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (for example Europe/Paris or UTC).")


class Preferences(models.Model):
    """Per-user settings; later features read them through accounts.selectors.preferences_get."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    default_agent = models.CharField(max_length=100, blank=True, default="", help_text="Slug of an agent.")
    default_model = models.CharField(max_length=100, blank=True, default="", help_text="Name of a catalog model.")
    memory_enabled = models.BooleanField(default=True, help_text="Whether memories may be stored at all.")
    memory_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Memories older than this are pruned; empty keeps them.",
    )
    memory_max_items = models.PositiveIntegerField(
        "memory cap",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10_000_000)],
        help_text="At most this many memories are kept (the least important and least used go first); "
        "empty: the platform's default.",
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    notification_webhook = models.URLField(
        max_length=500, blank=True, default="", validators=[URLValidator(schemes=["http", "https"])]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self):
        return f"preferences of {self.user}"


# --- security events -----------------------------------------------------------------------------------


class SecurityEvent(models.Model):
    """One security-relevant event: who did it (actor), whom it concerns (user), from where, in which request."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Signed up"
        LOGIN_SUCCEEDED = "login_succeeded", "Login succeeded"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOGIN_LOCKED_OUT = "login_locked_out", "Login locked out"
        LOGOUT = "logout", "Logged out"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        EMAIL_CHANGED = "email_changed", "Email changed"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
        PASSWORD_RESET = "password_reset", "Password reset"
        KEY_CREATED = "key_created", "API key created"
        KEY_ROTATED = "key_rotated", "API key rotated"
        KEY_REVOKED = "key_revoked", "API key revoked"
        KEY_EXPIRED = "key_expired", "API key expired"
        KEY_REJECTED = "key_rejected", "API key rejected"
        ROLE_CHANGED = "role_changed", "Role changed"
        PERMISSION_GRANTED = "permission_granted", "Permission granted"
        PERMISSION_REVOKED = "permission_revoked", "Permission revoked"
        QUOTA_EXCEEDED = "quota_exceeded", "Quota exceeded"
        TRAIL_RESEALED = "trail_resealed", "Security trail re-sealed"

    # What a user sees of their own events in the browser.
    OWN_KINDS = [
        Kind.SIGNUP,
        Kind.LOGIN_SUCCEEDED,
        Kind.LOGIN_FAILED,
        Kind.LOGIN_LOCKED_OUT,
        Kind.LOGOUT,
        Kind.PASSWORD_CHANGED,
        Kind.EMAIL_CHANGED,
        Kind.PASSWORD_RESET,
        Kind.KEY_CREATED,
        Kind.KEY_ROTATED,
        Kind.KEY_REVOKED,
        Kind.KEY_EXPIRED,
        Kind.KEY_REJECTED,
        Kind.ROLE_CHANGED,
        Kind.QUOTA_EXCEEDED,
    ]

    kind = models.CharField(max_length=30, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    # The tamper-evident chain (accounts/trail.py): the event's place, the seal of the one before, its own seal,
    # and the ids it was written with (a deleted user empties the foreign key above, never these).
    sequence = models.PositiveBigIntegerField(unique=True, null=True, editable=False)
    previous_seal = models.CharField(max_length=64, blank=True, default="", editable=False)
    seal = models.CharField(max_length=64, blank=True, default="", editable=False)
    actor_ref = models.PositiveBigIntegerField(null=True, editable=False)
    user_ref = models.PositiveBigIntegerField(null=True, editable=False)
    api_key_ref = models.PositiveBigIntegerField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["kind", "-created_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class TrailCheck(models.Model):
    """One verification of the security-event trail (the daily beat job, or `manage.py security_trail verify`)."""

    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    events = models.PositiveBigIntegerField(help_text="Events in the chain.")
    head_sequence = models.PositiveBigIntegerField(null=True, blank=True, help_text="The last event seen.")
    head_seal = models.CharField(max_length=64, blank=True, default="")
    broken_at = models.PositiveBigIntegerField(null=True, blank=True, help_text="The first broken link.")
    problem = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self):
        return f"{'intact' if self.ok else 'BROKEN'} at {self.checked_at:%Y-%m-%d %H:%M:%S}"
