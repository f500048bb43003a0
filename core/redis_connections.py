"""Where the platform's Redis is: REDIS_URL read, and the clients, the cache and the broker that follow from it.

REDIS_URL is a URL redis-py reads (`redis://`, `rediss://`, `unix://`), or names a Sentinel service:

    redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>[/<db>][?sentinel_password=...]

The user and password are the Redis servers'; sentinels that want a password of their own get
`sentinel_password`. Through Sentinel every command goes to the master the sentinels name, never to a
replica: the limiter and the response cache read what they have just written, which a replica may not
have yet. A connection is pointed at the master when it opens; after a failover the old master's
connections fail (core.redis_outage marks Redis down for a moment) and the next ones ask the sentinels.

The keys every script touches share a hash tag, so the scripts also run on Redis Cluster
(tests/quotas/test_cluster.py); the platform itself does not connect to a cluster (django-redis has no
cluster client).
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelService:
    sentinels: tuple[tuple[str, int], ...]
    name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    def credentials(self) -> dict:
        """The Redis servers' user and password, as redis-py's connection arguments."""
        return {key: value for key, value in (("username", self.username), ("password", self.password)) if value}

    def sentinel_kwargs(self, socket_timeout: float, retry) -> dict:
        """How the sentinels themselves are asked: bounded, never retried (the next sentinel is asked instead)."""
        kwargs = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout, "retry": retry}
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs


def sentinel_service(url: str) -> SentinelService | None:
    """The Sentinel service a REDIS_URL names, or None for a plain Redis URL."""
    parts = urlsplit(url)
    if parts.scheme == "rediss+sentinel":
        raise ImproperlyConfigured("REDIS_URL: TLS to a Sentinel service's master (rediss+sentinel) is not supported")
    if parts.scheme != SENTINEL_SCHEME:
        return None
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ImproperlyConfigured(
            f"REDIS_URL: a Sentinel service is named as {SENTINEL_SCHEME}://host:port[,host:port...]/<service>[/<db>]"
        )
    return SentinelService(
        sentinels=tuple(_address(host) for host in hosts.split(",")),
        name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=parse_qs(parts.query).get("sentinel_password", [None])[0],
    )


def _address(text: str) -> tuple[str, int]:
    """`host:port`, `host` or `[v6 address]:port`."""
    host, port = text, str(SENTINEL_PORT)
    if ":" in text and not text.endswith("]"):
        host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL: {text!r} is not a sentinel's host:port")
    return host.strip("[]"), int(port)


# --- django-redis --------------------------------------------------------------------------------------


def django_cache(url: str, *, socket_timeout: float, retry) -> dict:
    """CACHES["default"] for django-redis (without KEY_PREFIX). `retry` is the connections' retry policy."""
    options = {
        "SOCKET_CONNECT_TIMEOUT": socket_timeout,
        "SOCKET_TIMEOUT": socket_timeout,
        "CONNECTION_POOL_KWARGS": {"retry": retry},
    }
    service = sentinel_service(url)
    if service is None:
        return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "OPTIONS": options}
    options |= {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": list(service.sentinels),
        "SENTINEL_KWARGS": service.sentinel_kwargs(socket_timeout, Retry(NoBackoff(), 0)),
        **{key.upper(): value for key, value in service.credentials().items()},
    }
    # A list of one server: SentinelClient sends reads to replicas when given a single string.
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": [f"redis://{service.name}/{service.db}"],
        "OPTIONS": options,
    }


# --- redis-py clients ----------------------------------------------------------------------------------


def sync_client(url: str, **options) -> redis.Redis:
    """A client of its own (the recorder's and the local cache listener's longer timeouts are `options`)."""
    service = sentinel_service(url)
    if service is None:
        return redis.Redis.from_url(url, **options)
    timeout = options.get("socket_connect_timeout") or 5  # asking the sentinels is part of connecting
    sentinel = redis.sentinel.Sentinel(
        service.sentinels, sentinel_kwargs=service.sentinel_kwargs(timeout, Retry(NoBackoff(), 0))
    )
    return sentinel.master_for(service.name, db=service.db, **service.credentials(), **options)


class BlockingSentinelConnectionPool(
    redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
):
    """The master's connections, at most `max_connections`; past that a command waits for a free one (as the
    platform's pool does for a plain URL) instead of failing."""


def async_pool(
    url: str,
    *,
    max_connections: int,
    timeout: float,
    connection_class: Callable[[type], type] = lambda base: base,
    pool_class: Callable[[type], type] = lambda base: base,
    **options,
) -> redis.asyncio.BlockingConnectionPool:
    """A bounded pool that waits `timeout` for a free connection. `connection_class` maps the class redis-py
    chose (TCP, TLS, Unix socket, Sentinel-managed) to the one to use; it applies to the sentinels' own
    connections too. `pool_class` does the same for the pool. `options` are the connections' (timeouts,
    retry)."""
    service = sentinel_service(url)
    if service is None:
        pool = pool_class(redis.asyncio.BlockingConnectionPool).from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
    else:
        sentinel = redis.asyncio.sentinel.Sentinel(
            service.sentinels,
            sentinel_kwargs=service.sentinel_kwargs(
                options.get("socket_connect_timeout") or 5, AsyncRetry(NoBackoff(), 0)
            ),
        )
        for asker in sentinel.sentinels:
            asker.connection_pool.connection_class = connection_class(asker.connection_pool.connection_class)
        pool = pool_class(BlockingSentinelConnectionPool)(
            service.name,
            sentinel,
            db=service.db,
            max_connections=max_connections,
            timeout=timeout,
            **service.credentials(),
            **options,
        )
    pool.connection_class = connection_class(pool.connection_class)
    return pool


# --- Celery's broker -----------------------------------------------------------------------------------


def celery_broker_url(url: str) -> str:
    """The broker on the same Redis as `url`, in the next database, spelt as kombu wants it: redis+socket://
    for a Unix socket, one sentinel:// per sentinel (joined by ';') for a Sentinel service."""
    service = sentinel_service(url)
    if service is not None:
        auth = (
            f"{quote(service.username or '', safe='')}:{quote(service.password, safe='')}@" if service.password else ""
        )
        return ";".join(f"sentinel://{auth}{_netloc(host, port)}/{service.db + 1}" for host, port in service.sentinels)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        db = int(parse_qs(parts.query).get("db", ["0"])[0]) + 1
        return f"redis+socket://{parts.path}?virtual_host={db}"
    return urlunsplit(parts._replace(path=f"/{int(parts.path.strip('/') or 0) + 1}"))


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def celery_transport_options(broker_url: str, redis_url: str) -> dict:
    """What a Sentinel broker needs besides its URL: the service (the same as REDIS_URL's) and the sentinels'
    password. Nothing for any other broker."""
    service = sentinel_service(redis_url)
    if service is None or urlsplit(broker_url).scheme != "sentinel":
        return {}
    options = {"master_name": service.name}
    if service.sentinel_password:
        options["sentinel_kwargs"] = {"password": service.sentinel_password}
    return options
