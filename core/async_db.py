"""Database work from async code, in a few threads that keep their connections.

Under the ASGI server Django runs each request's `sync_to_async` work in a thread of that request's, with a
connection of its own: a thousand calls in flight would open a thousand PostgreSQL connections, far past
`max_connections`. `database_sync_to_async` runs it instead in ASYNC_DB_THREADS threads of the process,
each keeping its connection between calls (closed when broken or older than CONN_MAX_AGE, as Django does
around a request), so a process holds at most that many. Called from sync code (a sync view, a test, a
task through `async_to_sync`), it runs in the caller's thread, in its connection and transaction, as
`sync_to_async` does.
"""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import close_old_connections

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _database_threads() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(settings.ASYNC_DB_THREADS, thread_name_prefix="database")
        return _executor


def _with_usable_connection(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return call


def database_sync_to_async(function):
    """`function` (which uses the database) as a coroutine function."""

    @functools.wraps(function)
    async def call(*args, **kwargs):
        if getattr(AsyncToSync.executors, "current", None) is not None:  # a sync caller waits on this loop
            return await sync_to_async(function)(*args, **kwargs)
        threaded = sync_to_async(
            _with_usable_connection(function), thread_sensitive=False, executor=_database_threads()
        )
        return await threaded(*args, **kwargs)

    return call
