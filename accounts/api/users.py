"""Users and roles: admins create users and change roles; operators read."""

from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.response import Response

from accounts import selectors, serializers, services
from accounts.permissions import PolicyMixin
from core.paths import int_or_404


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
    action_errors = {"partial_update": (409,)}

    def get_queryset(self):
        return selectors.user_list()

    def retrieve(self, request, pk=None):
        return Response(serializers.UserSerializer(selectors.user_get(pk=int_or_404(pk))).data)

    @extend_schema(request=serializers.UserCreateSerializer, responses={201: serializers.UserSerializer})
    def create(self, request):
        data = serializers.UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(**data.validated_data, actor=request.user, request=request)
        return Response(serializers.UserSerializer(user).data, status=201)

    @extend_schema(request=serializers.UserUpdateSerializer, responses=serializers.UserSerializer)
    def partial_update(self, request, pk=None):
        data = serializers.UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_get(pk=int_or_404(pk))
        services.user_update(user=user, **data.validated_data, actor=request.user, request=request)
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
