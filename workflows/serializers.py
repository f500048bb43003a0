from rest_framework import serializers

from workflows.models import Approval, RunEvent, StepRun, Workflow, WorkflowRun, WorkflowSchedule, WorkflowVersion

FORMATS = [("yaml", "YAML"), ("json", "JSON")]


class WorkflowSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    version = serializers.IntegerField(source="current_version.number", read_only=True, default=None)
    source = serializers.CharField(source="current_version.source", read_only=True, default=None)
    format = serializers.CharField(source="current_version.format", read_only=True, default=None)

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "owner", "version", "format", "source", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "version", "format", "source", "created_at", "updated_at"]


class WorkflowWriteSerializer(serializers.Serializer):
    """A new workflow, or a change: a `source` makes a new version."""

    name = serializers.SlugField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    source = serializers.CharField(max_length=256 * 1024, required=False, trim_whitespace=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_null=True)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True)


class DefinitionSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=256 * 1024, trim_whitespace=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_null=True)


class ProblemSerializer(serializers.Serializer):
    path = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)
    definition = serializers.JSONField(allow_null=True)


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = WorkflowVersion
        fields = ["number", "format", "note", "created_by", "created_at", "source", "definition"]


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class ExportSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_null=True)
    version = serializers.IntegerField(required=False, read_only=True)
    source = serializers.CharField(max_length=256 * 1024, trim_whitespace=False)


class StartSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)


class StepRunSerializer(serializers.ModelSerializer):
    parent = serializers.CharField(source="parent.key", read_only=True, default=None)
    duration_ms = serializers.FloatField(read_only=True)

    class Meta:
        model = StepRun
        fields = [
            "key",
            "step_id",
            "parent",
            "index",
            "kind",
            "status",
            "attempt",
            "item",
            "input",
            "output",
            "error",
            "tokens",
            "cost",
            "agent_run_id",
            "reused",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
        ]


class RunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow",
            "workflow_name",
            "version",
            "owner",
            "status",
            "trigger",
            "inputs",
            "outputs",
            "error",
            "tokens",
            "cost",
            "saved_tokens",
            "saved_cost",
            "rerun_of",
            "rerun_from",
            "created_at",
            "finished_at",
        ]


class RunDetailSerializer(RunSerializer):
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps"]


class RerunSerializer(serializers.Serializer):
    from_step = serializers.CharField(max_length=63)


class SignalSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z0-9_.-]{1,100}$")
    data = serializers.JSONField(required=False, allow_null=True, default=None)


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["id", "type", "step", "data", "created_at"]


class ApprovalSerializer(serializers.ModelSerializer):
    run = serializers.UUIDField(source="run_id", read_only=True)
    workflow = serializers.CharField(source="run.workflow.name", read_only=True)
    step = serializers.CharField(source="step.key", read_only=True)
    decisions = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        fields = ["id", "run", "workflow", "step", "status", "role", "required", "context", "expires_at", "decisions"]

    def get_decisions(self, approval) -> list[dict]:
        return [
            {
                "user": decision.user.username,
                "decision": decision.decision,
                "comment": decision.comment,
                "via": decision.via,
            }
            for decision in approval.decisions.all()
        ]


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ScheduleSerializer(serializers.ModelSerializer):
    enabled = serializers.BooleanField(source="periodic_task.enabled", read_only=True)

    class Meta:
        model = WorkflowSchedule
        fields = ["id", "cron", "inputs", "enabled", "created_at"]
        read_only_fields = ["id", "enabled", "created_at"]
