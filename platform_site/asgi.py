"""The whole site through one ASGI server (gunicorn with uvicorn workers, see platform_site/serving.py).

Calls to the invocation endpoints made with an API key take the gateway path: Django's ASGI handler with a
lean middleware chain that is async from end to end (request id, the API guard, security headers), so a
call crosses no thread on its way in or out. Everything else, and those endpoints called with a session,
goes through the full stack (sessions, CSRF, authentication, messages, lockouts, audit), whose sync
middleware Django runs in threads.
"""

import os
import re

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_site.settings")
site = get_asgi_application()  # sets Django up

GATEWAY_PATHS = re.compile(r"^/api/v1/agents/\d+/invoke$")


class GatewayHandler(ASGIHandler):
    """Django's ASGI handler with GATEWAY_MIDDLEWARE, each of them async: no thread per layer."""

    def load_middleware(self, is_async=False):
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.GATEWAY_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler


gateway = GatewayHandler()


def takes_gateway(scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or not GATEWAY_PATHS.match(scope["path"]):
        return False
    return any(name == b"authorization" and value[:7].lower() == b"bearer " for name, value in scope["headers"])


async def application(scope, receive, send):
    if scope["type"] == "lifespan":  # Django refuses this scope; there is nothing to start or stop
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return
    elif takes_gateway(scope):
        await gateway(scope, receive, send)
    else:
        await site(scope, receive, send)
