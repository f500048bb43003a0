"""The workflows API: workflows (versions, diff, rollback, import/export, sharing, schedules, runs), runs
(steps, cancel, re-run, events and their stream, signals), approvals, and each workflow's inbound webhook."""

import asyncio
import difflib
import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.sharing import SharingMixin
from accounts.permissions import PolicyMixin
from core.accepted import IDEMPOTENCY_KEY, accepted, idempotency_key
from core.async_db import database_sync_to_async
from core.async_views import AsyncAPIView
from core.pagination import NewestFirst
from core.paths import int_or_404, uuid_or_404
from workflows import selectors, serializers
from workflows.models import Approval, ApprovalDecision, RunEvent, Workflow, WorkflowRun, WorkflowSchedule
from workflows.services import approvals, hooks, runs, schedules, signals
from workflows.services import workflows as services
from workflows.services.workflows import DefinitionRejected

READ = ("workflows.view_workflow", "workflows:read")
WRITE = ("workflows.change_workflow", "workflows:write")
RUN = ("workflows.add_workflowrun", "workflows:run")


def _run_accepted(request, run: WorkflowRun, created: bool):
    body = serializers.RunSerializer(run).data
    if not created:
        return Response(body, status=200)
    return accepted(request, body=body, location=f"/api/v1/workflow-runs/{run.pk}")


