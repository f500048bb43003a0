"""Prometheus metrics: every definition, and what keeps their labels bounded and their recording cheap.

prometheus_client runs in its multiprocess mode (core/metrics_dir.py): each process writes its samples to
memory-mapped files of its own, and `/metrics` (platform_site/metrics.py) adds up those of every process on
the host, with the gauges read at scrape time (SCRAPED below). docs/operations.md#metrics lists them all.

Recording is a dictionary lookup (`Family.of`: prometheus_client's `labels()` validates and locks, about
2 µs) and one write to the process's memory-mapped file per counter, two per histogram: about 2 and 4 µs.
Nothing here makes a network round trip.

Labels are bounded, so the number of series is whatever the code and the catalog make it, never what
clients send: a route template (`api/v1/agents/<str:pk>/invoke`), never a path; catalog names (models,
providers, agent types: agents/metrics.py) only while the catalog holds them, else `other`; fixed sets
(`bounded`) for methods, limits, plans, task kinds. Never a user id, a key, a path or free text.
"""

import atexit
import os
import threading

from prometheus_client import Counter, Gauge, Histogram, values

if not values.ValueClass._multiprocess:  # every process would count alone, and /metrics would not see it
    raise RuntimeError(
        "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set (core/metrics_dir.py: the "
        "settings set it; import nothing that imports prometheus_client before them)"
    )

OTHER = "other"

# The OpenTelemetry GenAI semantic conventions' bucket boundaries.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0)
SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OPERATION = "chat"  # gen_ai_operation_name: every provider call is a chat completion
PROVIDER, MODEL = "gen_ai_provider_name", "gen_ai_request_model"


class Family:
    """A labelled metric whose children are kept in a plain dict: `of(*values)` costs one lookup. Values
    must be bounded (see the module's doc): each new combination is a series for ever."""

    __slots__ = ("metric", "children")

    def __init__(self, metric):
        self.metric = metric
        self.children = {}

    def of(self, *values: str):
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


def bounded(value: str, known) -> str:
    """`value` if it is one of `known`, else `other`."""
    return value if value in known else OTHER


def _counter(name: str, documentation: str, labels: list[str]) -> Family:
    return Family(Counter(name, documentation, labels, registry=None))


def _histogram(name: str, documentation: str, labels: list[str], buckets) -> Family:
    return Family(Histogram(name, documentation, labels, buckets=buckets, registry=None))


# --- HTTP: core/correlation.py, on both middleware chains ------------------------------------------------

HTTP_REQUESTS = _counter(
    "http_requests", "Requests answered, by method, route template and status code.", ["method", "route", "status"]
)
HTTP_DURATION = _histogram(
    "http_request_duration_seconds",
    "Seconds from a request's arrival to its response (a stream: to its first byte), by method, route template "
    "and status class.",
    ["method", "route", "status_class"],
    HTTP_BUCKETS,
)
_in_flight = None
_in_flight_lock = threading.Lock()


def http_in_flight():
    """Requests being handled by the web processes now (until their response starts); made on first use, so a
    process that serves none (a management command) leaves no file for it. Made once under a lock: the first
    requests of a process arrive in several threads at once, and two gauges would each keep their own value
    in the one file (the sum went negative)."""
    global _in_flight
    if _in_flight is None:
        with _in_flight_lock:
            if _in_flight is None:
                _in_flight = Gauge(
                    "http_requests_in_flight",
                    "Requests being handled now, summed over the live web processes.",
                    registry=None,
                    multiprocess_mode="livesum",
                )
    return _in_flight


# --- the invocation pipeline: agents/metrics.py ------------------------------------------------------------

