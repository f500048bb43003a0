"""Tasks that exist only for the tests; the test worker imports this module with `-I tests.worker_tasks`."""

import logging

from celery import shared_task

from platform_site.correlation import current_request_id

logger = logging.getLogger(__name__)


@shared_task(name="tests.report_request_id")
def report_request_id_task():
    logger.info("reporting the request id")
    return current_request_id()
