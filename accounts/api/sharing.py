"""Sharing, for the viewsets of shareable objects of every app."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import selectors, serializers, services
from core.paths import int_or_404


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
            services.object_share(obj=obj, owner=request.user, request=request, **data.validated_data)
        shares = [{"user": user.username, "level": level} for user, level in selectors.object_shares(obj=obj)]
        return Response(shares, status=201 if request.method == "POST" else 200)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="No longer shared.")})
    @action(detail=True, methods=["delete"], url_path=r"shares/(?P<username>[\w.@+-]+)")
    def unshare(self, request, pk=None, username=None):
        obj = selectors.owned_get(user=request.user, queryset=self.queryset, pk=int_or_404(pk))
        user = selectors.user_get_by_username(username=username)
        services.object_unshare(obj=obj, owner=request.user, user=user, request=request)
        return Response(status=204)
