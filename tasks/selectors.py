"""Reads of tasks and webhooks, scoped to their owner; another user's object is a 404."""

import json
import time

from celery import current_app
from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import Http404
from kombu.exceptions import ChannelError

from tasks.broker import PUBLISHED_AT
from tasks.models import TaskRecord, WebhookDelivery, WebhookEndpoint


def task_list(*, user) -> QuerySet[TaskRecord]:
    """The user's tasks, without their input (an import's holds up to 20 MB of lines; no list or status shows it)."""
    return TaskRecord.objects.filter(owner=user).defer("input")


def task_get(*, user, pk) -> TaskRecord:
    record = task_list(user=user).filter(pk=pk).first()
    if record is None:
        raise Http404("No such task.")
    return record


def webhook_endpoint_list(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=user)


def webhook_endpoint_get(*, user, pk) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list(user=user).filter(pk=pk).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def webhook_endpoints_disabled(*, user) -> QuerySet[WebhookEndpoint]:
    """What to tell the owner about in the browser: endpoints the platform turned off."""
    return (
        webhook_endpoint_list(user=user)
        .filter(is_active=False, disabled_at__isnull=False)
        .exclude(disabled_reason="Disabled by you.")
    )


def delivery_list(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return endpoint.deliveries.prefetch_related("attempt_log")


def task_counts() -> dict[str, int]:
    """Tasks per status, for operators."""
    counts = dict(TaskRecord.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in TaskRecord.Status.values}


def queue_depths(queues) -> dict[str, int]:
    """Messages waiting in each broker queue, through one connection; empty when the broker cannot be asked."""
    depths = {}
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            for queue in queues:
                with connection.channel() as channel:  # a channel each: AMQP closes one on a missing queue
                    try:
                        depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                    except ChannelError:  # no such queue yet (Redis drops an empty one): nothing waits
                        depths[queue] = 0
    except Exception:  # the broker is down: the caller shows nothing rather than fail
        return {}
    return depths


def queue_depth(queue: str = "celery") -> int | None:
    """Messages waiting in the broker queue; None when the broker cannot be asked."""
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            try:
                return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:  # no such queue yet (Redis drops an empty one): nothing waits
                return 0
    except Exception:  # the admin page must render even with the broker down
        return None


def worker_queues() -> list[str]:
    """The queues workers consume: the default one and every routed one (celery, webhooks, agents)."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route}
    return sorted({getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery"), *routed})


# Messages looked at from the head of each queue (and of each priority sub-queue) for the oldest stamped one.
OLDEST_LOOKED_AT = 10


def queue_oldest_ages(names: list[str]) -> dict[str, float]:
    """Seconds the oldest message waiting in each queue has waited, from the time stamped on it when it was
    sent (tasks.broker.PUBLISHED_AT); 0 for an empty or missing queue. Read without taking anything: kombu's
    Redis transport LPUSHes and BRPOPs, so a list's oldest messages are at its end, one list per priority
    step. Messages sent without the stamp (before it existed) are skipped. Empty when the broker cannot be
    read, or is not Redis (AMQP cannot show a message without taking it)."""
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.default_channel
            if not hasattr(channel, "_q_for_pri"):
                return {}
            lists = [(name, channel._q_for_pri(name, step)) for name in names for step in channel.priority_steps]
            with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
                for _, key in lists:
                    pipe.lrange(key, -OLDEST_LOOKED_AT, -1)
                heads = pipe.execute()
    except Exception:  # the broker is down: the caller leaves the gauge out
        return {}
    now = time.time()
    ages = dict.fromkeys(names, 0.0)
    for (name, _), messages in zip(lists, heads, strict=True):
        for raw in messages:
            try:
                sent = float(json.loads(raw)["headers"][PUBLISHED_AT])
            except (ValueError, KeyError, TypeError):
                continue
            ages[name] = max(ages[name], now - sent)
    return ages
