"""Reads of accounts, each scoped to who is asking. Missing and forbidden look the same: Http404."""

from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404
from guardian.models import UserObjectPermission

from accounts.models import ROLES, ApiKey, Preferences, SecurityEvent, User


def user_may_manage_all_keys(user: User) -> bool:
    return user.has_perm("accounts.manage_all_keys")


# --- API keys ------------------------------------------------------------------------------------------


def apikey_list(*, user: User, owner_id: int | None = None) -> QuerySet[ApiKey]:
    """The caller's keys; operators may ask for another owner's."""
    if owner_id is not None and owner_id != user.pk and not user_may_manage_all_keys(user):
        return ApiKey.objects.none()
    return ApiKey.objects.filter(user_id=owner_id or user.pk).select_related("user")


def outranks(user: User, other: User) -> bool:
    """Whether `user` holds a more powerful role than `other` (admins outrank everyone but admins)."""
    rank = {role: len(ROLES) - index for index, role in enumerate(ROLES)}
    return user.role == "admin" or rank.get(user.role, 0) > rank.get(other.role, 0)


def apikey_owner_get(*, actor: User, user_id: int | None) -> User:
    """Whom a new key is for: the caller, or (operators) a user of lower rank, never an equal or higher one."""
    if user_id is None or user_id == actor.pk:
        return actor
    if not user_may_manage_all_keys(actor):
        raise PermissionDenied("Only operators create keys for other users.")
    owner = User.objects.filter(pk=user_id).first()
    if owner is None:
        raise ValidationError({"user": "No such user."})
    if not outranks(actor, owner):
        raise PermissionDenied("Keys can only be created for users of a lower role than yours.")
    return owner


def apikey_get(*, user: User, pk, own_only: bool = False) -> ApiKey:
    keys = ApiKey.objects.select_related("user")
    if own_only or not user_may_manage_all_keys(user):
        keys = keys.filter(user=user)
    key = keys.filter(pk=pk).first()
    if key is None:
        raise Http404("No such API key.")
    return key


# --- preferences and events ----------------------------------------------------------------------------


def preferences_get(*, user: User) -> Preferences:
    """The user's preferences, or the defaults (unsaved) if they never saved any."""
    return Preferences.objects.filter(user=user).first() or Preferences(user=user)


def security_event_list(*, user: User) -> QuerySet[SecurityEvent]:
    """The events a user sees about themself: logins, keys, password and role changes."""
    return SecurityEvent.objects.filter(user=user, kind__in=SecurityEvent.OWN_KINDS).select_related("actor", "api_key")


# --- users and roles (admins) --------------------------------------------------------------------------


def user_list() -> QuerySet[User]:
    return User.objects.prefetch_related("groups").order_by("username")


def user_get(*, pk) -> User:
    user = user_list().filter(pk=pk).first()
    if user is None:
        raise Http404("No such user.")
    return user


def user_get_by_username(*, username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise Http404("No such user.")
    return user


def role_list() -> QuerySet[Group]:
    groups = Group.objects.filter(name__in=ROLES).prefetch_related("permissions__content_type")
    return sorted(groups, key=lambda group: ROLES.index(group.name))


# --- owned or shared objects ---------------------------------------------------------------------------
# The one gate for user-owned objects of every app: `owned_or_shared(user=..., queryset=Agent.objects.all())`.
# Role (global) permissions never widen it: a viewer holding `view_agent` still sees only their own
# agents and those shared with them.


def owned_or_shared(*, user: User, queryset: QuerySet, level: str = "view") -> QuerySet:
    return queryset.filter(Q(owner=user) | Q(pk__in=shared_pks(user=user, model=queryset.model, level=level)))


def shared_pks(*, user: User, model, level: str = "view") -> QuerySet:
    """Primary keys of the `model` objects shared with the user at `level`, as a subquery. Shares are
    guardian object permissions granted to users (never to groups, see services.object_share), so one
    lookup of the user's object permissions says it: guardian's get_objects_for_user costs several
    queries more (global, group and superuser checks) on every search."""
    permissions = UserObjectPermission.objects.filter(
        user=user,
        content_type=ContentType.objects.get_for_model(model),
        permission__codename=f"{level}_{model._meta.model_name}",
    )
    return permissions.annotate(object_id=Cast("object_pk", output_field=type(model._meta.pk)())).values("object_id")


def owned_or_shared_get(*, user: User, queryset: QuerySet, pk, level: str = "view"):
    # Owners ask for their own objects most of the time: try that plain lookup before the share subquery.
    obj = (
        queryset.filter(owner=user, pk=pk).first()
        or owned_or_shared(user=user, queryset=queryset, level=level).filter(pk=pk).first()
    )
    if obj is None:
        raise Http404(f"No such {queryset.model._meta.verbose_name}.")
    return obj


def user_may_use(*, user: User, obj) -> bool:
    """Whether the user may use (invoke, run) an object they already see: theirs, or shared with them for
    use. Pages ask it to offer or leave out what only `use` allows."""
    if obj.owner_id == user.pk:
        return True
    same_object = type(obj)._default_manager.filter(pk=obj.pk)
    return owned_or_shared(user=user, queryset=same_object, level="use").exists()


def owned_get(*, user: User, queryset: QuerySet, pk):
    """Only the owner may change, delete or share an object; to anyone else it does not exist."""
    obj = queryset.filter(owner=user, pk=pk).first()
    if obj is None:
        raise Http404(f"No such {queryset.model._meta.verbose_name}.")
    return obj


def object_shares_by_id(*, obj) -> list[tuple[int, str]]:
    """(user id, level) of each user the object is shared with."""
    return [(user.pk, level) for user, level in object_shares(obj=obj)]


def object_shares(*, obj) -> list[tuple[User, str]]:
    """Who the object is shared with, and at which level: one query, however many shares."""
    use = f"use_{obj._meta.model_name}"
    permissions = (
        UserObjectPermission.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk))
        .exclude(user_id=obj.owner_id)
        .select_related("user", "permission")
    )
    shares: dict[int, tuple[User, str]] = {}
    for permission in permissions:
        held = shares.get(permission.user_id, (permission.user, "view"))
        shares[permission.user_id] = (permission.user, "use" if permission.permission.codename == use else held[1])
    return sorted(shares.values(), key=lambda share: share[0].username)


def agent_choices(user) -> list[tuple[str, str]]:
    """The agents the user may invoke (theirs, and those shared with them for use), stored as `agent:<id>`,
    the name the OpenAI-compatible API accepts too. Agents live above accounts: the model is looked up by
    its label, not imported."""
    agent_model = apps.get_model("agents", "Agent")
    agents = owned_or_shared(user=user, queryset=agent_model.objects.select_related("owner"), level="use")
    return [
        (f"agent:{agent.pk}", agent.name if agent.owner_id == user.pk else f"{agent.owner.username}/{agent.name}")
        for agent in agents.order_by("name", "pk")
    ]


def model_choices() -> list[tuple[str, str]]:
    """The catalog's models that can be called (active, on an active provider), by name."""
    model = apps.get_model("agents", "LanguageModel")
    names = model.objects.filter(is_active=True, provider__is_active=True).order_by("name")
    return [(name, name) for name in names.values_list("name", flat=True)]
