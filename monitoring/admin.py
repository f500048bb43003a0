from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ReadOnlyAdmin
from monitoring.models import Alert, AlertNotification, AlertRule
from monitoring.services import alerts_silence


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "condition", "severity", "cooldown_minutes", "is_active", "open_alerts"]
    list_filter = ["kind", "severity", "is_active"]
    search_fields = ["name"]
    filter_horizontal = ["webhook_endpoints"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "severity", "is_active"]}),
        ("Condition", {"fields": ["threshold", "window_minutes", "min_runs", "cooldown_minutes"]}),
        (
            "Notify",
            {
                "fields": ["email_to", "webhook_endpoints"],
                "description": "Webhook endpoints of staff users (made on their Webhooks page) can be chosen.",
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(open_count=Count("alerts", filter=Q(alerts__state="open")))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "webhook_endpoints":
            # Alerts describe the whole platform: they go only to endpoints of operators and admins.
            kwargs["queryset"] = db_field.related_model.objects.filter(owner__is_staff=True, is_active=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="met at or above")
    def condition(self, rule):
        return f"{rule.threshold.normalize():f} {rule.unit}"

    @admin.display(description="open alerts", ordering="open_count")
    def open_alerts(self, rule):
        if not rule.open_count:
            return 0
        url = reverse("admin:monitoring_alert_changelist") + f"?rule__id__exact={rule.pk}&state__exact=open"
        return format_html('<a href="{}">{}</a>', url, rule.open_count)


class NotificationInline(admin.TabularInline):
    model = AlertNotification
    fields = ["created_at", "event", "channel", "destination", "outcome", "attempts", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="status")
    def outcome(self, notification):
        return notification_outcome(notification)


def notification_outcome(notification: AlertNotification) -> str:
    """An e-mail's own status; a webhook's is its delivery's (the tasks app retries and logs it)."""
    if notification.webhook_delivery_id:
        delivery = notification.webhook_delivery
        url = reverse("admin:tasks_webhookdelivery_change", args=[delivery.pk])
        return format_html('<a href="{}">{}</a>', url, delivery.get_status_display())
    return notification.get_status_display()


def _silence_action(hours: int):
    @admin.action(description=f"Silence for {hours} hour{'s' if hours > 1 else ''}", permissions=["silence"])
    def silence(modeladmin, request, queryset):
        until = timezone.now() + timedelta(hours=hours)
        count = alerts_silence(alerts=queryset, user=request.user, until=until)
        modeladmin.message_user(request, f"{count} open alert(s) silenced until {until:%Y-%m-%d %H:%M} UTC.")

    silence.__name__ = f"silence_{hours}h"
    return silence


@admin.action(description="End the silence", permissions=["silence"])
def unsilence(modeladmin, request, queryset):
    count = alerts_silence(alerts=queryset, user=request.user, until=None)
    modeladmin.message_user(request, f"{count} open alert(s) notify again.", messages.SUCCESS)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "state", "severity", "rule", "subject", "value", "summary", "silence", "resolved_at"]
    list_filter = ["state", "rule__severity", "rule__kind", "rule"]
    search_fields = ["subject", "summary", "rule__name"]
    date_hierarchy = "opened_at"
    list_select_related = ["rule", "silenced_by"]
    inlines = [NotificationInline]
    actions = [_silence_action(1), _silence_action(8), _silence_action(24), _silence_action(168), unsilence]

    def has_silence_permission(self, request):
        """Those who manage the rules may silence their alerts."""
        return request.user.has_perm("monitoring.change_alertrule")

    @admin.display(description="severity", ordering="rule__severity")
    def severity(self, alert):
        return alert.rule.get_severity_display()

    @admin.display(description="silenced", ordering="silenced_until")
    def silence(self, alert):
        if not alert.silenced(timezone.now()):
            return ""
        by = f" by {alert.silenced_by}" if alert.silenced_by else ""
        return f"until {alert.silenced_until:%Y-%m-%d %H:%M} UTC{by}"


@admin.register(AlertNotification)
class AlertNotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "alert", "event", "channel", "destination", "outcome", "attempts", "last_error"]
    list_filter = ["channel", "event", "status"]
    search_fields = ["destination", "alert__subject", "alert__rule__name"]
    list_select_related = ["alert__rule", "webhook_delivery"]

    @admin.display(description="status")
    def outcome(self, notification):
        return notification_outcome(notification)
