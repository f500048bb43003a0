import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from tasks.outbound import UnsafeDestination, check_provider_url, check_url


class Provider(models.Model):
    """Where completions come from. The credential is named (an environment variable) or stored encrypted."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible (OpenAI, Azure, vLLM, Ollama, llama.cpp, LM Studio)"
        ANTHROPIC = "anthropic", "Anthropic"
        ECHO = "echo", "Echo (built in, for trying the platform without a key)"

    name = models.SlugField(max_length=50, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    base_url = models.URLField(max_length=300, blank=True, default="", help_text="Empty: the vendor's default.")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        default="",
        # Only *_API_KEY names: a provider must not be able to carry SECRET_KEY or DATABASE_URL to its host.
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*_API_KEY$", "Name a variable ending in _API_KEY.")],
        help_text="Name of the environment variable holding the key, e.g. OPENAI_API_KEY.",
    )
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    timeout_seconds = models.FloatField(default=60, validators=[MinValueValidator(1), MaxValueValidator(600)])
    max_retries = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(10)])
    is_active = models.BooleanField(default=True)

    def __str__(self):
        return self.name

    def clean(self):
        if self.base_url:
            try:
                check_provider_url(self.base_url)
            except UnsafeDestination as error:
                raise ValidationError({"base_url": str(error)}) from error


class LanguageModel(models.Model):
    """The model catalog: what each model is called, where it runs and what it costs."""

    name = models.SlugField(max_length=100, unique=True, help_text="The name agents and users refer to.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    provider_model = models.CharField(max_length=200, help_text="The name sent to the provider.")
    context_window = models.PositiveIntegerField(default=8192)
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="USD per million input tokens."
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="USD per million output tokens."
    )
    is_active = models.BooleanField(default=True)
    accepts_images = models.BooleanField(
        default=False, help_text="Whether the model takes images in messages; requests with images are refused if not."
    )

    class Meta:
        verbose_name = "model"

    def __str__(self):
        return self.name

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        """USD for a call, or None when the model has no price."""
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        total = input_tokens * self.input_price_per_mtok + output_tokens * self.output_price_per_mtok
        return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


class AgentType(models.Model):
    class Meta:
        permissions = [("invalidate_cache", "Can invalidate the response cache")]

    class CacheScope(models.TextChoices):
        USER = "user", "Per user (answers are never shared between users)"
        SHARED = "shared", "Shared (the same input gets the same answer for everyone)"

    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True, default="", max_length=2000)
    default_model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="+")
    cache_ttl_seconds = models.PositiveIntegerField(default=300, help_text="0 turns the response cache off.")
    cache_scope = models.CharField(max_length=10, choices=CacheScope.choices, default=CacheScope.USER)
    default_max_tokens = models.PositiveIntegerField(default=1024)
    default_temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0), MaxValueValidator(2)])
    # Default limits every user gets on agents of this type (quotas counts them per user and type).
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    cache_tool_calls = models.BooleanField(
        default=False,
        help_text="Cache answers that call tools too (a cached tool call is made again by the agent that gets it).",
    )

    def __str__(self):
        return self.slug


class Agent(models.Model):
    """A user's agent. `version` changes with every configuration change, so cached answers follow it."""

    CONFIG_FIELDS = ("agent_type_id", "system_prompt", "model_id", "temperature", "max_tokens", "use_memory")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    agent_type = models.ForeignKey(AgentType, on_delete=models.PROTECT, related_name="agents")
    name = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True, default="", max_length=20000)
    model = models.ForeignKey(
        LanguageModel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: the agent type's default model.",
    )
    temperature = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(2)])
    max_tokens = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    use_memory = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        permissions = [("use_agent", "Can use (invoke) a shared agent"), ("invoke_agent", "Can invoke agents")]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="agent_name_unique_per_owner")]

    def __str__(self):
        return self.name

    @property
    def effective_model(self) -> LanguageModel:
        return self.model or self.agent_type.default_model

    @property
    def effective_temperature(self) -> float:
        return self.agent_type.default_temperature if self.temperature is None else self.temperature

    @property
    def effective_max_tokens(self) -> int:
        return self.max_tokens or self.agent_type.default_max_tokens


