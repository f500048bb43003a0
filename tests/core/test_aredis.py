"""The platform's async Redis client against the real Redis: a loop busy with other requests is not taken for
Redis being slow (reads, and waits for a free connection), and a Redis that really is slow still fails
within the bounds the settings give."""

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import aredis


@pytest.fixture
def small_pool(settings):
    settings.REDIS_SOCKET_TIMEOUT = 0.5
    settings.REDIS_MAX_CONNECTIONS = 1
    settings.REDIS_POOL_WAIT_SECONDS = 0.3


async def busy_loop_while(*commands, busy_for: float):
    """Send the commands, then keep the loop busy (as a thousand other requests would) past every deadline."""
    client = aredis.client()
    await client.ping()
    sent = [asyncio.ensure_future(command(client)) for command in commands]
    await asyncio.sleep(0.05)
    time.sleep(busy_for)
    try:
        return await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await client.aclose()


def test_an_answer_that_came_while_the_loop_was_busy_is_read_not_timed_out(small_pool):
    # Redis answers the BLPOP after 0.2 s, within the 0.5-s socket timeout; the loop reads it only after 1 s
    [answer] = asyncio.run(busy_loop_while(lambda client: client.blpop(["sb:test:nothing"], 0.2), busy_for=1.0))

    assert answer is None


def test_a_command_waiting_for_the_only_connection_gets_it_once_the_busy_loop_frees_it(small_pool):
    # The one connection is held by a BLPOP Redis answers after 0.2 s; the GET waits for it (0.3 s at most)
    # while the loop is busy for 0.8 s, so both deadlines pass before the loop can read the BLPOP's answer
    held, waited = asyncio.run(
        busy_loop_while(
            lambda client: client.blpop(["sb:test:nothing"], 0.2),
            lambda client: client.get("sb:test:nothing"),
            busy_for=0.8,
        )
    )

    assert (held, waited) == (None, None)


def test_a_redis_that_really_is_slow_fails_within_the_socket_timeout_and_the_pool_wait(small_pool):
    async def scenario():
        client = aredis.client()
        held = asyncio.ensure_future(client.blpop(["sb:test:nothing"], 5))  # Redis holds it 5 s
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await client.get("sb:test:nothing")
        waited = time.monotonic() - started
        with pytest.raises(RedisTimeoutError):
            await held
        await client.aclose()
        return waited, time.monotonic() - started

    waited, held_for = asyncio.run(scenario())

    assert waited < 1 and held_for < 2, "neither waited for Redis's 5 s"
