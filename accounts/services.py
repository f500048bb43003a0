"""Writes and rules of accounts: users and roles, API keys, preferences, sharing, security events."""

import hmac
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.http import urlsafe_base64_decode
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import (
    ROLES,
    ApiKey,
    Preferences,
    SecurityEvent,
    User,
    hash_key_secret,
    new_key_id,
    new_key_secret,
    parse_key,
)
from accounts.roles import STAFF_ROLES
from accounts.scopes import key_scopes
from accounts.security import client_ip, user_agent
from accounts.trail import trail_append
from core import local_cache
from core.correlation import current_request_id
from core.exceptions import Conflict

logger = logging.getLogger("switchboard.security")

# Last-used time and address are written at most this often per key, so the hot path stays read-only.
LAST_USED_RESOLUTION = timedelta(seconds=60)


# --- security events -----------------------------------------------------------------------------------


def security_event_record(*, kind, request=None, actor=None, user=None, api_key=None, **detail) -> SecurityEvent:
    """Record a security event with the address, user agent and request id of the request, if any, sealed as
    the next link of the tamper-evident trail."""
    actor = actor if actor is not None and actor.is_authenticated else None
    with transaction.atomic():
        event = SecurityEvent.objects.create(
            kind=kind,
            actor=actor,
            user=user,
            api_key=api_key,
            ip_address=client_ip(request) if request is not None else None,
            user_agent=user_agent(request) if request is not None else "",
            request_id=current_request_id() or "",
            detail=detail,
        )
        trail_append(event)
    logger.info(
        "security event %s",
        kind,
        extra={
            "event": str(kind),
            "subject_user_id": user.pk if user else None,
            "key": api_key.prefix if api_key else None,
        },
    )
    return event


# --- users and roles -----------------------------------------------------------------------------------


