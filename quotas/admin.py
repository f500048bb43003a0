from django.contrib import admin
from django.db.models import Sum

from accounts.admin import ReadOnlyAdmin
from quotas.forms import QuotaPolicyForm
from quotas.models import QuotaPolicy, UsageDaily, UsageRecord


@admin.register(QuotaPolicy)
class QuotaPolicyAdmin(admin.ModelAdmin):
    form = QuotaPolicyForm
    list_display = [
        "name",
        "applies_to",
        "role",
        "user",
        "api_key",
        "agent_type",
        "model",
        "requests_per_minute",
        "tokens_per_day",
        "cost_per_day",
        "cost_per_month",
        "is_active",
    ]
    list_filter = ["applies_to", "is_active"]
    raw_id_fields = ["user", "api_key"]


class TotalsAdmin(ReadOnlyAdmin):
    """A read-only list with the totals of what is filtered shown above it."""

    change_list_template = "admin/quotas/change_list_with_totals.html"
    total_fields = ("input_tokens", "output_tokens", "cost")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if hasattr(response, "context_data") and "cl" in response.context_data:
            queryset = response.context_data["cl"].queryset
            response.context_data["totals"] = queryset.aggregate(**{name: Sum(name) for name in self.total_fields})
        return response


@admin.register(UsageDaily)
class UsageDailyAdmin(TotalsAdmin):
    list_display = [
        "day",
        "user",
        "api_key",
        "agent_type",
        "model",
        "requests",
        "input_tokens",
        "output_tokens",
        "cost",
    ]
    list_filter = ["day", "agent_type", "model"]
    search_fields = ["user__username"]
    date_hierarchy = "day"
    total_fields = ("requests", "input_tokens", "output_tokens", "cost")


@admin.register(UsageRecord)
class UsageRecordAdmin(TotalsAdmin):
    list_display = [
        "created_at",
        "user",
        "api_key",
        "agent_type",
        "model",
        "input_tokens",
        "output_tokens",
        "cost",
        "cached",
    ]
    list_filter = ["agent_type", "model", "cached"]
    search_fields = ["user__username", "run_id"]
    date_hierarchy = "created_at"
