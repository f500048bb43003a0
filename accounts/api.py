"""The accounts API: sign-up and sign-in, /me, keys, preferences, security events, users and roles, shares."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.http import urlsafe_base64_decode
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView

from accounts import selectors, serializers, services
from accounts.models import ApiKey, SecurityEvent, User
from accounts.permissions import ActionPolicy, request_scopes
from accounts.security import (
    LimiterUnavailable,
    key_creation_rate_exceeded,
    login_rate_exceeded,
    signup_rate_exceeded,
)
from platform_site.api_errors import DependencyUnavailable, int_or_404


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins from this account or address; try again later."


def run_service(function, **kwargs):
    """Call a service, turning its domain errors into API errors."""
    try:
        return function(**kwargs)
    except DjangoValidationError as error:
        raise exceptions.ValidationError(as_serializer_error(error)) from error
    except services.Conflict as error:
        raise ConflictError(str(error)) from error


def _refuse_when_limited(check, *args) -> None:
    """429 when a django-ratelimit check refuses, 503 when its store is unreachable (fails closed)."""
    try:
        limited = check(*args)
    except LimiterUnavailable:
        raise DependencyUnavailable() from None
    if limited:
        raise exceptions.Throttled(wait=60, detail="Too many attempts; slow down.")


class PolicyMixin:
    permission_classes = [ActionPolicy]


# --- sign-up, sign-in, passwords -----------------------------------------------------------------------


@extend_schema(tags=["auth"])
class SignupView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # a cross-site HTML form cannot post JSON: no login CSRF

    @extend_schema(request=serializers.SignupSerializer, responses={201: serializers.MeSerializer})
    def post(self, request):
        if not settings.REGISTRATION_OPEN:
            raise exceptions.PermissionDenied("Registration is closed; ask an admin for an account.")
        _refuse_when_limited(signup_rate_exceeded, request._request)
        data = serializers.SignupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = run_service(services.user_register, **data.validated_data, request=request)
        return Response(serializers.MeSerializer(user, context={"request": request}).data, status=201)


@extend_schema(tags=["auth"])
class LoginView(APIView):
    """Start a browser-style session (cookie); agents use API keys instead."""

    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # a cross-site HTML form cannot post JSON: no login CSRF

    @extend_schema(request=serializers.LoginSerializer, responses={200: serializers.MeSerializer})
    def post(self, request):
        data = serializers.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request
        _refuse_when_limited(login_rate_exceeded, django_request, data.validated_data["username"])
        user = authenticate(django_request, **data.validated_data)
        if getattr(django_request, "axes_locked_out", False):
            raise LockedOut(wait=settings.AXES_COOLOFF_TIME.total_seconds())
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        login(django_request, user)
        return Response(serializers.MeSerializer(user, context={"request": request}).data)


@extend_schema(tags=["auth"])
class LogoutView(PolicyMixin, APIView):
    action_policies = {"post": (None, None)}

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request._request)
        return Response(status=204)


@extend_schema(tags=["auth"])
class PasswordChangeView(PolicyMixin, APIView):
    action_policies = {"post": (None, "account:write")}

    @extend_schema(request=serializers.PasswordChangeSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = run_service(services.user_change_password, user=request.user, **data.validated_data, request=request)
        if request.auth is None:
            update_session_auth_hash(request._request, user)
        return Response(status=204)


@extend_schema(tags=["auth"])
class PasswordResetView(APIView):
    """Email a reset link if an account has this address; the answer is the same either way."""

    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # a cross-site HTML form cannot post JSON: no login CSRF

    @extend_schema(request=serializers.PasswordResetSerializer, responses={202: None})
    def post(self, request):
        data = serializers.PasswordResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        form = PasswordResetForm(data=data.validated_data)
        if form.is_valid():
            form.save(request=request._request, use_https=request.is_secure())
            for user in form.get_users(data.validated_data["email"]):
                services.security_event_record(
                    kind=SecurityEvent.Kind.PASSWORD_RESET_REQUESTED, request=request, user=user
                )
        return Response(status=202)


@extend_schema(tags=["auth"])
class PasswordResetConfirmView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # a cross-site HTML form cannot post JSON: no login CSRF

    @extend_schema(request=serializers.PasswordResetConfirmSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordResetConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            pk = urlsafe_base64_decode(data.validated_data["uid"]).decode()
            user = User.objects.get(pk=pk, is_active=True)
        except (ValueError, TypeError, OverflowError, User.DoesNotExist):
            user = None
        if user is None or not default_token_generator.check_token(user, data.validated_data["token"]):
            raise exceptions.ValidationError({"token": ["This reset link is invalid or has been used."]})
        form = SetPasswordForm(
            user,
            {
                "new_password1": data.validated_data["new_password"],
                "new_password2": data.validated_data["new_password"],
            },
        )
        if not form.is_valid():
            raise exceptions.ValidationError({"new_password": form.errors["new_password2"]})
        form.save()
        services.security_event_record(kind=SecurityEvent.Kind.PASSWORD_RESET, request=request, actor=user, user=user)
        return Response(status=204)


# --- me, preferences -----------------------------------------------------------------------------------


@extend_schema(tags=["me"])
class MeView(PolicyMixin, APIView):
    action_policies = {"get": (None, "account:read"), "patch": (None, "account:write")}

    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request):
        return Response(serializers.MeSerializer(request.user, context={"request": request}).data)

    @extend_schema(request=serializers.ProfileUpdateSerializer, responses=serializers.MeSerializer)
    def patch(self, request):
        data = serializers.ProfileUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = run_service(services.user_update_profile, user=request.user, request=request, **data.validated_data)
        return Response(serializers.MeSerializer(user, context={"request": request}).data)


@extend_schema(tags=["me"])
class PreferencesView(PolicyMixin, APIView):
    action_policies = {
        "get": ("accounts.view_preferences", "account:read"),
        "put": ("accounts.change_preferences", "account:write"),
        "patch": ("accounts.change_preferences", "account:write"),
    }

    @extend_schema(responses=serializers.PreferencesSerializer)
    def get(self, request):
        return Response(serializers.PreferencesSerializer(selectors.preferences_get(user=request.user)).data)

    @extend_schema(request=serializers.PreferencesSerializer, responses=serializers.PreferencesSerializer)
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(request=serializers.PreferencesSerializer, responses=serializers.PreferencesSerializer)
    def patch(self, request):
        return self._update(request, partial=True)

    def _update(self, request, partial):
        current = selectors.preferences_get(user=request.user)
        data = serializers.PreferencesSerializer(current, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        preferences = run_service(services.preferences_update, user=request.user, **data.validated_data)
        return Response(serializers.PreferencesSerializer(preferences).data)


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50


@extend_schema(tags=["me"])
class SecurityEventViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """Your own security events: logins, failures, key and password changes."""

    serializer_class = serializers.SecurityEventSerializer
    pagination_class = NewestFirst
    filterset_fields = ["kind"]
    action_policies = {"list": (None, "account:read")}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SecurityEvent.objects.none()
        return selectors.security_event_list(user=self.request.user)


# --- API keys ------------------------------------------------------------------------------------------


@extend_schema(tags=["keys"])
class ApiKeyViewSet(PolicyMixin, viewsets.GenericViewSet):
    serializer_class = serializers.ApiKeySerializer
    action_policies = {
        "list": ("accounts.view_apikey", "keys:manage"),
        "retrieve": ("accounts.view_apikey", "keys:manage"),
        "create": ("accounts.add_apikey", "keys:manage"),
        "rotate": ("accounts.change_apikey", "keys:manage"),
        "revoke": ("accounts.change_apikey", "keys:manage"),
    }

    queryset = ApiKey.objects.none()  # for the schema only; reads go through selectors

    @extend_schema(
        parameters=[OpenApiParameter("user", int, description="Operators: list this user's keys.")],
        responses=serializers.ApiKeySerializer(many=True),
    )
    def list(self, request):
        owner_id = _int_param(request, "user") if "user" in request.query_params else None
        keys = selectors.apikey_list(user=request.user, owner_id=owner_id)
        page = self.paginate_queryset(keys)
        return self.get_paginated_response(serializers.ApiKeySerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        key = selectors.apikey_get(user=request.user, pk=int_or_404(pk))
        return Response(serializers.ApiKeySerializer(key).data)

    @extend_schema(request=serializers.ApiKeyCreateSerializer, responses={201: serializers.ApiKeyWithSecretSerializer})
    def create(self, request):
        _refuse_when_limited(key_creation_rate_exceeded, request._request, request.user)
        data = serializers.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = _key_owner(request, data.validated_data.pop("user", None))
        caller_key = request.auth if isinstance(request.auth, ApiKey) else None
        if caller_key is not None:
            if not set(data.validated_data["scopes"]) <= set(caller_key.scopes):
                raise exceptions.PermissionDenied("A key cannot create a key with scopes it does not have itself.")
            if caller_key.expires_at:  # nor one that outlives it
                wanted = data.validated_data.get("expires_at")
                data.validated_data["expires_at"] = min(wanted or caller_key.expires_at, caller_key.expires_at)
        key, full_key = run_service(
            services.apikey_create, user=owner, actor=request.user, request=request, **data.validated_data
        )
        return Response(_with_secret(key, full_key), status=201)

    @extend_schema(request=serializers.ApiKeyRotateSerializer, responses=serializers.ApiKeyWithSecretSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        data = serializers.ApiKeyRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _refuse_when_limited(key_creation_rate_exceeded, request._request, request.user)  # rotating mints a secret
        # Rotation hands out the new secret, so only the owner rotates (operators can revoke).
        key = selectors.apikey_get(user=request.user, pk=int_or_404(pk), own_only=True)
        caller_scopes = request_scopes(request)
        if caller_scopes is not None and not set(key.scopes) <= caller_scopes:
            raise exceptions.PermissionDenied("A key cannot rotate a key with scopes it does not have itself.")
        grace = data.validated_data.get("grace_hours")
        key, full_key = run_service(
            services.apikey_rotate,
            key=key,
            actor=request.user,
            grace=timedelta(hours=grace) if grace is not None else None,
            request=request,
        )
        return Response(_with_secret(key, full_key))

    @extend_schema(request=None, responses=serializers.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = selectors.apikey_get(user=request.user, pk=int_or_404(pk))
        key = services.apikey_revoke(key=key, actor=request.user, request=request)
        return Response(serializers.ApiKeySerializer(key).data)


def _key_owner(request, user_id: int | None) -> User:
    """Whom a new key is for: the caller, or (operators) a user of lower rank, never an equal or higher one."""
    if user_id is None or user_id == request.user.pk:
        return request.user
    if not selectors.user_may_manage_all_keys(request.user):
        raise exceptions.PermissionDenied("Only operators create keys for other users.")
    owner = User.objects.filter(pk=user_id).first()
    if owner is None:
        raise exceptions.ValidationError({"user": ["No such user."]})
    if not selectors.outranks(request.user, owner):
        raise exceptions.PermissionDenied("Keys can only be created for users of a lower role than yours.")
    return owner


def _with_secret(key, full_key):
    body = serializers.ApiKeySerializer(key).data
    body["key"] = full_key
    return body


def _int_param(request, name) -> int:
    try:
        return int(request.query_params[name])
    except ValueError:
        raise exceptions.ValidationError({name: ["A whole number is required."]}) from None


# --- users and roles (admins; operators read) ----------------------------------------------------------


@extend_schema(tags=["users"])
class UserViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    serializer_class = serializers.UserSerializer
    filterset_fields = ["is_active", "groups__name"]
    action_policies = {
        "list": ("accounts.view_user", "users:manage"),
        "retrieve": ("accounts.view_user", "users:manage"),
        "create": ("accounts.add_user", "users:manage"),
        "partial_update": ("accounts.manage_roles", "users:manage"),
    }

    def get_queryset(self):
        return selectors.user_list()

    def retrieve(self, request, pk=None):
        return Response(serializers.UserSerializer(selectors.user_get(pk=int_or_404(pk))).data)

    @extend_schema(request=serializers.UserCreateSerializer, responses={201: serializers.UserSerializer})
    def create(self, request):
        data = serializers.UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data.pop("role", None)
        user = run_service(services.user_register, **data.validated_data, request=request)
        if role:
            run_service(services.user_set_role, user=user, role=role, actor=request.user, request=request)
        return Response(serializers.UserSerializer(user).data, status=201)

    @extend_schema(request=serializers.UserUpdateSerializer, responses=serializers.UserSerializer)
    def partial_update(self, request, pk=None):
        data = serializers.UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_get(pk=int_or_404(pk))
        if "role" in data.validated_data:
            run_service(
                services.user_set_role, user=user, role=data.validated_data["role"], actor=request.user, request=request
            )
        if "is_active" in data.validated_data:
            run_service(
                services.user_set_active,
                user=user,
                is_active=data.validated_data["is_active"],
                actor=request.user,
                request=request,
            )
        return Response(serializers.UserSerializer(selectors.user_get(pk=user.pk)).data)


@extend_schema(tags=["users"])
class RoleViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """The four roles and the permissions each holds."""

    serializer_class = serializers.RoleSerializer
    pagination_class = None
    queryset = Group.objects.none()
    action_policies = {"list": (None, "account:read")}

    def list(self, request):
        return Response(serializers.RoleSerializer(selectors.role_list(), many=True).data)


# --- sharing, for the viewsets of shareable objects ----------------------------------------------------


class SharingMixin:
    """Adds GET/POST `{id}/shares` and DELETE `{id}/shares/{username}` to a viewset of owned objects.

    The viewset sets `queryset` (the shareable model) and lists "shares" and "unshare" in its
    action_policies. Only the owner sees or changes the shares; to anyone else the object is a 404.
    """

    @extend_schema(request=serializers.ShareSerializer, responses=serializers.ShareSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def shares(self, request, pk=None):
        obj = selectors.owned_get(user=request.user, queryset=self.queryset, pk=int_or_404(pk))
        if request.method == "POST":
            data = serializers.ShareSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            run_service(services.object_share, obj=obj, owner=request.user, request=request, **data.validated_data)
        shares = [{"user": user.username, "level": level} for user, level in selectors.object_shares(obj=obj)]
        return Response(shares, status=201 if request.method == "POST" else 200)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="No longer shared.")})
    @action(detail=True, methods=["delete"], url_path=r"shares/(?P<username>[\w.@+-]+)")
    def unshare(self, request, pk=None, username=None):
        obj = selectors.owned_get(user=request.user, queryset=self.queryset, pk=int_or_404(pk))
        user = User.objects.filter(username=username).first()
        if user is None:
            raise exceptions.NotFound("No such user.")
        services.object_unshare(obj=obj, owner=request.user, user=user, request=request)
        return Response(status=204)
