"""Sending messages to the broker without failing the caller when the broker is down: the message is
logged as lost and the beat jobs send it again (`tasks.resend_queued`, `webhooks.dispatch_due`)."""

import logging

from django.db import transaction

logger = logging.getLogger("switchboard.tasks")

# A header stamped on every task message as it is sent (Unix seconds; platform_site/celery.py): the age of a
# queue's oldest waiting message is read from it (tasks.selectors.queue_oldest_ages). Celery messages carry no time.
PUBLISHED_AT = "published_at"


def send_quietly(task, **options) -> None:
    """Send a message now; with the broker down, log it and leave the row for the beat job that resends."""
    try:
        task.apply_async(**options)
    except Exception:
        logger.exception("could not send %s to the broker; it will be resent", task.name)


def send_on_commit(task, **options) -> None:
    """Send the message once the surrounding transaction commits (never for work that was rolled back)."""
    transaction.on_commit(lambda: send_quietly(task, **options))
