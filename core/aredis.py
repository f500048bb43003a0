"""Redis for async code: one redis.asyncio client per event loop (a connection belongs to the loop that
opened it), with the platform's socket timeouts and fail-fast policy (core.redis_outage). REDIS_URL is read
as django-redis reads it."""

import asyncio
import weakref

import redis.asyncio
from django.conf import settings

from core.redis_outage import AsyncFailFast

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = weakref.WeakKeyDictionary()


def client() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
            retry=AsyncFailFast(),
        )
        _clients[loop] = found
    return found