@transaction.atomic
def user_register(*, username: str, email: str, password: str, request=None) -> User:
    """A new account with the default role and default preferences. Raises ValidationError on bad input."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with that username already exists."})
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "An account with that email address already exists."})
    user = User(username=username, email=email)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from error
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    _set_role_groups(user, settings.DEFAULT_ROLE)
    Preferences.objects.create(user=user)
    security_event_record(kind=SecurityEvent.Kind.SIGNUP, request=request, actor=user, user=user)
    return user


@transaction.atomic
def user_create(
    *, username: str, email: str, password: str, role: str | None = None, actor: User, request=None
) -> User:
    """An account made by an admin, with the role they chose (else the default role)."""
    user = user_register(username=username, email=email, password=password, request=request)
    if role:
        user_set_role(user=user, role=role, actor=actor, request=request)
    return user


@transaction.atomic
def user_update(
    *, user: User, actor: User, role: str | None = None, is_active: bool | None = None, request=None
) -> User:
    """An admin's change of a user's role or active state."""
    if role is not None:
        user_set_role(user=user, role=role, actor=actor, request=request)
    if is_active is not None:
        user_set_active(user=user, is_active=is_active, actor=actor, request=request)
    return user


def _set_role_groups(user: User, role: str) -> None:
    user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name=role))
    user.groups.add(Group.objects.get(name=role))
    user._role = role
    for cache_name in ("_perm_cache", "_group_perm_cache", "_user_perm_cache"):
        user.__dict__.pop(cache_name, None)
    is_staff = role in STAFF_ROLES
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


@transaction.atomic
def user_set_role(*, user: User, role: str, actor: User, request=None) -> User:
    """Give the user exactly one role. The last active admin cannot lose theirs."""
    if role not in ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(ROLES)}."})
    previous = user.role
    if previous == "admin" and role != "admin":
        _ensure_another_admin(user)
        if user.is_superuser:  # a superuser holds every permission whatever their groups say
            user.is_superuser = False
            user.save(update_fields=["is_superuser"])
    _set_role_groups(user, role)
    if previous == role:
        return user
    security_event_record(
        kind=SecurityEvent.Kind.ROLE_CHANGED, request=request, actor=actor, user=user, previous=previous, role=role
    )
    return user


def _ensure_another_admin(user: User) -> None:
    """Raise Conflict if `user` is the last active admin.

    Locks the admin group's row first, so two admins demoting each other at once are served one after the
    other and the second sees the first's change.
    """
    Group.objects.select_for_update().filter(name="admin").first()
    if is_last_active_admin(user):
        raise Conflict("This is the last active admin; make another admin first.")


def is_last_active_admin(user: User) -> bool:
    admins = User.objects.filter(is_active=True).filter(Q(groups__name="admin") | Q(is_superuser=True))
    return not admins.exclude(pk=user.pk).exists()


@transaction.atomic
def user_update_profile(*, user: User, current_password: str = "", request=None, **fields) -> User:
    """Change names and email. The email leads to password resets, so changing it needs the password."""
    unknown = set(fields) - {"first_name", "last_name", "email"}
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    email = fields.get("email")
    email_changes = email is not None and email.lower() != user.email.lower()
    if email_changes:
        if not user.check_password(current_password):
            raise ValidationError({"current_password": "Enter your current password to change your email address."})
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise ValidationError({"email": "An account with that email address already exists."})
    previous_email = user.email
    for name, value in fields.items():
        setattr(user, name, value)
    user.full_clean(exclude=["password"])
    user.save(update_fields=list(fields))
    if email_changes:
        security_event_record(
            kind=SecurityEvent.Kind.EMAIL_CHANGED, request=request, actor=user, user=user, previous=previous_email
        )
    return user


@transaction.atomic
def user_set_active(*, user: User, is_active: bool, actor: User, request=None) -> User:
    """Deactivating a user also stops their API keys and sessions from authenticating (checked per request)."""
    if not is_active and user.role == "admin":
        _ensure_another_admin(user)
    if user.is_active != is_active:
        user.is_active = is_active
        user.save(update_fields=["is_active"])
    return user


def user_change_password(*, user: User, old_password: str, new_password: str, request=None) -> User:
    if not user.check_password(old_password):
        raise ValidationError({"old_password": "Your old password was entered incorrectly."})
    try:
        password_validation.validate_password(new_password, user)
    except ValidationError as error:
        raise ValidationError({"new_password": error.messages}) from error
    user.set_password(new_password)
    user.save(update_fields=["password"])
    security_event_record(kind=SecurityEvent.Kind.PASSWORD_CHANGED, request=request, actor=user, user=user)
    return user


def password_reset_request(*, email: str, request, use_https: bool) -> None:
    """Email a reset link to the active account with this address, if there is one (the caller learns
    nothing either way)."""
    form = PasswordResetForm(data={"email": email})
    if not form.is_valid():
        return
    form.save(request=request, use_https=use_https)
    for user in form.get_users(email):
        security_event_record(kind=SecurityEvent.Kind.PASSWORD_RESET_REQUESTED, request=request, user=user)


def password_reset_confirm(*, uid: str, token: str, new_password: str, request=None) -> User:
    """Set a new password from a reset link's uid and token; a used or forged link is refused."""
    try:
        user = User.objects.get(pk=urlsafe_base64_decode(uid).decode(), is_active=True)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        raise ValidationError({"token": "This reset link is invalid or has been used."})
    form = SetPasswordForm(user, {"new_password1": new_password, "new_password2": new_password})
    if not form.is_valid():
        raise ValidationError({"new_password": form.errors.as_data()["new_password2"]})
    form.save()
    security_event_record(kind=SecurityEvent.Kind.PASSWORD_RESET, request=request, actor=user, user=user)
    return user


# --- API keys ------------------------------------------------------------------------------------------


class ApiKeyRejected(Exception):
    """Authentication with a key failed; `reason` goes to the security event, never to the caller."""

    def __init__(self, reason: str, key: ApiKey | None = None):
        super().__init__(reason)
        self.reason = reason
        self.key = key


def _validate_scopes(scopes) -> list[str]:
    unknown = sorted(set(scopes) - key_scopes().keys())
    if unknown:
        raise ValidationError({"scopes": f"Unknown scopes: {', '.join(unknown)}."})
    if not scopes:
        raise ValidationError({"scopes": "Give the key at least one scope."})
    return sorted(set(scopes))


@transaction.atomic
def apikey_create(
    *,
    user: User,
    name: str,
    scopes,
    expires_at: datetime | None = None,
    actor: User,
    caller_key: ApiKey | None = None,
    request=None,
) -> tuple[ApiKey, str]:
    """A new key and its full text, which is shown once and never stored.

    Made with a key (`caller_key`), it may not carry scopes that key lacks, nor outlive it.
    """
    if caller_key is not None:
        if not set(scopes) <= set(caller_key.scopes):
            raise PermissionDenied("A key cannot create a key with scopes it does not have itself.")
        if caller_key.expires_at:
            expires_at = min(expires_at or caller_key.expires_at, caller_key.expires_at)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    secret = new_key_secret()
    key = ApiKey.objects.create(
        key_id=new_key_id(),
        user=user,
        name=name,
        scopes=_validate_scopes(scopes),
        secret_hash=hash_key_secret(secret),
        expires_at=expires_at,
        created_by=actor,
    )
    security_event_record(
        kind=SecurityEvent.Kind.KEY_CREATED, request=request, actor=actor, user=user, api_key=key, scopes=key.scopes
    )
    return key, key.full_key(secret)


