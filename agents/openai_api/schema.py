"""The OpenAI-compatible endpoints in the OpenAPI schema: OpenAI's shapes (as far as Switchboard answers
them) and its error body on every error status."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from core.schema import AutoSchema


class ChatCompletionRequest(serializers.Serializer):
    """OpenAI's Chat Completions request; see docs/api.md for what is taken, ignored and refused."""

    model = serializers.CharField(help_text="An agent: `agent:<id>` or `<owner>/<agent name>`.")
    messages = serializers.ListField(child=serializers.DictField(), help_text="OpenAI's messages.")
    stream = serializers.BooleanField(required=False)
    stream_options = serializers.DictField(required=False, help_text="{include_usage: bool}.")
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    tool_choice = serializers.JSONField(required=False)
    parallel_tool_calls = serializers.BooleanField(required=False)
    response_format = serializers.DictField(required=False)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    stop = serializers.JSONField(required=False)
    seed = serializers.IntegerField(required=False)
    user = serializers.CharField(required=False)
    metadata = serializers.DictField(child=serializers.CharField(), required=False)


class AssistantMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"])
    content = serializers.CharField(allow_null=True)
    refusal = serializers.CharField(allow_null=True)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)


class Choice(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessage()
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "tool_calls", "content_filter"])
    logprobs = serializers.DictField(allow_null=True)


class Usage(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ChatCompletion(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["chat.completion"])
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = Choice(many=True)
    usage = Usage()
    system_fingerprint = serializers.CharField(allow_null=True)


class Model(serializers.Serializer):
    id = serializers.CharField(help_text="`<owner>/<agent name>`.")
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = Model(many=True)


class EmbeddingRequest(serializers.Serializer):
    model = serializers.CharField(help_text="`memory` (or the memory embedder's name).")
    input = serializers.JSONField(help_text="Text or a list of texts.")
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False)
    dimensions = serializers.IntegerField(required=False)
    user = serializers.CharField(required=False)


class Embedding(serializers.Serializer):
    object = serializers.ChoiceField(choices=["embedding"])
    index = serializers.IntegerField()
    embedding = serializers.JSONField(help_text="Floats, or base64 of little-endian float32s.")


class EmbeddingUsage(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class EmbeddingList(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = Embedding(many=True)
    model = serializers.CharField()
    usage = EmbeddingUsage()


class ErrorObject(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, rate_limit_error...")
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIError(serializers.Serializer):
    """OpenAI's error body."""

    error = ErrorObject()


def errors(*statuses: int) -> dict:
    """Error responses of an operation, in OpenAI's shape."""
    return {status: OpenApiResponse(OpenAIError, description="OpenAI's error body.") for status in statuses}


class OpenAISchema(AutoSchema):
    """The operations list their error responses themselves (`errors`), in OpenAI's shape."""

    def _should_add_error_response(self, responses: dict, status_code: str) -> bool:
        return False
