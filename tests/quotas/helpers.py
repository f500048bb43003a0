"""Helpers the quota tests share: admitting a request, reading a Redis counter, running threads."""

import threading
from decimal import Decimal

from django_redis import get_redis_connection

from quotas.limiter import user_tag, window
from quotas.services.admission import quota_admit


def admit(user, tokens=0, cost="0", **extra):
    return quota_admit(
        user=user, api_key=None, agent_type="helper", model="fake-gpt", tokens=tokens, cost=Decimal(cost), **extra
    )


def counter(name, user, field, window_name="day"):
    window_id, _, _ = window(window_name)
    value = get_redis_connection("default").get(f"{user_tag(user.pk)}:{name}:u{user.pk}:{field}:{window_id}")
    return int(value or 0)


def run_in_threads(count, target):
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
