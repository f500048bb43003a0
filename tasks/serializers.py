from rest_framework import serializers

from tasks.models import TaskRecord, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class TaskRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRecord
        fields = [
            "id",
            "kind",
            "status",
            "progress_percent",
            "progress_message",
            "attempts",
            "result",
            "error",
            "request_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(WebhookEndpoint.EVENT_TYPES)),
        min_length=1,
        max_length=len(WebhookEndpoint.EVENT_TYPES),
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "is_active",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "previous_secret_valid_until",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "previous_secret_valid_until",
            "created_at",
        ]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret. Shown this once; store it now.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "status_code", "latency_ms", "error", "succeeded"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    attempts_made = WebhookAttemptSerializer(source="attempt_log", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "finished_at",
            "payload",
            "attempts_made",
        ]
        read_only_fields = fields
