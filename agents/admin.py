import secrets
from base64 import b64encode
from functools import cache

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import ReadOnlyAdmin
from agents import cache as response_cache
from agents.models import (
    Agent,
    AgentRun,
    AgentType,
    ContentPolicy,
    ExposedModel,
    GuardAction,
    GuardService,
    GuardVerdict,
    LanguageModel,
    PolicyGuard,
    Provider,
)
from agents.services.agents import agent_create, agent_delete, agent_update
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


class AgentAdminForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ["owner", "name", "agent_type", "model", "system_prompt", "temperature", "max_tokens", "use_memory"]

    def clean(self):
        """The name is unique per owner; the owner is no field of the change form, so Django skips the check."""
        cleaned = super().clean()
        owner = cleaned.get("owner") or getattr(self.instance, "owner", None)
        taken = Agent.objects.filter(owner=owner, name=cleaned.get("name")).exclude(pk=self.instance.pk)
        if owner is not None and taken.exists():
            self.add_error("name", "This owner already has an agent with this name.")
        return cleaned


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Operators change agents through the service the API uses (agents.services.agents): a change to what
    shapes the answers bumps the version, so cached answers of the old one are no longer served, and every
    process drops the agent it keeps."""

    form = AgentAdminForm
    list_display = ["name", "owner", "agent_type", "model", "use_memory", "version", "updated_at", "runs_link"]
    list_filter = ["agent_type", "use_memory"]
    list_select_related = ["owner", "agent_type", "model"]
    search_fields = ["name", "owner__username"]
    raw_id_fields = ["owner"]
    readonly_fields = ["version", "created_at", "updated_at", "runs_link"]
    actions = ["invalidate_cache"]
    EDITABLE = ["name", "agent_type", "model", "system_prompt", "temperature", "max_tokens", "use_memory"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "owner"] if obj is not None else self.readonly_fields

    @admin.display(description="runs")
    def runs_link(self, agent):
        if agent.pk is None:
            return "-"
        url = reverse("admin:agents_agentrun_changelist")
        return format_html('<a href="{}?agent__id__exact={}">Runs of {}</a>', url, agent.pk, agent.name)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in self.EDITABLE if name in form.cleaned_data}
        if change:
            saved = agent_update(agent=Agent.objects.get(pk=obj.pk), **fields)
        else:
            saved = agent_create(owner=form.cleaned_data["owner"], **fields)
        for field in Agent._meta.concrete_fields:  # the admin goes on with `obj` (its log entry, the redirect)
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def delete_model(self, request, obj):
        agent_delete(agent=obj)

    def delete_queryset(self, request, queryset):
        for agent in queryset:
            agent_delete(agent=agent)

    def has_invalidate_permission(self, request):
        return request.user.has_perm("agents.invalidate_cache")

    @admin.action(description="Invalidate the cached answers of the selected agents", permissions=["invalidate"])
    def invalidate_cache(self, request, queryset):
        for agent in queryset:
            cache_invalidate(scope="agent", agent=agent.pk)
        messages.success(request, "Cached answers invalidated.")


class GuardVerdictInline(admin.TabularInline):
    """What the content guards found in the run: never the matched text."""

    model = GuardVerdict
    fields = ["detector", "action", "where", "count"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
    inlines = [GuardVerdictInline]


# --- content guards ---------------------------------------------------------------------------------------

ACTION_CHOICES = [("", "Off (not looked for)"), *GuardAction.choices]


class ContentPolicyFormBase(forms.ModelForm):
    """A policy as an operator sets it: an action per family of detectors, a line per detector that differs
    from its family, blocked terms. Stored as `actions` (agents.guards.Policy's form)."""

    overrides = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One detector per line where it differs from its family (or its family is off): "
        "<code>secret.jwt = flag</code>, <code>national_id.fr_nir = block</code>. Names: docs/guardrails.md.",
    )

    class Meta:
        model = ContentPolicy
        fields = ["agent_type", "description", "blocked_terms", "blocked_terms_action"]

    families: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        actions = dict(self.instance.actions or {})
        for family in self.families:
            self.fields[f"family_{family}"].initial = actions.pop(family, "")
        actions.pop("blocked_term", None)
        self.fields["overrides"].initial = "\n".join(f"{name} = {action}" for name, action in sorted(actions.items()))

    def clean(self):
        cleaned = super().clean()
        actions = {family: cleaned[f"family_{family}"] for family in self.families if cleaned.get(f"family_{family}")}
        for number, line in enumerate((cleaned.get("overrides") or "").splitlines(), 1):
            if not line.strip():
                continue
            name, equals, action = (part.strip() for part in line.partition("="))
            if not equals or not name or action not in GuardAction.values:
                self.add_error("overrides", f"Line {number}: write `detector = block | redact | flag`.")
                continue
            actions[name] = action
        from agents.guards import Policy

        try:
            Policy(actions=actions)
        except ValueError as error:  # an unknown detector, named
            self.add_error("overrides", str(error))
            actions = {}
        self.instance.actions = actions
        return cleaned


