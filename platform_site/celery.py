"""The Celery app. Broker and results come from Django settings (CELERY_*), logs use Django's LOGGING."""

import gc
import logging.config
import os
import time

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    setup_logging,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
)

from tasks.broker import PUBLISHED_AT

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_site.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**_):
    """Workers and beat log the same JSON lines as the web process, request id included."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_init.connect
def _trace_pool_process(**_):
    """Tracing in each process of a prefork pool (its exporter's thread would not survive the fork)."""
    from core import tracing

    tracing.configure("worker")


@worker_init.connect
def _trace_worker(sender, **_):
    """Tracing in a worker whose pool runs in its own process (threads: the agents worker)."""
    if sender.pool_cls.__module__.split(".")[-1] != "prefork":
        from core import tracing

        tracing.configure("worker")


@beat_init.connect
def _trace_beat(**_):
    from core import tracing

    tracing.configure("beat")


@worker_ready.connect
def _load_provider_sdks(sender, **_):
    """A worker that takes agent calls imports the SDKs as it starts, not in its first calls, and keeps what
    it has loaded out of the garbage collector's full passes (as platform_site.asgi does)."""
    if "agents" in sender.app.amqp.queues.consume_from:
        from agents.providers import load_sdks

        load_sdks()
        gc.collect()
        gc.freeze()


@worker_ready.connect
def _watch_alert_rounds(**_):
    """Alert rounds go on with beat down (monitoring/watchdog.py)."""
    from monitoring import watchdog

    watchdog.start()


@task_prerun.connect
def _usable_database_connection(**_):
    """With connections reused across tasks (CELERY_DB_REUSE_MAX), one broken or older than CONN_MAX_AGE is
    closed before the next task, as Django does around a request."""
    from django.db import close_old_connections

    close_old_connections()


@before_task_publish.connect
def _stamp_publish_time(headers=None, **_):
    """Every task message sent (by web, workers or beat, retries included) carries the time it was sent."""
    if headers is not None:
        headers[PUBLISHED_AT] = time.time()
