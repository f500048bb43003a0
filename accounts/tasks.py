from celery import shared_task

from accounts import services


@shared_task(name="accounts.expire_api_keys")
def expire_api_keys_task() -> int:
    """Beat job: mark keys past their expiry as expired and end finished rotation grace periods."""
    return services.apikeys_expire_due()
