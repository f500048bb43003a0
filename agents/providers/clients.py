"""The SDK clients: one per event loop and configuration, kept; load_sdks() for processes that serve calls."""

import asyncio
import logging
import os
import weakref
from contextlib import asynccontextmanager

from asgiref.sync import AsyncToSync
from django.conf import settings

from agents.models import Provider
from agents.providers.errors import ProviderError
from core.encryption import decrypt
from tasks.outbound import UnsafeDestination, check_provider_url

logger = logging.getLogger("switchboard.providers")


def load_sdks() -> None:
    """Import both SDKs now: a process that serves calls (web, agents worker) does it as it starts, not in
    its first call, where it would hold up every call on the event loop for seconds. The test settings turn
    it off (PROVIDER_SDKS_AT_START): most processes the tests start call the echo provider or none, and the
    others import the one SDK they call with their first call."""
    if not settings.PROVIDER_SDKS_AT_START:
        return
    import anthropic
    import openai

    # Their resources are imported when first reached, too.
    openai.AsyncOpenAI(api_key="-").chat.completions  # noqa: B018
    anthropic.AsyncAnthropic(api_key="-").messages  # noqa: B018


def _api_key(provider: Provider) -> str:
    if provider.api_key_env:
        return os.environ.get(provider.api_key_env, "")
    if provider.api_key_encrypted:
        return decrypt(provider.api_key_encrypted)
    return ""


# SDK clients are kept per event loop (their connections belong to it) and configuration: making one loads
# the TLS trust store (tens of ms) and a kept client reuses its connections.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def sdk_client(provider: Provider):
    """The provider's SDK client: the one kept for this event loop and configuration; for a call from sync
    code (through async_to_sync, whose event loop lasts one call) one of its own, closed after the call."""
    api_key = _api_key(provider) or "not-needed"
    if getattr(AsyncToSync.executors, "current", None) is not None:
        client = _new_client(provider, api_key)
        try:
            yield client
        finally:
            await client.close()
        return
    config = (provider.kind, provider.pk, provider.base_url, api_key, provider.timeout_seconds, provider.max_retries)
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    if config not in clients:
        clients[config] = _new_client(provider, api_key)
    yield clients[config]


def _new_client(provider: Provider, api_key: str):
    import httpx2

    if provider.base_url:  # checked when saved, and again here: the setting or the DNS may have changed
        try:
            check_provider_url(provider.base_url)
        except UnsafeDestination as error:
            logger.error("provider %s: %s", provider.name, error, extra={"provider": provider.name})
            raise ProviderError(
                f"The model provider {provider.name!r} is at an address the platform may not call.",
                provider_fault=False,
            ) from error
    if provider.kind == Provider.Kind.ANTHROPIC:
        import anthropic as sdk

        client_class = sdk.AsyncAnthropic
    else:
        import openai as sdk

        client_class = sdk.AsyncOpenAI
    return client_class(
        api_key=api_key,
        base_url=provider.base_url or None,
        timeout=provider.timeout_seconds,
        max_retries=provider.max_retries,
        # aiohttp under the SDK (its documented option): with a thousand calls in flight httpx's pool cost
        # three times as much per call, in proportion to the connections open.
        http_client=sdk.DefaultAioHttpClient(
            timeout=provider.timeout_seconds,
            limits=httpx2.Limits(
                max_connections=settings.PROVIDER_MAX_CONNECTIONS,
                max_keepalive_connections=settings.PROVIDER_MAX_CONNECTIONS,
            ),
        ),
    )
