"""Async code called from sync code (Celery tasks, sync views, management commands): one event loop per
process, in a thread of its own, runs every such call. Calls from many threads (a threads-pool worker
holding many agent tasks) are all in flight at once on that loop, and they share its clients (Redis,
provider SDKs) instead of opening new ones per call.

    result = run(agent_invoke(user=..., agent=..., messages=[...]))
"""

import asyncio
import os
import threading

_loop: asyncio.AbstractEventLoop | None = None
_pid = 0
_lock = threading.Lock()


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():  # a forked child starts its own
            _loop, _pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="async-runner", daemon=True).start()
        return _loop


def run(coroutine):
    """Run the coroutine on the process's loop and wait for its result (or its exception)."""
    return asyncio.run_coroutine_threadsafe(coroutine, _running_loop()).result()
