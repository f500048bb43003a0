import time

import pytest
from django.core.cache import cache
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tasks import heartbeats
from tests.processes import CeleryProcess


@pytest.mark.django_db(transaction=True)
def test_beat_runs_the_heartbeat_from_the_database_schedule_and_readyz_reports_it(client, celery_worker, tmp_path):
    # Given the heartbeat scheduled every second in the database, and no heartbeat recorded yet
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="platform heartbeat", defaults={"task": "platform.heartbeat", "interval": every_second}
    )
    cache.delete(heartbeats.worker_key("celery"))
    assert client.get("/readyz").json()["workers"]["celery"]["status"] == "missing"

    # When beat runs next to the worker
    beat = CeleryProcess("beat", tmp_path / "beat.log")
    try:
        deadline = time.monotonic() + 30
        while cache.get(heartbeats.worker_key("celery")) is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        beat.stop()

    # Then the worker has recorded a heartbeat and readiness reports it as fresh
    assert "Sending due task platform heartbeat" in beat.log_text()
    heartbeat = client.get("/readyz").json()["workers"]["celery"]
    assert heartbeat["status"] == "ok", beat.log_text()[-2000:]
