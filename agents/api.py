"""The agents API: agents (CRUD, sharing, invoke), runs, the catalog, cache invalidation for operators."""

import json
from dataclasses import asdict

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.sharing import SharingMixin
from accounts.models import ApiKey
from accounts.permissions import PolicyMixin
from accounts.security import client_ip
from agents import selectors
from agents.models import Agent, AgentRun, AgentType, LanguageModel
from agents.providers import ToolCallDelta
from agents.serializers import (
    AgentRunSerializer,
    AgentSerializer,
    AgentTypeSerializer,
    CacheInvalidationSerializer,
    InvokeResultSerializer,
    InvokeSerializer,
    LanguageModelSerializer,
)
from agents.services import agents, catalog, invocation, streaming
from core.accepted import IDEMPOTENCY_KEY, idempotency_key
from core.async_db import database_sync_to_async
from core.async_views import AsyncAPIView
from core.exceptions import DomainError
from core.pagination import NewestFirst
from core.paths import int_or_404, uuid_or_404
from tasks.api import task_accepted
from tasks.serializers import TaskRecordSerializer


@extend_schema(tags=["agents"])
class AgentViewSet(SharingMixin, PolicyMixin, viewsets.GenericViewSet):
    """Your agents and those shared with you. Invoke with POST {id}/invoke."""

    serializer_class = AgentSerializer
    queryset = Agent.objects.all()
    action_policies = {
        "list": ("agents.view_agent", "agents:read"),
        "retrieve": ("agents.view_agent", "agents:read"),
        "create": ("agents.add_agent", "agents:write"),
        "partial_update": ("agents.change_agent", "agents:write"),
        "destroy": ("agents.delete_agent", "agents:write"),
        "shares": ("agents.change_agent", "agents:write"),
        "unshare": ("agents.change_agent", "agents:write"),
    }

    def list(self, request):
        agents = selectors.agent_list(user=request.user)
        page = self.paginate_queryset(agents)
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(AgentSerializer(selectors.agent_get(user=request.user, pk=int_or_404(pk))).data)

    def create(self, request):
        data = AgentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        agent = agents.agent_create(owner=request.user, **data.validated_data)
        return Response(AgentSerializer(agent).data, status=201)

    def partial_update(self, request, pk=None):
        agent = selectors.agent_get_owned(user=request.user, pk=int_or_404(pk))
        data = AgentSerializer(agent, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        agent = agents.agent_update(agent=agent, **data.validated_data)
        return Response(AgentSerializer(agent).data)

    def destroy(self, request, pk=None):
        agents.agent_delete(agent=selectors.agent_get_owned(user=request.user, pk=int_or_404(pk)))
        return Response(status=204)


# One instance for every request: a new serializer deep-copies its fields, a cost paid on every call.
INVOKE_REQUEST = InvokeSerializer()


@extend_schema(tags=["agents"])
class AgentInvokeView(PolicyMixin, AsyncAPIView):
    """Invoke an agent: async from end to end (core.async_views), so one process holds many calls at once,
    and the gateway path (platform_site.asgi) serves it without Django's sync middleware."""

    action_policies = {"post": ("agents.invoke_agent", "agents:invoke")}
    action_errors = {"post": (404, 422, 429, 502, 504)}

    @extend_schema(
        operation_id="agents_invoke",
        request=InvokeSerializer,
        parameters=[
            OpenApiParameter("async", bool, description="Answer 202 with a task to poll instead of waiting."),
            OpenApiParameter(
                "Cache-Control", str, location=OpenApiParameter.HEADER, description="`no-cache` bypasses the cache."
            ),
            IDEMPOTENCY_KEY,
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                InvokeResultSerializer, description="The answer; `X-Cache` says how it was served."
            ),
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description='With "stream": true: `delta` events, then `done` or `error`.'
            ),
            202: OpenApiResponse(TaskRecordSerializer, description="Started in the background (?async=1)."),
        },
    )
    async def post(self, request, pk):
        """Send a conversation to the agent. With `"stream": true` the answer comes as server-sent events."""
        agent = await selectors.agent_get_for_invocation(user=request.user, pk=int_or_404(pk))
        data = INVOKE_REQUEST.run_validation(request.data)
        call = invocation_of(request, agent, data)
        if request.query_params.get("async") in ("1", "true"):
            start = database_sync_to_async(invocation.agent_invoke_async)
            record, _ = await start(**call, idempotency_key=idempotency_key(request))
            return task_accepted(request, record)
        if data["stream"]:
            return _stream_response(await streaming.agent_invoke_stream(**call, client_ip=client_ip(request)))
        result = await invocation.agent_invoke(**call, client_ip=client_ip(request))
        run = result.run
        body = {
            "run": str(run.pk),
            "output": result.text,
            "tool_calls": result.tool_calls,
            "finish_reason": result.finish_reason,
            "cache": result.cache,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost": str(run.cost),
            "verdicts": verdicts_of(run),
        }
        headers = {
            "X-Cache": result.cache,
            **({"X-Cache-Key": result.cache_key} if result.cache_key else {}),
            **result.headers,
        }
        return Response(body, headers=headers)


