"""The caller's own account: profile, preferences and security events."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, serializers, services
from accounts.models import SecurityEvent
from accounts.permissions import PolicyMixin
from core.pagination import NewestFirst


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
        user = services.user_update_profile(user=request.user, request=request, **data.validated_data)
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
        preferences = services.preferences_update(user=request.user, **data.validated_data)
        return Response(serializers.PreferencesSerializer(preferences).data)


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