TOKEN_USAGE = _histogram(
    "gen_ai_client_token_usage",
    "Tokens (unit: token) a provider call used, input and output each an observation (OpenTelemetry "
    "gen_ai.client.token.usage).",
    ["gen_ai_operation_name", PROVIDER, MODEL, "gen_ai_token_type"],
    TOKEN_BUCKETS,
)
OPERATION_DURATION = _histogram(
    "gen_ai_client_operation_duration_seconds",
    "Seconds a provider call took, a stream to its last chunk; error_type set when it failed (OpenTelemetry "
    "gen_ai.client.operation.duration).",
    ["gen_ai_operation_name", PROVIDER, MODEL, "error_type"],
    OPERATION_BUCKETS,
)
TIME_TO_FIRST_TOKEN = _histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Seconds from sending a streamed call to its first chunk, measured by the gateway (OpenTelemetry "
    "gen_ai.server.time_to_first_token).",
    ["gen_ai_operation_name", PROVIDER, MODEL],
    FIRST_TOKEN_BUCKETS,
)
COST = _counter("switchboard_cost_usd", "USD charged for provider calls, from the catalog's prices.", [PROVIDER, MODEL])
RUNS = _counter(
    "switchboard_runs",
    "Runs recorded, by status (succeeded, failed, refused), cache outcome (HIT, MISS, STALE, BYPASS) and agent type.",
    ["status", "cache", "agent_type"],
)
PROVIDER_ERRORS = _counter(
    "switchboard_provider_errors",
    "Provider calls that failed, by provider, the status answered (400, 502, 503, 504) and error type.",
    [PROVIDER, "status", "error_type"],
)
ERROR_TYPES = frozenset({"timeout", "unreachable", "rate_limited", "invalid_request", "bad_answer", "circuit_open"})

# --- quotas, tasks, memory ----------------------------------------------------------------------------------

QUOTA_REFUSALS = _counter(
    "switchboard_quota_refusals", "Requests refused by a quota, by the limit that refused them.", ["limit"]
)
TASKS = _counter(
    "switchboard_tasks",
    "Tracked task attempts that ended, by kind and outcome (succeeded, failed, retried, cancelled).",
    ["kind", "outcome"],
)
TASK_DURATION = _histogram(
    "switchboard_task_duration_seconds",
    "Seconds a tracked task attempt ran, by kind and outcome.",
    ["kind", "outcome"],
    TASK_BUCKETS,
)
TASK_OUTCOMES = frozenset({"succeeded", "failed", "retried", "cancelled"})
MEMORY_SEARCH = _histogram(
    "switchboard_memory_search_duration_seconds",
    "Seconds a memory search took, by the plan that served it (exact, hnsw, none).",
    ["plan"],
    SEARCH_BUCKETS,
)
SEARCH_PLANS = frozenset({"exact", "hnsw", "none"})

# --- workflows ---------------------------------------------------------------------------------------------

WORKFLOW_RUNS = _counter(
    "switchboard_workflow_runs", "Workflow runs that ended, by outcome (succeeded, failed, cancelled).", ["outcome"]
)
WORKFLOW_STEPS = _counter(
    "switchboard_workflow_steps",
    "Workflow steps that ended, by kind and outcome (succeeded, failed, skipped, cancelled).",
    ["kind", "outcome"],
)
WORKFLOW_STEP_DURATION = _histogram(
    "switchboard_workflow_step_duration_seconds",
    "Seconds from a workflow step's start to its end (waits for people and time included), by kind and outcome.",
    ["kind", "outcome"],
    TASK_BUCKETS,
)
WORKFLOW_OUTCOMES = frozenset({"succeeded", "failed", "skipped", "cancelled"})

# --- read at scrape time by the process serving /metrics (platform_site/metrics.py) --------------------------

SCRAPED = {
    "switchboard_breaker_state": "A provider's circuit breaker: 0 closed, 1 open, 2 half-open (the next call is a trial).",
    "switchboard_run_backlog": "Runs answered but not yet written to PostgreSQL by the recorder (the Redis stream).",
    "switchboard_queue_depth": "Messages waiting in a Celery queue of the broker.",
    "switchboard_queue_oldest_age_seconds": "Seconds the oldest message waiting in a Celery queue has waited (0: none).",
}


@atexit.register
def _forget_live_gauges() -> None:
    """A process that ends cleanly takes its live gauges out of the sums (gunicorn's child_exit does it for
    workers that do not)."""
    if _in_flight is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
