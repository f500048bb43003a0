"""The OpenAI-compatible API under /v1/: chat completions (plain and streamed), models and embeddings, so
that agents written for OpenAI's SDK or any framework on it point `base_url` at Switchboard and work.

`model` names one of the caller's agents (or one shared with them for use): `agent:<id>` or
`<owner>/<agent name>`. A chat completion goes through the same pipeline as the native invoke (scopes,
object permission, quotas, memory, cache, guards, run records, Idempotency-Key), async from end to end
on the gateway path. Errors are OpenAI's `{"error": {message, type, param, code}}` with OpenAI's statuses.
"""

import base64
import math
import struct

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import PolicyMixin
from accounts.security import client_ip
from agents import selectors
from agents.api import EventStream, invocation_of
from agents.openai_api import schema as docs
from agents.openai_api.errors import OpenAIErrors, stream_error
from agents.openai_api.shapes import DONE, Chunks, chat_request, completion_body, error_body
from agents.services import invocation, streaming
from core.accepted import IDEMPOTENCY_KEY, idempotency_key
from core.async_views import AsyncAPIView
from core.exceptions import DomainError
from memory.embeddings import embedder

INVOKE = ("agents.invoke_agent", "agents:invoke")


@extend_schema(tags=["openai"])
class ChatCompletionsView(OpenAIErrors, PolicyMixin, AsyncAPIView):
    """POST /v1/chat/completions: OpenAI's Chat Completions, answered by the agent `model` names."""

    action_policies = {"post": INVOKE}

    @extend_schema(
        operation_id="openai_chat_completions",
        request=docs.ChatCompletionRequest,
        parameters=[
            IDEMPOTENCY_KEY,
            OpenApiParameter(
                "Cache-Control", str, location=OpenApiParameter.HEADER, description="`no-cache` bypasses the cache."
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(docs.ChatCompletion, description="`X-Cache` says how."),
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="With stream: `chat.completion.chunk` events, then `data: [DONE]`."
            ),
            **docs.errors(400, 401, 403, 404, 413, 422, 429, 500, 502, 503, 504),
        },
    )
    async def post(self, request):
        data = chat_request(request.data)
        agent = await selectors.agent_for_model(user=request.user, model=data["model"])
        call = {**invocation_of(request, agent, data), "client_ip": client_ip(request)}
        if data["stream"]:
            stream = await streaming.agent_invoke_stream(**call)
            return _chunked(stream, data["model"], data["include_usage"])
        result = await invocation.agent_invoke(**call, idempotency_key=idempotency_key(request))
        body = completion_body(
            completion_id=f"chatcmpl-{result.run.pk.hex}",
            model=data["model"],
            created=int(result.run.created_at.timestamp()),
            result=result,
        )
        headers = {"X-Cache": result.cache, **({"X-Cache-Key": result.cache_key} if result.cache_key else {})}
        return Response(body, headers={**headers, **result.headers})


def _chunked(stream: streaming.InvokeStream, model: str, include_usage: bool) -> StreamingHttpResponse:
    chunks = Chunks(f"chatcmpl-{stream.call.run_id.hex}", model)

    async def events():
        yield chunks.first()
        try:
            async for piece in stream:
                yield chunks.piece(piece)
        except DomainError as error:  # a guard's block, a failing guard or provider: OpenAI's error event
            yield stream_error(error)
            return
        yield chunks.last(stream.result.finish_reason)
        if include_usage:
            yield chunks.usage(stream.result.run)
        yield DONE

    response = StreamingHttpResponse(EventStream(events(), stream), content_type="text/event-stream")
    for name, value in {**stream.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}.items():
        response[name] = value
    response["X-Cache"] = stream.cache
    return response


def _model(agent) -> dict:
    return {
        "id": selectors.model_name(agent),
        "object": "model",
        "created": int(agent.created_at.timestamp()),
        "owned_by": agent.owner.username,
    }


def _exposed(exposure: dict) -> dict:
    """A catalog model an operator exposed, by the name clients send."""
    created = int(exposure["created"].timestamp())
    return {"id": exposure["name"], "object": "model", "created": created, "owned_by": "switchboard"}