@extend_schema(tags=["workflows"])
class WorkflowViewSet(SharingMixin, PolicyMixin, viewsets.GenericViewSet):
    """Your workflows and those shared with you. Saving a `source` makes a new version; runs keep theirs."""

    serializer_class = serializers.WorkflowSerializer
    queryset = Workflow.objects.all()
    action_policies = {
        "list": READ,
        "retrieve": READ,
        "versions": READ,
        "version": READ,
        "diff": READ,
        "export": READ,
        "validate": READ,
        "create": ("workflows.add_workflow", "workflows:write"),
        "import_workflow": ("workflows.add_workflow", "workflows:write"),
        "partial_update": WRITE,
        "rollback": WRITE,
        "hook_secret": WRITE,
        "schedules": WRITE,
        "schedule_delete": WRITE,
        "destroy": ("workflows.delete_workflow", "workflows:write"),
        "shares": WRITE,
        "unshare": WRITE,
    }

    def list(self, request):
        page = self.paginate_queryset(selectors.workflow_list(user=request.user))
        return self.get_paginated_response(serializers.WorkflowSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(
            serializers.WorkflowSerializer(selectors.workflow_get(user=request.user, pk=int_or_404(pk))).data
        )

    @extend_schema(request=serializers.WorkflowWriteSerializer, responses={201: serializers.WorkflowSerializer})
    def create(self, request):
        data = serializers.WorkflowWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if "name" not in fields or "source" not in fields:
            raise _required("name" if "name" not in fields else "source")
        workflow = services.workflow_create(
            owner=request.user,
            name=fields["name"],
            source=fields["source"],
            format=fields.get("format"),
            description=fields.get("description", ""),
        )
        return Response(serializers.WorkflowSerializer(workflow).data, status=201)

    @extend_schema(request=serializers.WorkflowWriteSerializer, responses=serializers.WorkflowSerializer)
    def partial_update(self, request, pk=None):
        workflow = selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk))
        data = serializers.WorkflowWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        source, format, note = fields.pop("source", None), fields.pop("format", None), fields.pop("note", "")
        if source is not None:
            services.workflow_save(workflow=workflow, user=request.user, source=source, format=format, note=note)
        if fields:
            services.workflow_update(workflow=workflow, **fields)
        return Response(serializers.WorkflowSerializer(selectors.workflow_get(user=request.user, pk=workflow.pk)).data)

    def destroy(self, request, pk=None):
        services.workflow_delete(workflow=selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk)))
        return Response(status=204)

    @extend_schema(request=serializers.DefinitionSerializer, responses=serializers.ValidationResultSerializer)
    @action(detail=False, methods=["post"])
    def validate(self, request):
        """Check a definition without saving it: every problem, with its line and column."""
        data = serializers.DefinitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            definition = services.definition_check(owner=request.user, **data.validated_data)
        except DefinitionRejected as rejected:
            return Response({"valid": False, "problems": rejected.extra_body["problems"], "definition": None})
        return Response({"valid": True, "problems": [], "definition": definition})

    @extend_schema(request=serializers.ExportSerializer, responses={201: serializers.WorkflowSerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_workflow(self, request):
        """Import an export (a new workflow, or a new version of yours with that name)."""
        data = serializers.ExportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workflow = services.workflow_import(owner=request.user, document=data.validated_data)
        return Response(serializers.WorkflowSerializer(workflow).data, status=201)

    @extend_schema(responses=serializers.ExportSerializer)
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        workflow = selectors.workflow_get(user=request.user, pk=int_or_404(pk))
        return Response(services.workflow_export(workflow=workflow))

    @extend_schema(responses=serializers.VersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        workflow = selectors.workflow_get(user=request.user, pk=int_or_404(pk))
        page = self.paginate_queryset(workflow.versions.select_related("created_by").order_by("-number"))
        return self.get_paginated_response(serializers.VersionSerializer(page, many=True).data)

    @extend_schema(responses=serializers.VersionSerializer)
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>\d+)")
    def version(self, request, pk=None, number=None):
        workflow = selectors.workflow_get(user=request.user, pk=int_or_404(pk))
        return Response(serializers.VersionSerializer(_version(workflow, number)).data)

    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"from", "to", "diff": unified diff}')},
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        """Two versions' sources as a unified diff."""
        workflow = selectors.workflow_get(user=request.user, pk=int_or_404(pk))
        old = _version(workflow, request.query_params.get("from"))
        new = _version(workflow, request.query_params.get("to"))
        lines = difflib.unified_diff(
            old.source.splitlines(keepends=True),
            new.source.splitlines(keepends=True),
            fromfile=f"version {old.number}",
            tofile=f"version {new.number}",
        )
        return Response({"from": old.number, "to": new.number, "diff": "".join(lines)})

    @extend_schema(request=serializers.RollbackSerializer, responses=serializers.WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Make an earlier version current again (saved as a new version)."""
        workflow = selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk))
        data = serializers.RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.workflow_rollback(workflow=workflow, user=request.user, number=data.validated_data["version"])
        return Response(serializers.WorkflowSerializer(selectors.workflow_get(user=request.user, pk=workflow.pk)).data)

    @extend_schema(request=None, responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"secret"}')})
    @action(detail=True, methods=["post"], url_path="hook-secret")
    def hook_secret(self, request, pk=None):
        """A new signing secret for this workflow's inbound webhook, shown once."""
        workflow = selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk))
        return Response(
            {"secret": services.workflow_hook_secret_rotate(workflow=workflow), "url": hooks.hook_url(workflow)}
        )

    @extend_schema(request=serializers.ScheduleSerializer, responses=serializers.ScheduleSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def schedules(self, request, pk=None):
        workflow = selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk))
        if request.method == "POST":
            data = serializers.ScheduleSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            schedule = schedules.schedule_create(workflow=workflow, owner=request.user, **data.validated_data)
            return Response(serializers.ScheduleSerializer(schedule).data, status=201)
        found = WorkflowSchedule.objects.filter(workflow=workflow).select_related("periodic_task")
        return Response(serializers.ScheduleSerializer(found, many=True).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"schedules/(?P<schedule>\d+)")
    def schedule_delete(self, request, pk=None, schedule=None):
        workflow = selectors.workflow_get_owned(user=request.user, pk=int_or_404(pk))
        found = WorkflowSchedule.objects.filter(workflow=workflow, pk=int_or_404(schedule)).first()
        if found is None:
            from django.http import Http404

            raise Http404("No such schedule.")
        schedules.schedule_delete(schedule=found)
        return Response(status=204)


def _version(workflow, number):
    from django.http import Http404

    version = workflow.versions.filter(number=int_or_404(number)).first()
    if version is None:
        raise Http404("No such version.")
    return version


def _required(name):
    from rest_framework.exceptions import ValidationError

    return ValidationError({name: ["This field is required."]})


# One instance for every request: a new serializer deep-copies its fields.
START_REQUEST = serializers.StartSerializer()


