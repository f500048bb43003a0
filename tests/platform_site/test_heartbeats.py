"""Heartbeats from real processes: beat sends one to every queue and records its own on its ticks; the worker
that takes a queue's heartbeat records it, so /readyz tells a queue nobody takes from a silent beat."""

import socket

import pytest
from django.core.cache import cache
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from kombu import Connection

from platform_site import health
from tasks import heartbeats
from tests.platform_site.test_health import wait_until
from tests.processes import CeleryProcess, own_broker

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ("celery", "webhooks", "agents")


@pytest.fixture
def broker():
    """A broker database of the test's own: the session's workers take nothing sent here."""
    url = own_broker(12)
    yield url
    with Connection(url) as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)  # heartbeats nobody took


def heartbeats_every_second() -> None:
    """Only the heartbeat jobs, one per queue, every second (as the migrations register them, but faster)."""
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.exclude(task="platform.heartbeat").update(enabled=False)
    for queue in QUEUES:
        PeriodicTask.objects.update_or_create(
            name="platform heartbeat" if queue == "celery" else f"platform heartbeat: {queue}",
            defaults={"task": "platform.heartbeat", "interval": every_second, "queue": queue, "enabled": True},
        )


@pytest.mark.django_db  # (not transactional, as the module's other tests are)
def test_the_migrations_register_a_heartbeat_per_queue_that_expires_when_no_worker_takes_it(migrated_schedule):
    jobs = PeriodicTask.objects.filter(task="platform.heartbeat").order_by("name")

    assert [(job.name, job.queue) for job in jobs] == [
        ("platform heartbeat", "celery"),
        ("platform heartbeat: agents", "agents"),
        ("platform heartbeat: webhooks", "webhooks"),
    ]
    assert {job.expire_seconds for job in jobs} == {30}


def test_a_queue_with_a_worker_is_ok_a_queue_without_one_is_missing_and_a_stopped_beat_goes_stale(
    broker, tmp_path, settings
):
    # Given heartbeats every second (stale after three), a worker on celery and webhooks but none on agents
    settings.HEARTBEAT_INTERVAL_SECONDS = 1
    heartbeats_every_second()
    env = {"CELERY_BROKER_URL": broker, "HEARTBEAT_INTERVAL_SECONDS": "1"}
    worker = CeleryProcess(
        "worker",
        tmp_path / "worker.log",
        "--pool",
        "solo",
        "--queues",
        "celery,webhooks",
        "--hostname",
        "health@%h",
        "--without-mingle",
        "--without-gossip",
        env=env,
    )
    beat = CeleryProcess("beat", tmp_path / "beat.log", env=env)
    try:
        worker.wait_for_log("ready.")

        # When beat runs
        def workers_and_beat_ok():
            ready = health.readiness()
            return {ready["workers"]["celery"]["status"], ready["workers"]["webhooks"]["status"]} == {"ok"} and (
                ready["beat"]["status"] == "ok"
            )

        assert wait_until(workers_and_beat_ok), beat.log_text()[-2000:] + worker.log_text()[-2000:]

        # Then each queue a worker takes is ok, named by the worker that took it; the agents queue has none
        ready = health.readiness()
        host = socket.gethostname()
        assert ready["workers"]["celery"]["hostname"] == f"health@{host}"
        assert ready["workers"]["webhooks"]["hostname"] == f"health@{host}"
        assert ready["workers"]["agents"] == {"status": "missing"}
        assert ready["beat"]["hostname"] == host
        assert "Sending due task platform heartbeat: agents" in beat.log_text()

        # When beat stops, its own heartbeat goes stale: beat silent, told apart from a queue without a worker
        beat.stop()
        cache.delete(heartbeats.worker_key("agents"))
        assert wait_until(lambda: health.readiness()["beat"]["status"] == "stale")
        assert health.readiness()["workers"]["agents"] == {"status": "missing"}
    finally:
        beat.stop()
        worker.stop()
