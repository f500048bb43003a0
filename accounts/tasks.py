from celery import shared_task

from accounts import services, trail


@shared_task(name="accounts.expire_api_keys")
def expire_api_keys_task() -> int:
    """Beat job: mark keys past their expiry as expired and end finished rotation grace periods."""
    return services.apikeys_expire_due()


@shared_task(name="accounts.verify_security_trail")
def verify_security_trail_task() -> dict:
    """Beat job (daily): verify the security-event chain; a broken one is logged and watched by an alert rule."""
    check = trail.trail_verify()
    return {"ok": check.ok, "events": check.events, "problem": check.problem}