@extend_schema(tags=["openai"])
class ModelListView(OpenAIErrors, PolicyMixin, APIView):
    """GET /v1/models: the agents the key may call, each named `<owner>/<agent name>`, then the catalog
    models operators exposed to the caller's role."""

    action_policies = {"get": INVOKE}

    @extend_schema(
        operation_id="openai_models_list", responses={200: docs.ModelList, **docs.errors(401, 403, 500, 503)}
    )
    def get(self, request):
        agents = selectors.agents_usable(user=request.user).order_by("owner__username", "name")
        exposed = [e for e in selectors.exposed_models() if selectors.role_may_call(request.user, e)]
        return Response(
            {"object": "list", "data": [_model(agent) for agent in agents] + [_exposed(e) for e in exposed]}
        )


@extend_schema(tags=["openai"])
class ModelDetailView(OpenAIErrors, PolicyMixin, APIView):
    """GET /v1/models/{model}: one agent the key may call."""

    action_policies = {"get": INVOKE}

    @extend_schema(
        operation_id="openai_models_retrieve", responses={200: docs.Model, **docs.errors(401, 403, 404, 500, 503)}
    )
    def get(self, request, model):
        agent = async_to_sync(selectors.agent_for_model)(user=request.user, model=model)
        exposure = next((e for e in selectors.exposed_models() if e["agent"] == agent.pk and e["name"] == model), None)
        return Response(_exposed(exposure) if exposure else _model(agent))


@extend_schema(tags=["openai"])
class EmbeddingsView(OpenAIErrors, PolicyMixin, APIView):
    """POST /v1/embeddings: vectors from the memory embedder (`model`: `memory`, or its name), the same
    vectors agent memory is searched with."""

    action_policies = {"post": INVOKE}

    @extend_schema(
        operation_id="openai_embeddings",
        request=docs.EmbeddingRequest,
        responses={200: docs.EmbeddingList, **docs.errors(400, 401, 403, 404, 413, 500, 503)},
    )
    def post(self, request):
        texts, encoding = _embedding_request(request.data)
        model = embedder()
        vectors = model.embed(texts)
        data = [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
            for index, vector in enumerate(vectors)
        ]
        tokens = sum(math.ceil(len(text) / settings.TOKEN_ESTIMATE_CHARS_PER_TOKEN) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response({"object": "list", "data": data, "model": model.name, "usage": usage})


MAX_EMBEDDING_INPUTS = 2048


def _embedding_request(data) -> tuple[list[str], str]:
    if not isinstance(data, dict):
        raise ValidationError({"input": "Send a JSON object."})
    unknown = set(data) - {"input", "model", "encoding_format", "dimensions", "user"}
    if unknown:
        raise ValidationError({sorted(unknown)[0]: f"Unrecognized request argument supplied: {sorted(unknown)[0]}"})
    model = embedder()
    if data.get("model") not in ("memory", model.name):
        raise Http404(f"The model {data.get('model')!r} does not exist: embeddings come from 'memory' ({model.name}).")
    texts = [data["input"]] if isinstance(data.get("input"), str) else data.get("input")
    if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_EMBEDDING_INPUTS:
        raise ValidationError({"input": f"Send text or a list of 1 to {MAX_EMBEDDING_INPUTS} texts (not tokens)."})
    if not all(isinstance(text, str) and text.strip() and "\x00" not in text for text in texts):
        raise ValidationError({"input": "Each input is non-empty text."})
    if sum(len(text) for text in texts) > settings.AGENT_MAX_INPUT_CHARS:
        raise ValidationError({"input": f"At most {settings.AGENT_MAX_INPUT_CHARS} characters in all."})
    if data.get("dimensions") not in (None, settings.MEMORY_EMBEDDING_DIMENSIONS):
        raise ValidationError({"dimensions": f"This embedder gives {settings.MEMORY_EMBEDDING_DIMENSIONS} dimensions."})
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ValidationError({"encoding_format": "float or base64."})
    return texts, encoding


def _encoded(vector: list[float], encoding: str):
    """OpenAI's base64 form is the little-endian float32 array (what the SDK asks for by default)."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@csrf_exempt  # a POST to a path OpenAI has and we do not (e.g. /v1/completions) gets the 404, not a CSRF page
def not_found(request, *args, **kwargs):
    """Any other /v1/ path: OpenAI's 404 body."""
    return JsonResponse(error_body(404, f"Unknown path {request.path}.", code="unknown_url"), status=404)
