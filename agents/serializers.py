from rest_framework import serializers

from agents.models import Agent, AgentRun, AgentType, LanguageModel
from agents.services.pipeline import ROLES_ALLOWED


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
    role = serializers.ChoiceField(choices=ROLES_ALLOWED)
    content = serializers.CharField(trim_whitespace=False)


class InvokeSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True, allow_empty=False)
    stream = serializers.BooleanField(default=False, help_text="Answer as server-sent events.")


class InvokeResultSerializer(serializers.Serializer):
    run = serializers.UUIDField()
    output = serializers.CharField()
    cache = serializers.ChoiceField(choices=AgentRun.Cache.choices)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)


class AgentRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentRun
        fields = [
            "id",
            "agent",
            "agent_version",
            "model_name",
            "input",
            "output",
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