@extend_schema(tags=["workflows"])
class WorkflowStartView(PolicyMixin, AsyncAPIView):
    """Start a run of the current version: 202 with the run and its `Location`. Async (core.async_views):
    a burst of starts (agents fanning out, webhooks, schedulers) waits for the process's few database
    threads instead of opening a connection per request."""

    action_policies = {"post": RUN}

    @extend_schema(
        operation_id="workflows_runs_create",
        request=serializers.StartSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: serializers.RunSerializer, 200: serializers.RunSerializer},
    )
    async def post(self, request, pk):
        inputs = START_REQUEST.run_validation(request.data)["inputs"]
        key = idempotency_key(request)

        def start():
            workflow = selectors.workflow_get(user=request.user, pk=int_or_404(pk), level="use")
            run, created = runs.run_start(workflow=workflow, user=request.user, inputs=inputs, idempotency_key=key)
            return serializers.RunSerializer(run).data, run.pk, created

        body, run_id, created = await database_sync_to_async(start)()
        if not created:
            return Response(body, status=200)
        return accepted(request, body=body, location=f"/api/v1/workflow-runs/{run_id}")


@extend_schema(tags=["workflows"])
class RunViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """Runs you started and runs of your workflows, newest first, with their steps."""

    serializer_class = serializers.RunSerializer
    pagination_class = NewestFirst
    queryset = WorkflowRun.objects.none()
    filter_backends = []
    action_policies = {
        "list": ("workflows.view_workflowrun", "workflows:read"),
        "retrieve": ("workflows.view_workflowrun", "workflows:read"),
        "events": ("workflows.view_workflowrun", "workflows:read"),
        "cancel": ("workflows.change_workflowrun", "workflows:run"),
        "rerun": RUN,
        "signals": ("workflows.change_workflowrun", "workflows:run"),
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WorkflowRun.objects.none()
        found = selectors.run_list(user=self.request.user)
        params = self.request.query_params
        if "workflow" in params:
            found = found.filter(workflow_id=params["workflow"]) if params["workflow"].isdigit() else found.none()
        if "status" in params:
            found = found.filter(status=params["status"])
        return found

    @extend_schema(
        parameters=[
            OpenApiParameter("workflow", int, description="Only runs of this workflow."),
            OpenApiParameter("status", str, enum=WorkflowRun.Status.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=serializers.RunDetailSerializer)
    def retrieve(self, request, pk=None):
        run = selectors.run_get(user=request.user, pk=uuid_or_404(pk))
        run = (
            WorkflowRun.objects.select_related("workflow", "version", "owner")
            .prefetch_related("steps__parent")
            .get(pk=run.pk)
        )
        return Response(serializers.RunDetailSerializer(run).data)

    @extend_schema(request=None, responses=serializers.RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = selectors.run_get(user=request.user, pk=uuid_or_404(pk))
        return Response(serializers.RunSerializer(runs.run_cancel(run=run)).data)

    @extend_schema(
        request=serializers.RerunSerializer, parameters=[IDEMPOTENCY_KEY], responses={202: serializers.RunSerializer}
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """A new run from one of this run's steps, reusing the outputs of the steps before it."""
        run = selectors.run_get(user=request.user, pk=uuid_or_404(pk))
        selectors.workflow_get(user=request.user, pk=run.workflow_id, level="use")
        data = serializers.RerunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        again = runs.run_rerun(
            run=run, user=request.user, idempotency_key=idempotency_key(request), **data.validated_data
        )
        return _run_accepted(request, again, True)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only events after this id.")],
        responses=serializers.RunEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The run's history, oldest first (as a stream of server-sent events: `{id}/stream`)."""
        run = selectors.run_get(user=request.user, pk=uuid_or_404(pk))
        after = request.query_params.get("after", "0")
        found = RunEvent.objects.filter(run=run, id__gt=int(after) if after.isdigit() else 0)[:500]
        return Response(serializers.RunEventSerializer(found, many=True).data)

    @extend_schema(request=serializers.SignalSerializer, responses={202: OpenApiResponse(description="Taken.")})
    @action(detail=True, methods=["post"])
    def signals(self, request, pk=None):
        """Post an event to the run: a step waiting for an event of this name goes on with its data."""
        run = selectors.run_get(user=request.user, pk=uuid_or_404(pk))
        data = serializers.SignalSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signals.signal_post(run=run, **data.validated_data)
        return Response({"accepted": True}, status=202)


class EventStreamRenderer(BaseRenderer):
    """Lets a client that accepts only `text/event-stream` (a browser's EventSource) through content
    negotiation; an error still answers in the JSON error shape."""

    media_type = "text/event-stream"
    format = "event-stream"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


@extend_schema(tags=["workflows"])
class RunStreamView(PolicyMixin, AsyncAPIView):
    """The run's events as server-sent events, live until the run ends; resumes after `Last-Event-ID`."""

    action_policies = {"get": ("workflows.view_workflowrun", "workflows:read")}
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    POLL_SECONDS = 0.25

    @extend_schema(
        operation_id="workflow_runs_stream",
        parameters=[OpenApiParameter("Last-Event-ID", int, location=OpenApiParameter.HEADER)],
        responses={(200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="One event per line.")},
    )
    async def get(self, request, pk):
        run = await database_sync_to_async(selectors.run_get)(user=request.user, pk=uuid_or_404(pk))
        last = request.headers.get("Last-Event-ID", "0")
        after = int(last) if last.isdigit() else 0

        def read(after):
            events = list(
                RunEvent.objects.filter(run_id=run.pk, id__gt=after).values("id", "type", "step", "data")[:500]
            )
            status = WorkflowRun.objects.values_list("status", flat=True).get(pk=run.pk)
            return events, status

        async def stream():
            nonlocal after
            while True:
                events, status = await database_sync_to_async(read)(after)
                for event in events:
                    after = event["id"]
                    body = json.dumps({"type": event["type"], "step": event["step"], "data": event["data"]})
                    yield f"id: {event['id']}\nevent: {event['type']}\ndata: {body}\n\n".encode()
                if status != WorkflowRun.Status.RUNNING and not events:
                    return
                if not events:
                    yield b": keep-alive\n\n"
                    await asyncio.sleep(self.POLL_SECONDS)

        response = StreamingHttpResponse(stream(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


@extend_schema(tags=["workflows"])
class ApprovalViewSet(PolicyMixin, viewsets.GenericViewSet):
    """Open approvals you may decide (named, or by your role)."""

    serializer_class = serializers.ApprovalSerializer
    queryset = Approval.objects.none()
    action_policies = {
        "list": ("workflows.view_workflowrun", "workflows:read"),
        "retrieve": ("workflows.view_workflowrun", "workflows:read"),
        "decide": ("workflows.view_workflowrun", "workflows:run"),
    }

    def list(self, request):
        page = self.paginate_queryset(selectors.approvals_for(user=request.user))
        return self.get_paginated_response(serializers.ApprovalSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(
            serializers.ApprovalSerializer(selectors.approval_get(user=request.user, pk=int_or_404(pk))).data
        )

    @extend_schema(request=serializers.DecisionSerializer, responses=serializers.ApprovalSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        approval = selectors.approval_get(user=request.user, pk=int_or_404(pk))
        data = serializers.DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        approvals.approval_decide(
            approval=approval, user=request.user, via=ApprovalDecision.Via.API, **data.validated_data
        )
        return Response(serializers.ApprovalSerializer(selectors.approval_get(user=request.user, pk=approval.pk)).data)


@extend_schema(tags=["workflows"])
class WorkflowHookView(APIView):
    """A workflow's inbound webhook: a signed POST (Standard Webhooks, the workflow's own secret) starts a
    run. The body's `inputs` are the run's inputs; a body without `inputs` is given as the input `payload`."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="workflows_hook",
        request=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("webhook-id", str, location=OpenApiParameter.HEADER, required=True),
            OpenApiParameter("webhook-timestamp", str, location=OpenApiParameter.HEADER, required=True),
            OpenApiParameter("webhook-signature", str, location=OpenApiParameter.HEADER, required=True),
        ],
        responses={202: serializers.RunSerializer, 200: serializers.RunSerializer},
    )
    def post(self, request, pk):
        run, created = hooks.hook_receive(workflow_id=int_or_404(pk), body=request.body, headers=request.headers)
        return _run_accepted(request, run, created)
