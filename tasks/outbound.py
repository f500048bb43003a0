"""Outbound HTTP to user- or operator-given URLs (webhooks, model providers) that cannot be turned against our
own network (SSRF).

A destination must resolve only to public addresses: loopback, private, link-local (cloud metadata at
169.254.169.254), shared, reserved, multicast and unspecified addresses are refused, in IPv4 and IPv6,
including IPv4-mapped, 6to4 and Teredo forms. Every spelling of an address (`2130706433`, `0x7f.1`,
`[::ffff:127.0.0.1]`) is resolved by the system resolver first, then checked. The check runs when an
endpoint is registered and again at each send, where the connection is made to the address that passed
the check and the connected peer is checked once more, so a DNS answer that changes in between (DNS
rebinding) gets nowhere. Redirects are never followed. WEBHOOK_ALLOWED_HOSTS lets a development setup reach
named hosts (`host` or `host:port`) anyway.

Providers' base URLs go through the same check (`check_provider_url`) when they are saved and when a client
is made for them; local model servers are a real use, so PROVIDER_ALLOWED_HOSTS names hosts that may be
private and PROVIDER_ALLOW_PRIVATE_NETWORKS (on in development) allows any.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

RESPONSE_EXCERPT_BYTES = 1024


class UnsafeDestination(Exception):
    """The URL may not be called; the message says why, in words fit for the user."""


@dataclass
class Response:
    status: int
    latency_ms: float
    body_excerpt: str


GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # Only global unicast: this also refuses NAT64 (64:ff9b::/96), IPv4-compatible and -translated forms
        # and site-local fec0::/10, which can all lead back to private IPv4 networks.
        if ip.ipv4_mapped is not None:
            return is_public_address(str(ip.ipv4_mapped))
        if ip not in GLOBAL_UNICAST_V6:
            return False
        for embedded in (ip.sixtofour, ip.teredo and ip.teredo[1]):
            if embedded is not None and not is_public_address(str(embedded)):
                return False
    return ip.is_global and not ip.is_multicast


def _allow_listed(host: str, port: int, allowed=None) -> bool:
    allowed = settings.WEBHOOK_ALLOWED_HOSTS if allowed is None else allowed
    return host in allowed or f"{host}:{port}" in allowed


def _parse(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("Only http and https URLs can receive webhooks.")
    if parts.scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS:
        raise UnsafeDestination("Webhook URLs must use https.")
    if parts.username or parts.password:
        raise UnsafeDestination("Webhook URLs cannot carry a user name or password.")
    if not parts.hostname:
        raise UnsafeDestination("The URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeDestination("The URL's port is not valid.") from error
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def resolve_checked(host: str, port: int, allowed=None) -> list[str]:
    """The addresses of `host`, all of them public (or the host allow-listed); else UnsafeDestination."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeDestination(f"The host {host!r} does not resolve.") from error
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not _allow_listed(host, port, allowed):
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeDestination(f"The host {host!r} resolves to a non-public address ({address}).")
    return addresses


def check_url(url: str) -> None:
    """Raise UnsafeDestination unless `url` may receive webhooks now."""
    _, host, port, _ = _parse(url)
    resolve_checked(host, port)


def check_provider_url(url: str) -> None:
    """Raise UnsafeDestination unless a model provider may be called at `url` (see the module's docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("A provider's base URL is an http or https URL with a host.")
    if parts.username or parts.password:
        raise UnsafeDestination("Give the provider's key as its credential, not in the URL.")
    if settings.PROVIDER_ALLOW_PRIVATE_NETWORKS:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeDestination("The URL's port is not valid.") from error
    resolve_checked(parts.hostname, port, allowed=settings.PROVIDER_ALLOWED_HOSTS)


def _check_peer(sock: socket.socket, host: str, port: int) -> None:
    peer = sock.getpeername()[0]
    if not _allow_listed(host, port) and not is_public_address(peer):
        sock.close()
        raise UnsafeDestination(f"Connected to a non-public address ({peer}); refused.")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that passed the check, not to whatever the name resolves to now."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        _check_peer(self.sock, self.host, self.port)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        _check_peer(sock, self.host, self.port)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST `body`; the response is returned whatever its status (3xx included: never followed).

    Raises UnsafeDestination for a refused destination and OSError / http.client errors for network failures.
    """
    scheme, host, port, path = _parse(url)
    address = resolve_checked(host, port)[0]
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    started = time.perf_counter()
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", errors="replace")
        return Response(response.status, round((time.perf_counter() - started) * 1000, 2), excerpt)
    finally:
        connection.close()
