"""The run recorder: writes the runs requests append to the Redis stream to PostgreSQL, in batches."""

import logging
import os
import signal
import socket
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from agents import recording
from core import redis_connections

logger = logging.getLogger("switchboard.recording")


class Command(BaseCommand):
    help = (
        "Write recorded runs and their usage from the Redis stream to PostgreSQL, in batches, until stopped "
        "(a process of its own, like the worker). --once writes what is there, pending entries included, and stops."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true")
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args, once, batch, **options):
        consumer = f"{socket.gethostname()}-{os.getpid()}"
        # Its own client: its reads block for a second, longer than the platform's socket timeout.
        client = redis_connections.sync_client(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        logger.info("recording runs as %s", consumer)
        while not stopping:
            try:
                recording.ensure_group(client)
                written = recording.record_batch(
                    client, consumer=consumer, count=batch, claim_idle_ms=0 if once else 30_000
                )
            except Exception as error:  # Redis or the database away: the batch stays pending, try again
                if once:
                    raise
                logger.warning("recording paused: %s", error, extra={"metric": "run_recorder_error"})
                time.sleep(1)
                continue
            if written:
                logger.info("wrote %s runs", written, extra={"metric": "runs_recorded", "count": written})
            elif once:
                return
