from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from agents import conversation
from agents.conversation import ROLES
from agents.models import Agent, AgentRun, AgentType, GuardVerdict, LanguageModel


class LanguageModelSerializer(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.name", read_only=True)
    provider_kind = serializers.CharField(source="provider.kind", read_only=True)

    class Meta:
        model = LanguageModel
        fields = [
            "name",
            "provider",
            "provider_kind",
            "context_window",
            "input_price_per_mtok",
            "output_price_per_mtok",
        ]
        read_only_fields = fields


class AgentTypeSerializer(serializers.ModelSerializer):
    default_model = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = AgentType
        fields = [
            "slug",
            "description",
            "default_model",
            "cache_ttl_seconds",
            "cache_scope",
            "default_max_tokens",
            "default_temperature",
        ]
        read_only_fields = fields


class AgentSerializer(serializers.ModelSerializer):
    agent_type = serializers.SlugRelatedField(slug_field="slug", queryset=AgentType.objects.all())
    model = serializers.SlugRelatedField(
        slug_field="name", queryset=LanguageModel.objects.filter(is_active=True), required=False, allow_null=True
    )
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "owner",
            "agent_type",
            "system_prompt",
            "model",
            "temperature",
            "max_tokens",
            "use_memory",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "version", "created_at", "updated_at"]


class MessageSerializer(serializers.Serializer):
    """One message in OpenAI's Chat Completions shape (checked by agents.conversation)."""

    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Text, or a list of parts: {type: text, text} and, in user messages, {type: image_url, image_url: {url}}.",
    )
    tool_calls = serializers.JSONField(required=False, help_text="An assistant message's tool calls.")
    tool_call_id = serializers.CharField(required=False, help_text="A tool message: the call it answers.")


class InvokeSerializer(serializers.Serializer):
    """The conversation and, as in OpenAI's Chat Completions, what may be set beside it."""

    messages = MessageSerializer(many=True, allow_empty=False)
    stream = serializers.BooleanField(default=False, help_text="Answer as server-sent events.")
    tools = serializers.JSONField(required=False, help_text="Function tools the model may call.")
    tool_choice = serializers.JSONField(
        required=False, help_text="none, auto, required or {type: function, function: {name}}."
    )
    parallel_tool_calls = serializers.BooleanField(required=False)
    response_format = serializers.JSONField(required=False, help_text="{type: text | json_object | json_schema, ...}.")
    stop = serializers.JSONField(required=False, help_text="Up to 4 stop sequences.")
    seed = serializers.IntegerField(required=False)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    user = serializers.CharField(required=False, max_length=256, help_text="Your end user, passed to the provider.")
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2, help_text="Else the agent's.")
    max_tokens = serializers.IntegerField(required=False, min_value=1, help_text="Else the agent's.")
    metadata = serializers.DictField(child=serializers.CharField(max_length=512), required=False)

    def validate(self, data):
        """The messages and options as the pipeline takes them (agents.conversation): 400 at the first fault."""
        try:
            data["messages"] = conversation.clean_messages(data["messages"])
            data["options"] = conversation.clean_options(data)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from error
        return data


class GuardVerdictSerializer(serializers.ModelSerializer):
    """What a content guard found in a run: the detector, the action taken, where and how many times; never
    the matched text."""

    class Meta:
        model = GuardVerdict
        fields = ["detector", "action", "where", "count"]
        read_only_fields = fields


class InvokeResultSerializer(serializers.Serializer):
    run = serializers.UUIDField()
    output = serializers.CharField()
    tool_calls = serializers.JSONField(help_text="The tools the answer calls (OpenAI's shape); [] if none.")
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "tool_calls", "content_filter"])
    cache = serializers.ChoiceField(choices=AgentRun.Cache.choices)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)
    verdicts = GuardVerdictSerializer(many=True, help_text="What the content guards found (and did).")


class AgentRunSerializer(serializers.ModelSerializer):
    verdicts = GuardVerdictSerializer(many=True, read_only=True, help_text="What the content guards found (and did).")

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "agent",
            "agent_version",
            "model_name",
            "input",
            "output",
            "tool_calls",
            "finish_reason",
            "metadata",
            "status",
            "error",
            "input_tokens",
            "output_tokens",
            "cost",
            "latency_ms",
            "cache",
            "streamed",
            "request_id",
            "created_at",
            "verdicts",
        ]
        read_only_fields = fields


class CacheInvalidationSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["entry", "agent", "agent_type", "all"])
    key = serializers.RegexField(
        r"^[0-9a-f]{64}$", required=False, help_text="scope=entry: the X-Cache-Key of a response."
    )
    agent = serializers.IntegerField(required=False, help_text="scope=agent: the agent id.")
    agent_type = serializers.SlugField(required=False, help_text="scope=agent_type: its slug.")

    def validate(self, data):
        needed = {"entry": "key", "agent": "agent", "agent_type": "agent_type"}.get(data["scope"])
        if needed and needed not in data:
            raise serializers.ValidationError({needed: [f"Required for scope {data['scope']!r}."]})
        return data
