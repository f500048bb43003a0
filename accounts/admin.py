from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html_join

from accounts.models import ROLES, ApiKey, Preferences, SecurityEvent, TrailCheck, User
from accounts.services import apikey_revoke, is_last_active_admin, user_set_role


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record of what happened: browsed and filtered, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UserChangeForm(DjangoUserChangeForm):
    """A user's role is one choice, applied by the role service (staff flag, security event, last-admin rule)."""

    role = forms.ChoiceField(choices=[(role, role) for role in ROLES])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].initial = self.instance.role or settings.DEFAULT_ROLE

    def clean(self):
        cleaned = super().clean()
        demoted = cleaned.get("role") != "admin" or not cleaned.get("is_active", True)
        if self.instance.role == "admin" and demoted and is_last_active_admin(self.instance):
            raise forms.ValidationError("This is the last active admin; make another admin first.")
        return cleaned


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    list_display = ["username", "email", "role", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["groups", "is_active", "is_staff", "is_superuser"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("role", "is_active")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
        ("Their records", {"fields": ("records",)}),
    )
    readonly_fields = ["last_login", "date_joined", "records"]
    # Changelists filtered to one user: (admin URL name, link text). Other apps' lists are named, not imported.
    RECORD_LINKS = (
        ("admin:accounts_apikey_changelist", "API keys"),
        ("admin:agents_agentrun_changelist", "Runs"),
        ("admin:quotas_usagedaily_changelist", "Usage by day"),
        ("admin:quotas_usagerecord_changelist", "Usage ledger"),
        ("admin:accounts_securityevent_changelist", "Security events"),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="role")
    def role(self, user):
        return user.role or "—"

    @admin.display(description="records")
    def records(self, user):
        """Links to this user's keys, runs, usage and security events (each list filtered to them)."""
        if not user.pk:
            return "—"
        links = []
        for name, text in self.RECORD_LINKS:
            try:
                links.append((f"{reverse(name)}?user__id__exact={user.pk}", text))
            except NoReverseMatch:  # that app's admin is not installed
                continue
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        role = form.cleaned_data.get("role", settings.DEFAULT_ROLE) if change else settings.DEFAULT_ROLE
        user_set_role(user=obj, role=role, actor=request.user, request=request)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "status", "created_at", "expires_at", "last_used_at", "last_used_ip"]
    list_filter = ["revoke_reason", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["key_id", "name", "user__username"]
    readonly_fields = [
        "prefix",
        "user",
        "name",
        "scopes",
        "created_at",
        "created_by",
        "rotated_at",
        "previous_valid_until",
        "expires_at",
        "revoked_at",
        "revoke_reason",
        "last_used_at",
        "last_used_ip",
    ]
    fields = readonly_fields
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False  # keys are created by their owners, who see the secret once

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the record stays for the audit trail

    @admin.action(description="Revoke the selected keys now", permissions=["change"])
    def revoke_keys(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            apikey_revoke(key=key, actor=request.user, request=request)
        messages.success(request, "Revoked.")


@admin.register(Preferences)
class PreferencesAdmin(ReadOnlyAdmin):
    """Read-only: every role may change its own preferences, which must not let operators change anyone's."""

    list_display = ["user", "memory_enabled", "memory_retention_days", "timezone", "updated_at"]
    search_fields = ["user__username"]


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "created_at", "kind", "user", "actor", "api_key", "ip_address", "request_id"]
    list_filter = ["kind", "created_at"]
    search_fields = ["user__username", "actor__username", "ip_address", "request_id", "api_key__key_id"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "actor", "api_key"]


@admin.register(TrailCheck)
class TrailCheckAdmin(ReadOnlyAdmin):
    """Each verification of the security-event chain (the daily beat job, `manage.py security_trail verify`)."""

    list_display = ["checked_at", "ok", "events", "head_sequence", "broken_at", "problem"]
    list_filter = ["ok"]
