import json

from django.conf import settings
from rest_framework import serializers

from memory.embeddings import unit_vector
from memory.models import Memory, MemoryNamespace
from memory.services import METADATA_MAX_CHARS


class MemorySerializer(serializers.ModelSerializer):
    agent = serializers.IntegerField(source="agent_id", required=False, allow_null=True)
    owner = serializers.IntegerField(source="owner_id", read_only=True, help_text="Yours, or who shared it.")

    class Meta:
        model = Memory
        fields = [
            "id",
            "owner",
            "namespace",
            "kind",
            "content",
            "agent",
            "metadata",
            "importance",
            "expires_at",
            "archived",
            "embedding_model",
            "access_count",
            "last_accessed_at",
            "created_at",
        ]
        read_only_fields = ["id", "embedding_model", "access_count", "last_accessed_at", "created_at"]

    def validate_metadata(self, metadata):
        if len(json.dumps(metadata)) > METADATA_MAX_CHARS:
            raise serializers.ValidationError(f"At most {METADATA_MAX_CHARS:,} characters of metadata.")
        return metadata


class MemoryNamespaceSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    memories = serializers.IntegerField(read_only=True, help_text="Its live memories.")

    class Meta:
        model = MemoryNamespace
        fields = ["id", "owner", "name", "description", "memories", "created_at"]
        read_only_fields = ["id", "owner", "created_at"]


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField(required=False, max_length=20000)
    vector = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        min_length=settings.MEMORY_EMBEDDING_DIMENSIONS,
        max_length=settings.MEMORY_EMBEDDING_DIMENSIONS,
        help_text=f"Instead of a query: {settings.MEMORY_EMBEDDING_DIMENSIONS} finite numbers, not all zero.",
    )
    k = serializers.IntegerField(default=10, min_value=1, max_value=100)
    filters = serializers.DictField(required=False, default=dict)
    include_archived = serializers.BooleanField(default=False)

    def validate_vector(self, vector):
        if unit_vector(vector) is None:
            raise serializers.ValidationError("The vector must be finite single-precision numbers, not all zero.")
        return vector

    def validate(self, data):
        if ("query" in data) == ("vector" in data):
            raise serializers.ValidationError({"query": ["Give a query or a vector, not both."]})
        return data


class SearchHitSerializer(serializers.Serializer):
    memory = MemorySerializer()
    distance = serializers.FloatField()


class SearchResultSerializer(serializers.Serializer):
    plan = serializers.ChoiceField(
        choices=["exact", "hnsw", "none"], help_text="none: the query has no words to search by."
    )
    results = SearchHitSerializer(many=True)


class ImportSerializer(serializers.Serializer):
    lines = serializers.CharField(
        max_length=20_000_000, trim_whitespace=False, help_text="JSON lines: one memory object per line."
    )


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A JSON-lines file, as GET /memories/export gives it (UTF-8).")
