"""Rows every request reads (API keys, agents, their shares, quota policies...) kept in each process and
dropped the moment they change anywhere.

    key = local_cache.get("apikey", key_id, load=lambda: ...)        # sync code
    key = await local_cache.aget("apikey", key_id, load=lambda: ...)   # async code: a miss loads in a thread
    local_cache.invalidate("apikey", key_id)                          # when it changes: after commit

A change publishes `name:key` (or `name:*`) on the Redis channel `sb:invalidate`; a listener thread in
each process drops the entries within milliseconds. Entries are served only while that listener is
subscribed: before it is, and while Redis is unreachable, every lookup goes to the database, so a process
never serves a row whose change it may have missed. A load that overlaps a change is not kept, and an
entry is at most LOCAL_CACHE_MAX_AGE_SECONDS old whatever happens.
"""

import asyncio
import logging
import os
import threading
import time

from django.conf import settings
from django.db import transaction

from core.async_db import database_sync_to_async

logger = logging.getLogger("switchboard.cache")

CHANNEL = "sb:invalidate"
ALL = "*"


class LocalCache:
    def __init__(self):
        self.entries: dict[tuple[str, str], tuple[object, float]] = {}
        self.generation = 0  # moves on every change heard and every (re)subscription
        self.listening = False
        self.lock = threading.Lock()
        self.pid = 0
        self.loading: dict[tuple, asyncio.Future] = {}  # loads under way, per event loop

    # --- reading ---------------------------------------------------------------------------------------

    def lookup(self, name: str, key) -> tuple[bool, object]:
        self._ensure_listener()
        found = self.entries.get((name, str(key)))
        if found is None or not self.listening or time.monotonic() - found[1] > settings.LOCAL_CACHE_MAX_AGE_SECONDS:
            return False, None
        return True, found[0]

    def keep(self, name: str, key, value, generation: int) -> None:
        with self.lock:
            if self.listening and generation == self.generation:
                if len(self.entries) >= settings.LOCAL_CACHE_MAX_ENTRIES:
                    self.entries.clear()
                self.entries[(name, str(key))] = (value, time.monotonic())

    def get(self, name: str, key, load):
        found, value = self.lookup(name, key)
        if found:
            return value
        generation = self.generation
        value = load()
        self.keep(name, key, value, generation)
        return value

    async def aget(self, name: str, key, load):
        """Requests that miss the same entry at once share one load (a thousand arriving together ask the
        database once)."""
        found, value = self.lookup(name, key)
        if found:
            return value
        loading = (asyncio.get_running_loop(), name, str(key))
        shared = self.loading.get(loading)
        if shared is None:
            shared = self.loading[loading] = asyncio.ensure_future(self._aload(name, key, load))
            shared.add_done_callback(lambda _: self.loading.pop(loading, None))
        return await asyncio.shield(shared)  # one caller going away does not cancel the others' load

    async def _aload(self, name: str, key, load):
        generation = self.generation
        value = await database_sync_to_async(load)()
        self.keep(name, key, value, generation)
        return value

    # --- changes -----------------------------------------------------------------------------------------

    def drop(self, name: str, key) -> None:
        with self.lock:
            self.generation += 1
            if key == ALL:
                for entry in [entry for entry in self.entries if entry[0] == name]:
                    del self.entries[entry]
            else:
                self.entries.pop((name, str(key)), None)

    def clear(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries.clear()

    # --- the listener ------------------------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid, self.listening = os.getpid(), False  # a forked child listens for itself
            self.entries.clear()
            threading.Thread(target=self._listen, name="local-cache-listener", daemon=True).start()

    def _listen(self) -> None:
        from core import redis_connections

        while True:
            try:
                connection = redis_connections.sync_client(
                    settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5
                )
                pubsub = connection.pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(CHANNEL)
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.clear()  # whatever changed while not listening is gone
                        self.listening = True
                    elif message["type"] == "message":
                        name, _, key = message["data"].decode().partition(":")
                        self.drop(name, key)
            except Exception as error:  # Redis unreachable: serve nothing from the cache, try again
                if self.listening:
                    logger.warning("local cache listener lost Redis (%s); lookups go to the database", error)
                self.listening = False
                time.sleep(1)


_cache = LocalCache()
get, aget, lookup = _cache.get, _cache.aget, _cache.lookup


def invalidate(name: str, key=ALL) -> None:
    """This process drops the entry now; every process drops it again once the transaction commits (a
    reader that loaded the old row in between does not keep it)."""
    _cache.drop(name, str(key))
    transaction.on_commit(lambda: _publish(f"{name}:{key}"))


def clear() -> None:
    """Drop everything this process holds (tests start from nothing)."""
    _cache.clear()


def _publish(message: str) -> None:
    from django_redis import get_redis_connection

    _cache.drop(*message.split(":", 1))  # this process at once, whatever Redis says
    try:
        get_redis_connection("default").publish(CHANNEL, message)
    except Exception as error:  # the listeners are cut off too, and serve nothing from their caches
        logger.error("could not publish the change %s: %s", message, error)
