from django.contrib import admin, messages

from accounts.admin import ReadOnlyAdmin
from tasks import selectors
from tasks.models import TaskRecord, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.services.records import task_retry
from tasks.services.webhooks import delivery_replay


@admin.register(TaskRecord)
class TaskRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "owner",
        "status",
        "progress_percent",
        "attempts",
        "finished_at",
        "error_excerpt",
    ]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["id", "kind", "owner__username", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    actions = ["retry_failed"]
    change_list_template = "admin/tasks/taskrecord/change_list.html"

    @admin.display(description="error")
    def error_excerpt(self, record):
        return record.error[:80]

    def changelist_view(self, request, extra_context=None):
        """Queue depth and tasks per status above the list."""
        extra_context = {
            **(extra_context or {}),
            "queue_depth": selectors.queue_depth(),
            "counts": selectors.task_counts(),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def has_retry_permission(self, request):
        return request.user.has_perm("tasks.retry_taskrecord")

    @admin.action(description="Retry the selected failed tasks", permissions=["retry"])
    def retry_failed(self, request, queryset):
        retried = 0
        for record in queryset.filter(status=TaskRecord.Status.FAILED):
            task_retry(record=record)
            retried += 1
        messages.success(request, f"{retried} task(s) queued again.")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "owner", "events", "is_active", "consecutive_failures", "disabled_reason", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "owner__username"]
    exclude = ["secret_encrypted", "previous_secret_encrypted"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "status_code", "latency_ms", "succeeded", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "next_attempt_at"]
    list_filter = ["status", "event_type", "created_at"]
    search_fields = ["event_id", "endpoint__url", "endpoint__owner__username"]
    list_select_related = ["endpoint"]
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def has_replay_permission(self, request):
        return request.user.has_perm("tasks.replay_webhookdelivery")

    @admin.action(description="Replay the selected deliveries", permissions=["replay"])
    def replay(self, request, queryset):
        for delivery in queryset.select_related("endpoint"):
            delivery_replay(delivery=delivery)
        messages.success(request, f"{queryset.count()} deliveries sent again.")
