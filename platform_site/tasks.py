import logging

from celery import shared_task

from tasks import heartbeats

logger = logging.getLogger(__name__)


@shared_task(name="platform.heartbeat", bind=True, ignore_result=True)
def heartbeat_task(self):
    """Sent by beat to each queue (a beat job per queue): the worker that takes it records, for the queue it
    came from, that a worker consumes it (see /readyz)."""
    queue_name = (self.request.delivery_info or {}).get("routing_key") or self.app.conf.task_default_queue
    heartbeats.record_worker_heartbeat(queue_name=queue_name, hostname=self.request.hostname or "")
    logger.info("heartbeat", extra={"queue": queue_name})
