"""`GET /metrics`: the platform's Prometheus metrics, added up over every process on the host.

Every process writes its samples to files of its own in PROMETHEUS_MULTIPROC_DIR (core/metrics_dir.py;
definitions in core/metrics.py); this view adds them up (prometheus_client's MultiProcessCollector) and
reads, at scrape time, what lives outside any process: each provider's circuit breaker, the run recorder's
backlog, and the Celery queues' depths and the age of each one's oldest message (`PlatformCollector`); and
the budgets users and keys have spent (monitoring.metrics.BudgetCollector).

Readable with `Authorization: Bearer <METRICS_TOKEN>`, or from an address in METRICS_ALLOWED_NETWORKS
(loopback in development, none in production unless set); anyone else gets a 403 and none of the data. Not
part of the API (nor of its schema).
"""

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from accounts.security import client_ip
from agents import breaker, recording
from agents.models import Provider
from core.metrics import PROVIDER, SCRAPED
from monitoring.metrics import BudgetCollector
from tasks.selectors import queue_depths, queue_oldest_ages, worker_queues

logger = logging.getLogger("switchboard.metrics")


def allowed(request) -> bool:
    """The bearer token (compared in constant time), or a client address in the allowed networks."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    address = client_ip(request)
    if not address or not settings.METRICS_ALLOWED_NETWORKS:
        return False
    try:
        address = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


class PlatformCollector:
    """Gauges read when /metrics is scraped: one Redis round trip for the breakers, one for the backlog, a
    broker connection for the queues' depths and one more for their oldest messages (not tried when the first
    failed). What cannot be read is left out (and logged), never made up."""

    def collect(self):
        names = list(Provider.objects.order_by("name").values_list("name", flat=True))
        state = GaugeMetricFamily("switchboard_breaker_state", SCRAPED["switchboard_breaker_state"], labels=[PROVIDER])
        for name, value in breaker.states(names).items():
            state.add_metric([name], value)
        yield state
        backlog = recording.backlog()
        if backlog is not None:
            yield GaugeMetricFamily("switchboard_run_backlog", SCRAPED["switchboard_run_backlog"], value=backlog)
        depth = GaugeMetricFamily("switchboard_queue_depth", SCRAPED["switchboard_queue_depth"], labels=["queue"])
        depths = queue_depths(worker_queues())
        if not depths:
            logger.warning("queue depths unreadable: the broker did not answer")
        for queue, value in depths.items():
            depth.add_metric([queue], value)
        yield depth
        age = GaugeMetricFamily(
            "switchboard_queue_oldest_age_seconds", SCRAPED["switchboard_queue_oldest_age_seconds"], labels=["queue"]
        )
        ages = queue_oldest_ages(worker_queues()) if depths else {}
        for queue, value in ages.items():
            age.add_metric([queue], round(value, 3))
        yield age


@never_cache
@require_GET
def metrics(request):
    if not allowed(request):
        return HttpResponseForbidden("Forbidden.\n", content_type="text/plain")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(PlatformCollector())
    registry.register(BudgetCollector())
    # The classic text format (every metric name here is a legacy one, so the text is the same), which every
    # Prometheus version reads.
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
