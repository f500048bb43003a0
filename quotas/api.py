from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import PolicyMixin
from quotas import selectors

GROUPINGS = {"day": None, "model": "model", "agent_type": "agent_type", "key": "api_key"}


class UsageRowSerializer(serializers.Serializer):
    day = serializers.DateField(required=False)
    model = serializers.CharField(required=False)
    agent_type = serializers.CharField(required=False)
    api_key = serializers.IntegerField(required=False, allow_null=True)
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=16, decimal_places=8)


@extend_schema(tags=["usage"])
class UsageView(PolicyMixin, APIView):
    """Your usage (operators: anyone's, or everyone's), from the daily roll-up (up to 5 minutes behind)."""

    action_policies = {"get": ("quotas.view_usagedaily", "account:read")}
    action_errors = {"get": (404,)}

    @extend_schema(
        parameters=[
            OpenApiParameter("days", int, description="How many days back, 1-366 (default 30)."),
            OpenApiParameter("group_by", str, enum=list(GROUPINGS), description="Default: day."),
            OpenApiParameter("user", int, description="Operators: this user's usage; `all` for everyone."),
        ],
        responses=UsageRowSerializer(many=True),
    )
    def get(self, request):
        try:
            days = int(request.query_params.get("days", 30))
        except ValueError:
            raise exceptions.ValidationError({"days": ["A whole number is required."]}) from None
        if not 1 <= days <= 366:
            raise exceptions.ValidationError({"days": ["Between 1 and 366."]})
        group_by = request.query_params.get("group_by", "day")
        if group_by not in GROUPINGS:
            raise exceptions.ValidationError({"group_by": [f"One of {', '.join(GROUPINGS)}."]})
        user = self._subject(request)
        rows = (
            selectors.usage_by_day(user=user, days=days)
            if group_by == "day"
            else selectors.usage_by(user=user, days=days, dimension=GROUPINGS[group_by])
        )
        return Response(UsageRowSerializer(rows, many=True).data)

    def _subject(self, request):
        wanted = request.query_params.get("user")
        if wanted is None:
            return request.user
        if not request.user.has_perm("quotas.view_all_usage"):
            raise exceptions.PermissionDenied("Only operators see other users' usage.")
        if wanted == "all":
            return None
        user = get_user_model().objects.filter(pk=wanted).first() if wanted.isdigit() else None
        if user is None:
            raise exceptions.NotFound("No such user.")
        return user
