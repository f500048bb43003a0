"""Redis for async code: one redis.asyncio client per event loop (a connection belongs to the loop that
opened it), with the platform's socket timeouts and fail-fast policy (core.redis_outage). REDIS_URL is read
as django-redis reads it. Its pool holds REDIS_MAX_CONNECTIONS; past that a command waits for a free
connection (up to REDIS_POOL_WAIT_SECONDS) rather than failing: a thousand calls in flight share them.

Connecting, reading and waiting for a free connection time out only for Redis's own delay. An asyncio
timeout counts the time the event loop spends on other requests too: with a thousand calls arriving at once
on one core, the loop can take longer than REDIS_SOCKET_TIMEOUT to come back to an answer that arrived at
once, and Redis, blamed for it, would be declared down for every request. So a deadline that finds the loop
behind, or the answer waiting unread, gives Redis another window (at most PATIENCE_WINDOWS in all).
"""

import asyncio
import math
import select
import weakref

import redis.asyncio
import redis.asyncio.sentinel
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import redis_connections
from core.redis_outage import AsyncFailFast

PATIENCE_WINDOWS = 10
LOOP_BEHIND_SECONDS = 0.05  # a timer this late means the loop was busy with other work

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = weakref.WeakKeyDictionary()


class _PatientTimeout(asyncio.Timeout):
    """asyncio.timeout that expires only when the loop was free to notice the answer and none came: a late
    deadline, or an answer already there, opens another window; an on-time one looks once more after the
    callbacks already queued (an answer that arrived with the deadline) before it cancels."""

    def __init__(self, seconds: float, arrived=lambda: False):
        self.seconds, self.arrived, self.windows, self.last_look = seconds, arrived, 1, False
        super().__init__(asyncio.get_running_loop().time() + seconds)

    def _on_timeout(self) -> None:
        now = asyncio.get_running_loop().time()
        behind = now - self.when() > LOOP_BEHIND_SECONDS
        if (behind or self.arrived()) and self.windows < PATIENCE_WINDOWS:
            self.windows += 1
            self.reschedule(now + self.seconds)
        elif not self.last_look:
            self.last_look = True
            self.reschedule(now)  # runs after what is queued already
        else:
            super()._on_timeout()


class _Patient:
    """Mixed into redis-py's connection classes (TCP, TLS, Unix socket)."""

    def answer_arrived(self) -> bool:
        """Bytes from Redis are buffered, or waiting on the socket, not yet read."""
        if self._reader is None or self._writer is None:
            return False
        if len(self._reader._buffer):  # as redis-py itself looks at it
            return True
        sock = self._writer.transport.get_extra_info("socket")
        if sock is None:
            return False
        readable = select.poll()  # not select(): descriptors past 1024 with many connections open
        readable.register(sock.fileno(), select.POLLIN)
        return bool(readable.poll(0))

    async def _connect(self):
        seconds, self.socket_connect_timeout = self.socket_connect_timeout, None
        try:
            async with _PatientTimeout(seconds):
                await super()._connect()
        finally:
            self.socket_connect_timeout = seconds

    async def read_response(self, disable_decoding: bool = False, timeout: float | None = None, **kwargs):
        if timeout is not None or not self.socket_timeout:  # a caller's own timeout (pub/sub reads)
            return await super().read_response(disable_decoding, timeout, **kwargs)
        try:
            async with _PatientTimeout(self.socket_timeout, self.answer_arrived):
                return await super().read_response(disable_decoding, math.inf, **kwargs)
        except TimeoutError:  # asyncio's; the connection was closed on the way out
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None


class _PatientPool:
    """Mixed into the bounded pools: waiting for a free connection times out only for Redis's own delay too.
    Its connections are held by commands whose answers a busy loop has not read yet; when the loop comes
    back, the deadline runs before those answers are read and would fail a command Redis was keeping up
    with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wait_seconds, self.timeout = self.timeout, None  # the pool's own asyncio timeout: none

    async def get_connection(self, *args, **kwargs):
        if self.can_get_connection() and not self._condition.locked():  # one is free: no wait, no timer
            return await super().get_connection(*args, **kwargs)
        try:
            async with _PatientTimeout(self.wait_seconds):
                return await super().get_connection(*args, **kwargs)
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None


_PATIENT_POOL = {
    base: type(f"Patient{base.__name__}", (_PatientPool, base), {})
    for base in (redis.asyncio.BlockingConnectionPool, redis_connections.BlockingSentinelConnectionPool)
}

_PATIENT = {
    base: type(f"Patient{base.__name__}", (_Patient, base), {})
    for base in (
        redis.asyncio.Connection,
        redis.asyncio.SSLConnection,
        redis.asyncio.UnixDomainSocketConnection,
        redis.asyncio.sentinel.SentinelManagedConnection,  # REDIS_URL names a Sentinel service
    )
}


def client() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        pool = redis_connections.async_pool(
            settings.REDIS_URL,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            timeout=settings.REDIS_POOL_WAIT_SECONDS,
            connection_class=_PATIENT.__getitem__,  # the URL chose TCP, TLS, a Unix socket or Sentinel
            pool_class=_PATIENT_POOL.__getitem__,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
            retry=AsyncFailFast(),
        )
        found = redis.asyncio.Redis(connection_pool=pool)
        _clients[loop] = found
    return found
