"""`GET /metrics`: the platform's Prometheus metrics, added up over every process on the host.

Every process writes its samples to files of its own in PROMETHEUS_MULTIPROC_DIR (core/metrics_dir.py;
definitions in core/metrics.py); this view adds them up (prometheus_client's MultiProcessCollector) and
reads, at scrape time, what lives outside any process: each provider's circuit breaker, the run recorder's
backlog and the Celery queues' depths (`PlatformCollector`).

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
from tasks.selectors import queue_depths

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


def queues() -> list[str]:
    """The queues workers consume: the default one and every routed one (celery, webhooks, agents)."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route}
    return sorted({getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery"), *routed})


class PlatformCollector:
    """Gauges read when /metrics is scraped: one Redis round trip for the breakers, one for the backlog, one
    broker connection for the queues. What cannot be read is left out (and logged), never made up."""

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
        depths = queue_depths(queues())
        if not depths:
            logger.warning("queue depths unreadable: the broker did not answer")
        for queue, value in depths.items():
            depth.add_metric([queue], value)
        yield depth


@never_cache
@require_GET
def metrics(request):
    if not allowed(request):
        return HttpResponseForbidden("Forbidden.\n", content_type="text/plain")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(PlatformCollector())
    # The classic text format (every metric name here is a legacy one, so the text is the same), which every
    # Prometheus version reads.
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