@cache
def content_policy_form():
    """The form with a field per family of detectors (agents.guards is imported here, when an operator opens
    a policy, not when the admin loads)."""
    from agents.guards import groups

    families = tuple(sorted(groups()))
    fields = {
        f"family_{family}": forms.ChoiceField(choices=ACTION_CHOICES, required=False, label=family)
        for family in families
    }
    return type("ContentPolicyForm", (ContentPolicyFormBase,), {**fields, "families": families})


class PolicyGuardInline(admin.TabularInline):
    model = PolicyGuard
    extra = 0
    fields = ["service", "fail_mode"]
    verbose_name = "external guard"
    verbose_name_plural = "external guards (applied after the built-in detectors, in this order)"


@admin.register(ContentPolicy)
class ContentPolicyAdmin(admin.ModelAdmin):
    """Content policies: the platform default (no agent type) and one per agent type that needs its own. A
    change reaches every process within a second (agents.invalidation)."""

    list_display = ["__str__", "agent_type", "actions_summary", "terms_count", "updated_at"]
    list_select_related = ["agent_type"]
    inlines = [PolicyGuardInline]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = content_policy_form()
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        families = content_policy_form().families
        return [
            (None, {"fields": ["agent_type", "description"]}),
            (
                "Detectors",
                {
                    "fields": [f"family_{family}" for family in families] + ["overrides"],
                    "description": "Block refuses the text (422), redact replaces what was found by a placeholder "
                    "such as [EMAIL] before anything is stored or sent, flag only records a verdict.",
                },
            ),
            ("Blocked terms", {"fields": ["blocked_terms", "blocked_terms_action"]}),
        ]

    @admin.display(description="actions")
    def actions_summary(self, policy):
        return ", ".join(f"{name}: {action}" for name, action in sorted((policy.actions or {}).items())) or "-"

    @admin.display(description="blocked terms")
    def terms_count(self, policy):
        return len(policy.terms())


def new_guard_secret() -> str:
    return "whsec_" + b64encode(secrets.token_bytes(24)).decode()


class GuardServiceForm(forms.ModelForm):
    url = forms.URLField(
        max_length=300, assume_scheme="https", help_text="Public addresses only (the outbound guard applies)."
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The Standard Webhooks signing secret (whsec_...), stored encrypted and never shown again. "
        "Empty: a new service gets one made for it (shown once); a service keeps its own.",
    )

    class Meta:
        model = GuardService
        fields = ["name", "url", "timeout_ms", "directions", "is_active", "description"]

    def clean_secret(self):
        secret = self.cleaned_data.get("secret") or ""
        if secret:
            from standardwebhooks import Webhook

            try:
                Webhook(secret)
            except Exception as error:
                raise forms.ValidationError("Not a Standard Webhooks secret (whsec_ and base64).") from error
        return secret


@admin.register(GuardService)
class GuardServiceAdmin(admin.ModelAdmin):
    """External guards: the pipeline POSTs the texts a policy guards to them, signed (docs/guardrails.md)."""

    form = GuardServiceForm
    list_display = ["name", "url", "directions", "timeout_ms", "is_active"]
    list_filter = ["directions", "is_active"]

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("secret")
        if not secret and not obj.secret_encrypted:
            secret = new_guard_secret()
            messages.warning(request, f"Its signing secret, shown this once: {secret}")
        if secret:
            obj.secret_encrypted = encrypt(secret)
        super().save_model(request, obj, form, change)


@admin.register(GuardVerdict)
class GuardVerdictAdmin(ReadOnlyAdmin):
    """Every verdict of the content guards, with its run: the detector, the action, where; never the text."""

    list_display = ["created_at", "detector", "action", "where", "count", "run_link"]
    list_filter = ["action", "where", "detector", "created_at"]
    search_fields = ["detector", "run__id"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="run")
    def run_link(self, verdict):
        url = reverse("admin:agents_agentrun_change", args=[verdict.run_id])
        return format_html('<a href="{}">{}</a>', url, verdict.run_id)