def invocation_of(request, agent, data: dict) -> dict:
    """The keyword arguments of an invocation entry for an API request: the caller, their key, whether the
    cache is bypassed, the messages and what the request set beside them (native and OpenAI-compatible)."""
    return {
        "user": request.user,
        "agent": agent,
        "messages": data["messages"],
        "api_key": request.auth if isinstance(request.auth, ApiKey) else None,
        "bypass_cache": "no-cache" in request.headers.get("Cache-Control", ""),
        **{name: data.get(name) for name in invocation.REQUEST_FIELDS},
    }


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def error_event(error: DomainError) -> dict:
    """The `error` event that ends a stream: the code and status the same request would have been answered
    with, the message, and what the error adds to the body (`guard`: the detector and where it blocked)."""
    return {"code": error.code, "status": error.status, "detail": str(error), **error.extra_body}


def verdicts_of(run) -> list[dict]:
    """The guards' verdicts of a run just made (never the matched text)."""
    return [
        {"detector": detector, "action": action, "where": where, "count": count}
        for detector, action, where, count in getattr(run, "guard_verdicts", None) or ()
    ]


class EventStream:
    """The response body (async): its `close()` reaches the invocation even if the body is never read."""

    def __init__(self, events, stream):
        self._events, self._stream = events, stream

    def __aiter__(self):
        return self._events.__aiter__()

    def close(self):
        self._stream.close()


def _stream_response(stream: streaming.InvokeStream) -> StreamingHttpResponse:
    """Server-sent events: `delta` events with text or a piece of a tool call, then `done` (run, cache,
    usage, tool calls, the guards' verdicts) or `error` (code, status, detail; `guard` when a guard blocked:
    the detector and where)."""

    async def events():
        try:
            async for piece in stream:
                yield _sse(
                    "delta", {"tool_call": asdict(piece)} if isinstance(piece, ToolCallDelta) else {"text": piece}
                )
        except DomainError as error:  # a guard blocked, an external guard failed, the provider failed
            yield _sse("error", error_event(error))
            return
        run = stream.result.run
        yield _sse(
            "done",
            {
                "run": str(run.pk),
                "cache": stream.result.cache,
                "tool_calls": stream.result.tool_calls,
                "finish_reason": stream.result.finish_reason,
                "input_tokens": run.input_tokens,
                "output_tokens": run.output_tokens,
                "cost": str(run.cost),
                "verdicts": verdicts_of(run),
            },
        )

    response = StreamingHttpResponse(EventStream(events(), stream), content_type="text/event-stream")
    for name, value in stream.headers.items():
        response[name] = value
    response["Cache-Control"] = "no-cache"
    response["X-Cache"] = stream.cache
    response["X-Accel-Buffering"] = "no"
    return response


@extend_schema(tags=["agents"])
class AgentRunViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """Your runs, newest first, filtered by agent, status or cache outcome."""

    serializer_class = AgentRunSerializer
    pagination_class = NewestFirst
    queryset = AgentRun.objects.none()
    filter_backends = []  # filtered below: another user's agent id must look like any unknown id
    action_policies = {
        "list": ("agents.view_agentrun", "agents:read"),
        "retrieve": ("agents.view_agentrun", "agents:read"),
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AgentRun.objects.none()
        runs = selectors.run_list(user=self.request.user).prefetch_related("verdicts")
        params = self.request.query_params
        if "agent" in params:
            runs = runs.filter(agent_id=params["agent"]) if params["agent"].isdigit() else runs.none()
        for name in ("status", "cache"):
            if name in params:
                runs = runs.filter(**{name: params[name]})
        return runs

    @extend_schema(
        parameters=[
            OpenApiParameter("agent", int, description="Only runs of this agent."),
            OpenApiParameter("status", str, enum=AgentRun.Status.values),
            OpenApiParameter("cache", str, enum=AgentRun.Cache.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, pk=None):
        return Response(AgentRunSerializer(selectors.run_get(user=request.user, pk=uuid_or_404(pk))).data)


@extend_schema(tags=["agents"])
class AgentTypeViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    serializer_class = AgentTypeSerializer
    queryset = AgentType.objects.none()
    pagination_class = None
    action_policies = {"list": ("agents.view_agenttype", "agents:read")}

    def get_queryset(self):
        return selectors.agent_type_list()


@extend_schema(tags=["agents"])
class LanguageModelViewSet(PolicyMixin, viewsets.GenericViewSet, mixins.ListModelMixin):
    """The model catalog with prices (USD per million tokens)."""

    serializer_class = LanguageModelSerializer
    queryset = LanguageModel.objects.none()
    pagination_class = None
    action_policies = {"list": ("agents.view_languagemodel", "agents:read")}

    def get_queryset(self):
        return selectors.model_list()


@extend_schema(tags=["agents"])
class CacheInvalidationView(PolicyMixin, APIView):
    """Operators: drop one cached answer, or everything of an agent, an agent type, or all (each O(1))."""

    action_policies = {"post": ("agents.invalidate_cache", "users:manage")}
    action_errors = {"post": (404,)}

    @extend_schema(request=CacheInvalidationSerializer, responses={204: None})
    def post(self, request):
        data = CacheInvalidationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        catalog.cache_invalidate(**data.validated_data)
        return Response(status=204)
