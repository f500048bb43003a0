"""The memory API: memories (CRUD, search, import, export) and namespaces (describe, share)."""

from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import selectors as account_selectors
from accounts.api.sharing import SharingMixin
from accounts.permissions import PolicyMixin
from core.accepted import IDEMPOTENCY_KEY, idempotency_key
from core.parsers import FormParser, JSONParser, MultiPartParser
from core.paths import int_or_404
from memory import selectors, services
from memory.imports import JSON_LINES_TYPES, ImportTooLarge, lines_from_upload
from memory.models import Memory, MemoryNamespace
from memory.parsers import ImportTooLargeError, JSONLinesParser, JSONLParser, PlainTextLinesParser
from memory.serializers import (
    ImportSerializer,
    ImportUploadSerializer,
    MemoryNamespaceSerializer,
    MemorySerializer,
    SearchResultSerializer,
    SearchSerializer,
)
from tasks.api import task_accepted
from tasks.serializers import TaskRecordSerializer

JSON_LINES = {"type": "string", "description": "JSON lines: one memory object per line, as the export gives them."}


def _import_lines(request) -> str:
    """The JSON lines of an import request, whichever way they came (memory.imports)."""
    if isinstance(request.data, str):  # a JSON-lines body, read by one of the parsers above
        return request.data
    if request.content_type.split(";")[0].strip() in JSON_LINES_TYPES:  # an empty body is parsed as nothing
        raise ValidationError({"lines": "There are no JSON lines to import: the body is empty."})
    upload = request.FILES.get("file")
    if upload is not None:
        try:
            return lines_from_upload(upload)
        except ImportTooLarge:
            raise ImportTooLargeError() from None
    if "lines" not in request.data and request.content_type.startswith("multipart/"):
        raise ValidationError({"file": "Upload the JSON lines as a file named 'file'."})
    data = ImportSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data["lines"]


@extend_schema(tags=["memory"])
class MemoryViewSet(PolicyMixin, viewsets.GenericViewSet):
    """Your memories and those of namespaces shared with you (read only). Search them with POST /memories/search."""

    serializer_class = MemorySerializer
    queryset = Memory.objects.none()
    action_policies = {
        "list": ("memory.view_memory", "memory:read"),
        "retrieve": ("memory.view_memory", "memory:read"),
        "search": ("memory.view_memory", "memory:read"),
        "create": ("memory.add_memory", "memory:write"),
        "partial_update": ("memory.change_memory", "memory:write"),
        "destroy": ("memory.delete_memory", "memory:write"),
        "bulk_import": ("memory.add_memory", "memory:write"),
        "export": ("memory.view_memory", "memory:read"),
    }

    def list(self, request):
        memories = selectors.memory_list(
            user=request.user, include_archived=request.query_params.get("archived") == "1"
        )
        page = self.paginate_queryset(memories)
        return self.get_paginated_response(MemorySerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(MemorySerializer(selectors.memory_get(user=request.user, pk=int_or_404(pk))).data)

    def create(self, request):
        data = MemorySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        memory = services.memory_create(owner=request.user, **fields)
        return Response(MemorySerializer(memory).data, status=201)

    def partial_update(self, request, pk=None):
        memory = selectors.memory_get_owned(user=request.user, pk=int_or_404(pk))
        data = MemorySerializer(memory, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        memory = services.memory_update(memory=memory, **data.validated_data)
        return Response(MemorySerializer(memory).data)

    def destroy(self, request, pk=None):
        services.memory_delete(memory=selectors.memory_get_owned(user=request.user, pk=int_or_404(pk)))
        return Response(status=204)

    @extend_schema(request=SearchSerializer, responses=SearchResultSerializer)
    @action(detail=False, methods=["post"])
    def search(self, request):
        """The k nearest memories to a text (embedded here) or a vector, after the filters."""
        data = SearchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hits, plan = services.memory_recall(user=request.user, **data.validated_data)
        results = [{"memory": hit.memory, "distance": hit.distance} for hit in hits]
        return Response(SearchResultSerializer({"plan": plan, "results": results}).data)

    @extend_schema(
        request={
            "application/json": ImportSerializer,
            "multipart/form-data": ImportUploadSerializer,
            "application/x-www-form-urlencoded": ImportSerializer,
            **{media_type: JSON_LINES for media_type in JSON_LINES_TYPES},
        },
        parameters=[IDEMPOTENCY_KEY],
        responses={202: TaskRecordSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[JSONParser, JSONLinesParser, JSONLParser, PlainTextLinesParser, MultiPartParser, FormParser],
    )
    def bulk_import(self, request):
        """Import memories in the background (202 with the task to poll), in the export's own format: JSON
        lines as the body (application/x-ndjson, application/jsonl or text/plain), as a file upload (`file`),
        or as `lines` in a JSON body. Malformed lines fail the task, which names each line in its error."""
        record, _ = services.memory_import_start(
            owner=request.user, lines=_import_lines(request), idempotency_key=idempotency_key(request)
        )
        return task_accepted(request, record)

    @extend_schema(responses={(200, "application/x-ndjson"): str})
    @action(detail=False, methods=["get"])
    def export(self, request):
        """All your own memories as JSON lines (without embeddings), ready to import elsewhere."""
        response = StreamingHttpResponse(
            selectors.memory_export(user=request.user), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = 'attachment; filename="memories.jsonl"'
        return response


@extend_schema(tags=["memory"])
class MemoryNamespaceViewSet(SharingMixin, PolicyMixin, viewsets.GenericViewSet):
    """Your memory namespaces, to describe and share them (`{id}/shares`: `view` lets the user read and search
    its memories, `use` also lets their agents draw on them), and the namespaces shared with you.
    Deleting one ends its sharing and keeps its memories."""

    serializer_class = MemoryNamespaceSerializer
    queryset = MemoryNamespace.objects.all()
    action_policies = {
        "list": ("memory.view_memorynamespace", "memory:read"),
        "retrieve": ("memory.view_memorynamespace", "memory:read"),
        "create": ("memory.add_memorynamespace", "memory:write"),
        "partial_update": ("memory.change_memorynamespace", "memory:write"),
        "destroy": ("memory.delete_memorynamespace", "memory:write"),
        "shares": ("memory.change_memorynamespace", "memory:write"),
        "unshare": ("memory.change_memorynamespace", "memory:write"),
    }

    def list(self, request):
        page = self.paginate_queryset(selectors.namespace_list(user=request.user))
        return self.get_paginated_response(MemoryNamespaceSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(MemoryNamespaceSerializer(selectors.namespace_get(user=request.user, pk=int_or_404(pk))).data)

    def create(self, request):
        data = MemoryNamespaceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        namespace = services.namespace_create(owner=request.user, **data.validated_data)
        namespace = selectors.namespace_get(user=request.user, pk=namespace.pk)  # with its count of memories
        return Response(MemoryNamespaceSerializer(namespace).data, status=201)

    def partial_update(self, request, pk=None):
        namespace = account_selectors.owned_get(user=request.user, queryset=self.queryset, pk=int_or_404(pk))
        data = MemoryNamespaceSerializer(namespace, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.namespace_update(namespace=namespace, **data.validated_data)
        return Response(MemoryNamespaceSerializer(selectors.namespace_get(user=request.user, pk=namespace.pk)).data)

    def destroy(self, request, pk=None):
        namespace = account_selectors.owned_get(user=request.user, queryset=self.queryset, pk=int_or_404(pk))
        services.namespace_delete(namespace=namespace)
        return Response(status=204)