def _exposed_name(value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,89}", value) or value.startswith("agent:"):
        raise ValidationError("Letters, digits, '.', '_', ':' and '-'; not starting with 'agent:' (no '/').")


class ExposedModel(models.Model):
    """A catalog model that API clients call by name through the OpenAI-compatible API, without an agent of
    their own: it runs through an agent type the operator picks (its limits, cache and defaults), for the
    roles listed. Its calls are recorded on a backing agent owned by the operator who exposed it."""

    name = models.CharField(
        max_length=90, unique=True, validators=[_exposed_name], help_text="What clients send as `model`."
    )
    agent_type = models.ForeignKey(AgentType, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(
        LanguageModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Empty: the type's."
    )
    roles = models.JSONField(default=list, blank=True, help_text='Roles that may call it, e.g. ["member"]; [] for all.')
    agent = models.OneToOneField("Agent", on_delete=models.PROTECT, editable=False, related_name="exposure")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from accounts.models import ROLES

        if not isinstance(self.roles, list) or any(role not in ROLES for role in self.roles):
            raise ValidationError({"roles": f"A list of roles among {', '.join(ROLES)}."})


class AgentRun(models.Model):
    """One invocation, as recorded by the pipeline: what went in and out, what it cost, how it was served."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused by a guard"

    class Cache(models.TextChoices):
        HIT = "HIT", "Hit"
        MISS = "MISS", "Miss"
        STALE = "STALE", "Stale (provider down)"
        BYPASS = "BYPASS", "Bypass"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent_version = models.PositiveIntegerField()
    model_name = models.CharField(max_length=100)
    input = models.JSONField()
    output = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(
        default=list, blank=True, help_text="The tools the answer called, as OpenAI writes them."
    )
    finish_reason = models.CharField(max_length=20, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True, help_text="What the request set in its `metadata`.")
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    latency_ms = models.FloatField(default=0)
    cache = models.CharField(max_length=6, choices=Cache.choices)
    streamed = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["agent", "-created_at"])]
        constraints = [
            # One successful run per idempotency key (a retried task is charged once; failed tries may repeat).
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~models.Q(idempotency_key="") & models.Q(status="succeeded"),
                name="run_idempotency_unique",
            )
        ]

    def __str__(self):
        return f"run {self.id} of {self.agent_id}"


# --- content guards: policies, external guard services, verdicts ----------------------------------------


class GuardAction(models.TextChoices):
    BLOCK = "block", "Block (refuse the text)"
    REDACT = "redact", "Redact (replace what was found by a placeholder)"
    FLAG = "flag", "Flag (record it, change nothing)"


class GuardService(models.Model):
    """An external guard an operator adds: a URL the pipeline POSTs texts to, signed per Standard Webhooks,
    that answers allow, redact or block within its time budget (agents.services.guarding)."""

    class Directions(models.TextChoices):
        INPUT = "input", "Inputs (messages, tool results)"
        OUTPUT = "output", "Outputs (answers, tool-call arguments)"
        BOTH = "both", "Both"

    name = models.SlugField(max_length=50, unique=True, help_text="Verdicts name it `external:<name>`.")
    url = models.URLField(max_length=300, help_text="Public addresses only (the outbound guard applies).")
    secret_encrypted = models.TextField(editable=False)
    timeout_ms = models.PositiveIntegerField(
        default=500,
        validators=[MinValueValidator(10), MaxValueValidator(10_000)],
        help_text="Its time budget per check; past it the policy's fail mode decides.",
    )
    directions = models.CharField(max_length=6, choices=Directions.choices, default=Directions.BOTH)
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="", max_length=2000)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.url:
            try:
                check_url(self.url)
            except UnsafeDestination as error:
                raise ValidationError({"url": str(error)}) from error

    def checks(self, direction: str) -> bool:
        return self.is_active and self.directions in (direction, self.Directions.BOTH)


class ContentPolicy(models.Model):
    """What the content guards do for one agent type, or for every type without a policy of its own (the
    platform default, `agent_type` empty): an action per detector or family, blocked terms, external guards."""

    agent_type = models.ForeignKey(
        AgentType,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the platform default, for every agent type without a policy of its own.",
    )
    description = models.TextField(blank=True, default="", max_length=2000)
    actions = models.JSONField(
        default=dict, blank=True, help_text='Detector or family -> block, redact or flag, e.g. {"secret": "redact"}.'
    )
    blocked_terms = models.TextField(
        blank=True, default="", max_length=200_000, help_text="One word or phrase per line (any case, accents ignored)."
    )
    blocked_terms_action = models.CharField(max_length=6, choices=GuardAction.choices, default=GuardAction.BLOCK)
    guards = models.ManyToManyField(GuardService, through="PolicyGuard", blank=True, related_name="policies")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "content policy"
        verbose_name_plural = "content policies"
        ordering = [models.F("agent_type").asc(nulls_first=True)]
        constraints = [
            # One policy per agent type, and one platform default (NULLs count as equal).
            models.UniqueConstraint(
                fields=["agent_type"],
                nulls_distinct=False,
                name="content_policy_one_per_type",
                violation_error_message="There is a policy for this agent type already (or a platform default).",
            )
        ]

    def __str__(self):
        return f"policy of {self.agent_type}" if self.agent_type_id else "platform default policy"

    def terms(self) -> list[str]:
        return [line.strip() for line in self.blocked_terms.splitlines() if line.strip()]

    def clean(self):
        from agents.guards import Policy

        try:
            Policy.from_dict({"actions": self.actions or {}, "blocked_terms": self.terms()})
        except ValueError as error:  # names the unknown detector or action
            raise ValidationError(str(error)) from error


class PolicyGuard(models.Model):
    """An external guard a policy applies, and what happens when it cannot answer in time."""

    class FailMode(models.TextChoices):
        OPEN = "open", "Fail open (pass the text, record an error verdict)"
        CLOSED = "closed", "Fail closed (refuse the request with a 503)"

    policy = models.ForeignKey(ContentPolicy, on_delete=models.CASCADE, related_name="policy_guards")
    service = models.ForeignKey(GuardService, on_delete=models.PROTECT, related_name="+")
    fail_mode = models.CharField(max_length=6, choices=FailMode.choices, default=FailMode.CLOSED)

    class Meta:
        verbose_name = "external guard"
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["policy", "service"], name="policy_guard_unique")]

    def __str__(self):
        return f"{self.service} ({self.get_fail_mode_display()})"


class GuardVerdict(models.Model):
    """What a guard found in one run: the detector, the action taken, where, how many times. Never the
    matched text. Written with the run (agents.recording), one row per (detector, action, where)."""

    class Action(models.TextChoices):
        BLOCK = "block", "Blocked"
        REDACT = "redact", "Redacted"
        FLAG = "flag", "Flagged"
        ERROR = "error", "Guard failed (passed: fail-open)"

    class Where(models.TextChoices):
        INPUT = "input", "Input"
        OUTPUT = "output", "Output"
        TOOL_ARGUMENTS = "tool_arguments", "Tool-call arguments"
        TOOL_RESULT = "tool_result", "Tool result"
        STREAM = "stream", "Stream"

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="verdicts")
    detector = models.CharField(max_length=100, db_index=True)
    action = models.CharField(max_length=6, choices=Action.choices)
    where = models.CharField(max_length=14, choices=Where.choices)
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "run_id", "detector"]
        constraints = [
            # Written again (a recorder retrying a batch), a verdict is still one row.
            models.UniqueConstraint(fields=["run", "detector", "action", "where"], name="guard_verdict_unique")
        ]

    def __str__(self):
        return f"{self.detector} {self.action} in {self.where} ×{self.count}"
