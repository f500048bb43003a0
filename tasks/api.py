"""The tasks API: the caller's tasks (poll, cancel) and webhook endpoints (with a test send)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import PolicyMixin
from core.accepted import IDEMPOTENCY_KEY, accepted, idempotency_key
from core.pagination import NewestFirst
from core.paths import int_or_404, uuid_or_404
from tasks import selectors
from tasks.models import TaskRecord, WebhookEndpoint
from tasks.serializers import (
    TaskRecordSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)
from tasks.services import records, webhooks


def task_accepted(request, record: TaskRecord) -> Response:
    """202 with the task and where to poll it: what every API that starts a tracked task answers."""
    return accepted(
        request, body=TASK_RECORD.to_representation(record), location=reverse("taskrecord-detail", args=[record.pk])
    )


# One instance for every answer: a model serializer builds its fields anew per instance (a third of the time
# of an `?async=1` call went there).
TASK_RECORD = TaskRecordSerializer()


@extend_schema(tags=["tasks"])
class TaskViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """Your background tasks, newest first. Poll one until its status is succeeded, failed or cancelled."""

    serializer_class = TaskRecordSerializer
    pagination_class = NewestFirst
    queryset = TaskRecord.objects.none()
    filterset_fields = ["status", "kind"]
    action_policies = {
        "list": ("tasks.view_taskrecord", "tasks:read"),
        "retrieve": ("tasks.view_taskrecord", "tasks:read"),
        "cancel": ("tasks.change_taskrecord", "tasks:write"),
    }
    action_errors = {"cancel": (409,)}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TaskRecord.objects.none()
        return selectors.task_list(user=self.request.user)

    def retrieve(self, request, pk=None):
        return Response(TaskRecordSerializer(selectors.task_get(user=request.user, pk=uuid_or_404(pk))).data)

    @extend_schema(request=None, responses={200: TaskRecordSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        record = selectors.task_get(user=request.user, pk=uuid_or_404(pk))
        record = records.task_cancel(record=record, actor=request.user)
        return Response(TaskRecordSerializer(record).data)


@extend_schema(tags=["webhooks"])
class WebhookEndpointViewSet(PolicyMixin, viewsets.ModelViewSet):
    """Endpoints that receive your task events, signed per the Standard Webhooks specification."""

    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.none()
    http_method_names = ["get", "post", "patch", "delete"]
    action_policies = {
        "list": ("tasks.view_webhookendpoint", "webhooks:manage"),
        "retrieve": ("tasks.view_webhookendpoint", "webhooks:manage"),
        "create": ("tasks.add_webhookendpoint", "webhooks:manage"),
        "partial_update": ("tasks.change_webhookendpoint", "webhooks:manage"),
        "destroy": ("tasks.delete_webhookendpoint", "webhooks:manage"),
        "rotate_secret": ("tasks.change_webhookendpoint", "webhooks:manage"),
        "ping": ("tasks.change_webhookendpoint", "webhooks:manage"),
        "deliveries": ("tasks.view_webhookendpoint", "webhooks:manage"),
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookEndpoint.objects.none()
        return selectors.webhook_endpoint_list(user=self.request.user)

    def get_object(self):
        return selectors.webhook_endpoint_get(user=self.request.user, pk=int_or_404(self.kwargs["pk"]))

    @extend_schema(responses={201: WebhookEndpointWithSecretSerializer})
    def create(self, request):
        data = WebhookEndpointSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {name: data.validated_data[name] for name in ("url", "events") if name in data.validated_data}
        endpoint, secret = webhooks.webhook_endpoint_create(
            owner=request.user, description=data.validated_data.get("description", ""), **fields
        )
        return Response({**WebhookEndpointSerializer(endpoint).data, "secret": secret}, status=201)

    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        data = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.webhook_endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request, pk=None):
        webhooks.webhook_endpoint_delete(endpoint=self.get_object())
        return Response(status=204)

    @extend_schema(request=None, responses=WebhookEndpointWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new secret; events are signed with the old one too until previous_secret_valid_until."""
        endpoint = self.get_object()
        secret = webhooks.webhook_endpoint_rotate_secret(endpoint=endpoint)
        return Response({**WebhookEndpointSerializer(endpoint).data, "secret": secret})

    @extend_schema(request=None, parameters=[IDEMPOTENCY_KEY], responses={202: TaskRecordSerializer})
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        """Send a test event in the background; answers 202 with the task to poll."""
        record, _ = webhooks.webhook_ping_start(
            endpoint=self.get_object(), owner=request.user, idempotency_key=idempotency_key(request)
        )
        return task_accepted(request, record)

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """Recent deliveries to this endpoint, each with its attempts."""
        deliveries = selectors.delivery_list(endpoint=self.get_object())
        paginator = NewestFirst()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
