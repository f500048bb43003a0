"""API keys: list, create (shown once), rotate (with a grace period), revoke."""

from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import selectors, serializers, services
from accounts.models import ApiKey
from accounts.permissions import PolicyMixin, request_scopes
from accounts.scopes import key_scopes_for
from accounts.security import TooManyAttempts, key_creation_rate_exceeded
from core.paths import int_or_404


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
    action_errors = {"create": (429,), "rotate": (409, 429)}

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
        _refuse_when_minting_too_fast(request)
        data = serializers.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        owner = selectors.apikey_owner_get(actor=request.user, user_id=fields.pop("user", None))
        _refuse_scopes_the_role_cannot_use(owner, fields.get("scopes", []), _caller_key(request))
        key, full_key = services.apikey_create(
            user=owner, actor=request.user, caller_key=_caller_key(request), request=request, **fields
        )
        return Response(_with_secret(key, full_key), status=201)

    @extend_schema(request=serializers.ApiKeyRotateSerializer, responses=serializers.ApiKeyWithSecretSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        data = serializers.ApiKeyRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _refuse_when_minting_too_fast(request)  # rotating mints a secret
        # Rotation hands out the new secret, so only the owner rotates (operators can revoke).
        key = selectors.apikey_get(user=request.user, pk=int_or_404(pk), own_only=True)
        grace = data.validated_data.get("grace_hours")
        key, full_key = services.apikey_rotate(
            key=key,
            actor=request.user,
            grace=timedelta(hours=grace) if grace is not None else None,
            caller_scopes=request_scopes(request),
            request=request,
        )
        return Response(_with_secret(key, full_key))

    @extend_schema(request=None, responses=serializers.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = selectors.apikey_get(user=request.user, pk=int_or_404(pk))
        key = services.apikey_revoke(key=key, actor=request.user, request=request)
        return Response(serializers.ApiKeySerializer(key).data)


def _refuse_when_minting_too_fast(request) -> None:
    if key_creation_rate_exceeded(request._request, request.user):
        raise TooManyAttempts()


def _refuse_scopes_the_role_cannot_use(owner, scopes, caller_key) -> None:
    """A key acts for its owner, so it may carry only scopes the owner's role can use (accounts.scopes).
    Scopes the calling key lacks itself are the service's 403, not this 400."""
    unusable = set(scopes) - key_scopes_for(owner).keys()
    if caller_key is not None:
        unusable &= set(caller_key.scopes)
    unusable = sorted(unusable)
    if unusable:
        raise exceptions.ValidationError(
            {"scopes": [f"The {owner.role or 'current'} role cannot use these scopes: {', '.join(unusable)}."]}
        )


def _caller_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _with_secret(key, full_key):
    body = serializers.ApiKeySerializer(key).data
    body["key"] = full_key
    return body


def _int_param(request, name) -> int:
    try:
        return int(request.query_params[name])
    except ValueError:
        raise exceptions.ValidationError({name: ["A whole number is required."]}) from None
