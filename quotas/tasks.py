from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from quotas.services import ledger
from quotas.services.admission import quota_holds_release


@shared_task(name="quotas.roll_up_usage")
def roll_up_usage_task() -> int:
    """Beat job: today's and yesterday's roll-ups from the ledger (yesterday catches late runs)."""
    today = timezone.now().date()
    return ledger.usage_roll_up(day=today) + ledger.usage_roll_up(day=today - timedelta(days=1))


@shared_task(name="quotas.reconcile")
def reconcile_task() -> int:
    """Beat job: compare Redis token counters with the ledger and log drift."""
    return len(ledger.usage_reconcile())


@shared_task(name="quotas.release_holds")
def release_holds_task() -> int:
    """Beat job: reservations of requests whose process died before settling are given back."""
    return quota_holds_release()
