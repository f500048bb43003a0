"""Test settings: the development settings kept off the development data, with fast password hashing."""

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and not os.environ.get("SWITCHBOARD_TEST_WORKER_VAR_DIR"):
    # `make test` runs the suite in two pytest-xdist workers: each has its own embedded PostgreSQL and Redis
    # (and so its own database, cache, broker and Celery workers), beside the var dir a single run would use.
    # What a worker starts inherits the variables, and with them the worker's var dir.
    from pathlib import Path

    _base = os.environ.get("SWITCHBOARD_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var"))
    os.environ["SWITCHBOARD_VAR_DIR"] = os.environ["SWITCHBOARD_TEST_WORKER_VAR_DIR"] = f"{_base}-{_worker}"
    if os.environ.get("REDIS_URL") == os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "-"):  # the controller's
        del os.environ["REDIS_URL"]

from platform_site import embedded  # noqa: E402

if "REDIS_URL" not in os.environ:
    # Databases 2 (cache) and 3 (broker) of the embedded Redis; a running `make run` keeps 0 and 1.
    os.environ["REDIS_URL"] = os.environ["SWITCHBOARD_TEST_REDIS_URL"] = embedded.redis_url(db=2)

from platform_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A test-only app with a shareable model (tests/sharing), standing for agents, workflows and memories.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.sharing"]  # noqa: F405
# Login slowing is tested on its own; elsewhere it must not get in the way of many logins.
LOGIN_RATE = SIGNUP_RATE = KEY_CREATION_RATE = "1000/m"

# Tracked test tasks (tests/worker_tasks.py) retry fast; webhooks reach the test receiver on 127.0.0.2 (any
# other loopback address stays refused) and retry within seconds.
TASK_POLICIES = {
    "tests.flaky": {"max_retries": 3, "retry_backoff": 1, "retry_backoff_max": 1},
    "tests.always_transient": {"max_retries": 2, "retry_backoff": 1, "retry_backoff_max": 1},
    "tests.slow_append": {"soft_time_limit": 60, "time_limit": 90},
}
WEBHOOK_ALLOWED_HOSTS = ["127.0.0.2"]
WEBHOOK_RETRY_SCHEDULE = [0.3, 0.3, 0.3]
WEBHOOK_DISABLE_AFTER_FAILURES = 6
WEBHOOK_TIMEOUT_SECONDS = 3
CELERY_TASK_ROUTES = {
    **CELERY_TASK_ROUTES,  # noqa: F405
    "tests.slow_append_killable": {"queue": "kill-test"},
    "tests.overrun": {"queue": "kill-test"},
}
# Quotas are tested with their own policies; the default per-user rate must not get in other tests' way.
QUOTA_DEFAULTS = {"requests_per_minute": 10_000}
# Runs are written by the request itself, so a test reads them at once; tests/agents/test_recording.py
# and the servers of tests/agents/test_in_flight.py use the stream and its recorder.
RUN_RECORDING = os.environ.get("RUN_RECORDING", "direct")
# Workflow steps whose worker is killed are queued again within seconds, not half a minute.
WORKFLOW_STEP_LEASE_SECONDS = 3
WORKFLOW_QUEUE_LEASE_SECONDS = 20
# Mail sent by worker processes (approval requests) lands in files a test can read; the test process itself
# keeps Django's in-memory outbox.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = str(embedded.VAR_DIR / "test-mail")
# Processes started by the tests do not import the provider SDKs as they start (agents.providers.load_sdks):
# most of them call the echo provider or none, and the others import the SDK they call with their first call.
PROVIDER_SDKS_AT_START = False
# No process runs alert rounds of its own during the tests (a round while a test database is flushed would
# deadlock the flush); tests/monitoring runs its rounds itself.
ALERT_WATCHDOG_SECONDS = env.int("ALERT_WATCHDOG_SECONDS", default=0)  # noqa: F405
# Commits of the test database do not wait for the disk (a crash could lose the last few; the tests never
# crash this server): a tenth of the time per commit, for the tests and every process they start.
DATABASES["default"]["OPTIONS"]["options"] = " ".join(  # noqa: F405
    filter(None, [DATABASES["default"]["OPTIONS"].get("options"), "-c synchronous_commit=off"])  # noqa: F405
)