@transaction.atomic
def apikey_rotate(
    *,
    key: ApiKey,
    actor: User | None,
    grace: timedelta | None = None,
    caller_scopes: set[str] | None = None,
    request=None,
) -> tuple[ApiKey, str]:
    """A new secret for the key; the current one keeps working for `grace` (API_KEY_ROTATION_GRACE_HOURS).

    Rotating again within the grace period ends the older secret at once: only one previous secret lives.
    Made with a key (`caller_scopes`), it may not rotate a key with scopes that key lacks.
    """
    if caller_scopes is not None and not set(key.scopes) <= caller_scopes:
        raise PermissionDenied("A key cannot rotate a key with scopes it does not have itself.")
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.status != "active":
        raise Conflict(f"This key is {key.status}; only an active key can be rotated.")
    if grace is None:
        grace = timedelta(hours=settings.API_KEY_ROTATION_GRACE_HOURS)
    now = timezone.now()
    secret = new_key_secret()
    key.previous_secret_hash = key.secret_hash if grace > timedelta(0) else ""
    key.previous_valid_until = now + grace if grace > timedelta(0) else None
    key.secret_hash = hash_key_secret(secret)
    key.rotated_at = now
    key.save(update_fields=["secret_hash", "previous_secret_hash", "previous_valid_until", "rotated_at"])
    security_event_record(
        kind=SecurityEvent.Kind.KEY_ROTATED,
        request=request,
        actor=actor,
        user=key.user,
        api_key=key,
        previous_valid_until=key.previous_valid_until.isoformat() if key.previous_valid_until else None,
    )
    return key, key.full_key(secret)


@transaction.atomic
def apikey_revoke(*, key: ApiKey, actor: User | None, request=None, reason=ApiKey.RevokeReason.REVOKED) -> ApiKey:
    """Stops the key at once, in every process: authentication reads the row on each request."""
    key = ApiKey.objects.select_for_update().select_related("user").get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.revoke_reason = reason
        key.previous_secret_hash, key.previous_valid_until = "", None
        key.save(update_fields=["revoked_at", "revoke_reason", "previous_secret_hash", "previous_valid_until"])
        kind = (
            SecurityEvent.Kind.KEY_EXPIRED if reason == ApiKey.RevokeReason.EXPIRED else SecurityEvent.Kind.KEY_REVOKED
        )
        security_event_record(kind=kind, request=request, actor=actor, user=key.user, api_key=key)
    return key


def apikeys_expire_due(*, now: datetime | None = None) -> int:
    """Mark keys past their expiry as expired (they already fail to authenticate) and drop ended grace secrets."""
    now = now or timezone.now()
    ApiKey.objects.filter(previous_valid_until__lte=now).update(previous_secret_hash="", previous_valid_until=None)
    expired = 0
    for key in ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=now).select_related("user"):
        apikey_revoke(key=key, actor=None, reason=ApiKey.RevokeReason.EXPIRED)
        expired += 1
    return expired


def apikey_authenticate(*, raw_key: str, request) -> ApiKey:
    """The active key matching `raw_key`, with its user loaded; raises ApiKeyRejected with the reason.

    The key is read once per process (core.local_cache: dropped everywhere when it or its user changes),
    so a revocation holds in every process within milliseconds of its commit.
    """
    key_id, secret = _parsed(raw_key)
    key = _checked(local_cache.get("apikey", key_id, load=lambda: _key_record(key_id=key_id)), secret)
    _touch_last_used(key, client_ip(request), timezone.now())
    return key


async def apikey_authenticate_async(*, raw_key: str) -> ApiKey:
    """apikey_authenticate for async code; the last use is written by the run recorder (agents.recording)."""
    key_id, secret = _parsed(raw_key)
    return _checked(await local_cache.aget("apikey", key_id, load=lambda: _key_record(key_id=key_id)), secret)


def _parsed(raw_key: str) -> tuple[str, str]:
    parsed = parse_key(raw_key)
    if parsed is None:
        raise ApiKeyRejected("malformed")
    return parsed


