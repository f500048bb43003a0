import logging

from celery import shared_task

from platform_site import health

logger = logging.getLogger(__name__)


@shared_task(name="platform.heartbeat")
def heartbeat_task():
    """Run by beat on a schedule: its timestamp in Redis proves beat and a worker are alive (see /readyz)."""
    health.record_heartbeat()
    logger.info("heartbeat")
