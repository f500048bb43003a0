"""Reads of tasks and webhooks, scoped to their owner; another user's object is a 404."""

from celery import current_app
from django.db.models import Count, QuerySet
from django.http import Http404
from kombu.exceptions import ChannelError

from tasks.models import TaskRecord, WebhookDelivery, WebhookEndpoint


def task_list(*, user) -> QuerySet[TaskRecord]:
    return TaskRecord.objects.filter(owner=user)


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