def apikey_for_task(*, pk: int) -> ApiKey | None:
    """The key a task was started with (whatever its state now), with its user, role and permissions, from
    the process's cache as authentication reads it."""
    return local_cache.get("apikey", f"pk:{pk}", load=lambda: _key_record(pk=pk))


def _key_record(**lookup) -> ApiKey | None:
    """The key with its user, and the user's role and permissions worked out: all authentication and
    authorization read, so a cached key answers them without the database."""
    key = ApiKey.objects.select_related("user").filter(**lookup).first()
    if key is not None:
        key.user.role  # noqa: B018  (kept on the user object)
        key.user.get_all_permissions()  # likewise
    return key


def _checked(key: ApiKey | None, secret: str) -> ApiKey:
    if key is None:
        raise ApiKeyRejected("unknown")
    now = timezone.now()
    presented = hash_key_secret(secret)
    if not hmac.compare_digest(presented, key.secret_hash):
        previous = key.previous_secret_hash and hmac.compare_digest(presented, key.previous_secret_hash)
        if not previous or key.previous_valid_until is None:
            raise ApiKeyRejected("wrong_secret", key)
        if key.previous_valid_until <= now:
            raise ApiKeyRejected("rotated_out", key)
    if key.revoked_at is not None:
        raise ApiKeyRejected(key.revoke_reason or "revoked", key)
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyRejected("expired", key)
    if not key.user.is_active:
        raise ApiKeyRejected("user_inactive", key)
    return key


def _touch_last_used(key: ApiKey, address: str | None, now: datetime) -> None:
    if key.last_used_at and now - key.last_used_at < LAST_USED_RESOLUTION and key.last_used_ip == address:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=address)
    key.last_used_at, key.last_used_ip = now, address


# --- preferences ---------------------------------------------------------------------------------------

PREFERENCE_FIELDS = [
    "default_agent",
    "default_model",
    "memory_enabled",
    "memory_retention_days",
    "memory_max_items",
    "timezone",
    "notification_webhook",
]


@transaction.atomic
def preferences_update(*, user: User, **fields) -> Preferences:
    unknown = set(fields) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValueError(f"not preference fields: {sorted(unknown)}")
    preferences, _ = Preferences.objects.select_for_update().get_or_create(user=user)
    for name, value in fields.items():
        setattr(preferences, name, value)
    preferences.full_clean()
    preferences.save()
    return preferences


# --- sharing objects (django-guardian) -----------------------------------------------------------------
# A shareable model has an `owner` foreign key and a `use_<model>` permission in Meta.permissions.
# `view` lets the other user read the object; `use` also lets them use it (invoke, run, search).

SHARE_LEVELS = ("view", "use")


def _share_permissions(obj, level: str) -> list[str]:
    model = obj._meta.model_name
    return [f"view_{model}"] if level == "view" else [f"view_{model}", f"use_{model}"]


@transaction.atomic
def object_share(*, obj, owner: User, user: User, level: str, request=None) -> None:
    """Share the owner's object with `user` at `level`, replacing any earlier level."""
    if level not in SHARE_LEVELS:
        raise ValidationError({"level": f"Share with level 'view' or 'use', not {level!r}."})
    if obj.owner_id != owner.pk:
        raise PermissionError("only the owner shares an object")
    if user.pk == owner.pk:
        raise ValidationError({"user": "You already own this object."})
    for perm in _share_permissions(obj, "use"):
        remove_perm(perm, user, obj)
    for perm in _share_permissions(obj, level):
        assign_perm(perm, user, obj)
    security_event_record(
        kind=SecurityEvent.Kind.PERMISSION_GRANTED,
        request=request,
        actor=owner,
        user=user,
        object=f"{obj._meta.label_lower}:{obj.pk}",
        level=level,
    )


@transaction.atomic
def object_unshare(*, obj, owner: User, user: User, request=None) -> None:
    if obj.owner_id != owner.pk:
        raise PermissionError("only the owner unshares an object")
    for perm in _share_permissions(obj, "use"):
        remove_perm(perm, user, obj)
    security_event_record(
        kind=SecurityEvent.Kind.PERMISSION_REVOKED,
        request=request,
        actor=owner,
        user=user,
        object=f"{obj._meta.label_lower}:{obj.pk}",
    )


def object_shares_end(*, obj) -> None:
    """Before an object is deleted: its shares go too (guardian's rows do not follow it)."""
    UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk)
    ).delete()
