from django import forms
from django.contrib import admin, messages

from accounts.admin import ReadOnlyAdmin
from agents import cache as response_cache
from agents.models import Agent, AgentRun, AgentType, ExposedModel, LanguageModel, Provider
from agents.services.catalog import cache_invalidate, exposed_model_save
from core.encryption import encrypt


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False, max_length=300, assume_scheme="https", help_text="Empty: the vendor's default."
    )
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again; leave empty to keep the current one. "
        "Or name an environment variable above.",
    )

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "api_key_env", "timeout_seconds", "max_retries", "is_active"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "api_key_env", "has_stored_key", "is_active"]

    @admin.display(boolean=True, description="stored key")
    def has_stored_key(self, provider):
        return bool(provider.api_key_encrypted)

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("api_key"):
            obj.api_key_encrypted = encrypt(form.cleaned_data["api_key"])
        super().save_model(request, obj, form, change)


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "provider_model",
        "context_window",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "accepts_images",
        "is_active",
    ]
    list_filter = ["provider", "is_active", "accepts_images"]


@admin.register(AgentType)
class AgentTypeAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "default_model",
        "cache_ttl_seconds",
        "cache_scope",
        "cache_hits",
        "cache_misses",
        "cache_other",
    ]
    actions = ["invalidate_cache"]

    @admin.display(description="cache hits")
    def cache_hits(self, agent_type):
        return response_cache.stats(agent_type.slug).get("HIT", 0)

    @admin.display(description="misses")
    def cache_misses(self, agent_type):
        return response_cache.stats(agent_type.slug).get("MISS", 0)

    @admin.display(description="stale / bypass")
    def cache_other(self, agent_type):
        stats = response_cache.stats(agent_type.slug)
        return f"{stats.get('STALE', 0)} / {stats.get('BYPASS', 0)}"

    def has_invalidate_permission(self, request):
        return request.user.has_perm("agents.invalidate_cache")

    @admin.action(description="Invalidate the cached answers of the selected agent types", permissions=["invalidate"])
    def invalidate_cache(self, request, queryset):
        for agent_type in queryset:
            cache_invalidate(scope="agent_type", agent_type=agent_type.slug)
        messages.success(request, "Cached answers invalidated.")


@admin.register(ExposedModel)
class ExposedModelAdmin(admin.ModelAdmin):
    """Catalog models API clients call by name (`model`) through /v1/, run through an agent type."""

    list_display = ["name", "model", "agent_type", "roles", "agent"]
    readonly_fields = ["agent"]

    def save_model(self, request, obj, form, change):
        exposed_model_save(exposure=obj, actor=request.user)


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = ["name", "owner", "agent_type", "model", "version", "updated_at"]
    list_filter = ["agent_type"]
    search_fields = ["name", "owner__username"]
    actions = ["invalidate_cache"]

    def has_invalidate_permission(self, request):
        return request.user.has_perm("agents.invalidate_cache")

    @admin.action(description="Invalidate the cached answers of the selected agents", permissions=["invalidate"])
    def invalidate_cache(self, request, queryset):
        for agent in queryset:
            cache_invalidate(scope="agent", agent=agent.pk)
        messages.success(request, "Cached answers invalidated.")


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "agent",
        "user",
        "model_name",
        "status",
        "cache",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
    ]
    list_filter = ["status", "cache", "finish_reason", "model_name", "created_at"]
    search_fields = ["id", "agent__name", "user__username", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["agent", "user"]
