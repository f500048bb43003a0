import asyncio
import json
import logging

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

import platform_site.urls as site_urls
from agents.openai_api.errors import OpenAIErrors
from core.correlation import RequestContextFilter
from core.middleware import RequestBodyLimit


class GreetingSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)


class GreetingView(APIView):
    """Stands for any endpoint that validates input."""

    permission_classes = [AllowAny]

    def post(self, request):
        serializer = GreetingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"hello": serializer.validated_data["name"]})


class PrivateView(APIView):
    def get(self, request):
        return Response({})


urlpatterns = [path("api/v1/greeting", GreetingView.as_view()), path("api/v1/private", PrivateView.as_view())]


@pytest.mark.urls(__name__)
def test_a_validation_error_names_the_field_with_a_code_and_carries_the_request_id(client):
    response = client.post(
        "/api/v1/greeting", {"name": "far too long"}, content_type="application/json", HTTP_X_REQUEST_ID="err-1"
    )

    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "errors": [
            {"code": "max_length", "detail": "Ensure this field has no more than 5 characters.", "attr": "name"}
        ],
        "request_id": "err-1",
    }


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_an_unauthenticated_call_gets_the_same_error_shape(client):
    response = client.get("/api/v1/private", HTTP_X_REQUEST_ID="err-2")

    body = response.json()
    assert response.status_code in (401, 403)
    assert body["type"] == "client_error"
    assert body["errors"][0]["code"] == "not_authenticated"
    assert body["request_id"] == "err-2"


def test_the_schema_documents_the_request_id_on_every_error_response():
    schema = SchemaGenerator(patterns=urlpatterns).get_schema(request=None, public=True)

    error_components = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if {"type", "errors"} <= component.get("properties", {}).keys()
    }
    assert len(error_components) >= 3
    for name, component in error_components.items():
        assert "request_id" in component["properties"], name
        assert "request_id" in component["required"], name


def test_an_unhandled_error_is_json_under_the_apis_and_a_page_elsewhere(rf):
    from platform_site.views import server_error

    native, openai, page = (server_error(rf.get(path)) for path in ("/api/v1/agents", "/v1/models", "/agents/"))

    assert native.status_code == openai.status_code == page.status_code == 500
    assert json.loads(native.content)["type"] == "server_error"
    assert json.loads(openai.content)["error"]["type"] == "server_error"
    assert page["Content-Type"].startswith("text/html")


# --- unhandled errors: one generic JSON 500 with the request id, never a traceback or a debug page -------------


class CrashingView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret detail of a bug")


class CrashingOpenAIView(OpenAIErrors, APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret detail of a bug")


def crashing_page(request):
    raise RuntimeError("secret detail of a bug")


async def crashing_async_view(request):
    raise RuntimeError("secret detail of a bug")


class EchoView(APIView):
    """Reads its body: stands for every endpoint that takes one."""

    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"keys": sorted(request.data)})


class OpenAIEchoView(OpenAIErrors, EchoView):
    pass


class CrashingMiddleware:
    """A bug in a middleware, below the request id (where every one of ours sits)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.headers.get("X-Crash-Middleware"):
            raise RuntimeError("secret detail of a bug")
        return self.get_response(request)


crash_urlpatterns = [
    path("api/v1/crash", CrashingView.as_view()),
    path("api/v1/crash-plain", crashing_page),
    path("api/v1/crash-async", crashing_async_view),
    path("api/v1/echo", EchoView.as_view()),
    path("v1/crash", CrashingOpenAIView.as_view()),
    path("v1/echo", OpenAIEchoView.as_view()),
    path("crash/", crashing_page),
    *site_urls.urlpatterns,
]


class CrashUrls:
    urlpatterns = crash_urlpatterns
    handler500 = site_urls.handler500


CRASHES = ["/api/v1/crash", "/api/v1/crash-plain", "/api/v1/crash-async"]


@pytest.fixture
def crash_urls(settings):
    settings.ROOT_URLCONF = CrashUrls


@pytest.fixture
def errors_logged(caplog):
    """ERROR records, each with the request id it was logged under (as the JSON log lines carry it)."""
    caplog.handler.addFilter(RequestContextFilter())
    caplog.set_level(logging.ERROR)
    return lambda: [record for record in caplog.records if record.levelno >= logging.ERROR]


def assert_generic_500(response, request_id):
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response["X-Request-ID"] == request_id
    assert json.loads(response.content) == {
        "type": "server_error",
        "errors": [{"code": "error", "detail": "Server Error (500)", "attr": None}],
        "request_id": request_id,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("url", CRASHES)
def test_a_bug_in_an_api_view_answers_the_generic_json_500_with_the_request_id_and_is_logged_once(
    client, crash_urls, settings, errors_logged, url, debug
):
    settings.DEBUG = debug
    client.raise_request_exception = False

    response = client.get(url, HTTP_X_REQUEST_ID="crash-1")

    assert_generic_500(response, "crash-1")
    assert b"secret detail" not in response.content
    [logged] = errors_logged()
    assert logged.request_id == "crash-1" and logged.exc_info[1].args == ("secret detail of a bug",)


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_bug_in_a_middleware_answers_the_json_500_under_the_api_too(client, crash_urls, settings, debug):
    settings.DEBUG = debug
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.CrashingMiddleware"]
    client.raise_request_exception = False

    response = client.get("/api/v1/", HTTP_X_REQUEST_ID="crash-2", HTTP_X_CRASH_MIDDLEWARE="1")

    assert_generic_500(response, "crash-2")


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_bug_under_the_openai_compatible_api_answers_openais_500_with_the_request_id_header(
    client, crash_urls, settings, debug
):
    settings.DEBUG = debug
    client.raise_request_exception = False

    response = client.get("/v1/crash", HTTP_X_REQUEST_ID="crash-3")

    assert response.status_code == 500 and response["X-Request-ID"] == "crash-3"  # the SDKs' error.request_id
    error = json.loads(response.content)["error"]
    assert (error["message"], error["type"], error["param"]) == ("Server Error (500)", "server_error", None)


@pytest.mark.django_db
def test_a_bug_in_an_async_view_served_over_asgi_answers_the_json_500(crash_urls):
    status, headers, body, _ = asgi_request(ASGIHandler(), "GET", "/api/v1/crash-async", request_id="crash-4")

    assert status == 500 and headers["content-type"] == "application/json"
    assert json.loads(body)["request_id"] == "crash-4" and json.loads(body)["type"] == "server_error"


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize(
    "url", ["/api/v1/no-such-thing", "/api/v1/no-such-thing/", "/api/v2/agents", "/api/v1/agents/1/nope"]
)
def test_an_unknown_api_path_is_the_json_404_whatever_the_method(client, settings, url, method, debug):
    settings.DEBUG = debug

    response = getattr(client, method)(url, HTTP_X_REQUEST_ID="lost-1")

    assert response.status_code == 404
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "No API endpoint at this path.", "attr": None}],
        "request_id": "lost-1",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_unknown_openai_compatible_path_is_openais_404(client, settings, debug):
    settings.DEBUG = debug

    response = client.post("/v1/completions", {}, content_type="application/json")

    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"


# --- bodies over the ceiling: refused without being read ------------------------------------------------------

MB = 1024 * 1024
CHUNK = 64 * 1024


def asgi_request(
    app,
    method,
    path,
    *,
    body_size=0,
    content_length=True,
    request_id="asgi-1",
    extra_headers=(),
    content_type="application/json",
):
    """Call an ASGI app as a server would, the body in 64 KiB messages. Returns status, headers, body and how
    many body messages the app pulled."""
    headers = [(b"x-request-id", request_id.encode()), (b"content-type", content_type.encode()), *extra_headers]
    if content_length and body_size:
        headers.append((b"content-length", str(body_size).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    chunks = body_size // CHUNK + (1 if body_size % CHUNK else 0)
    pulled, empty_sent, sent = 0, False, []
    piece = b"[" + b" " * (CHUNK - 1)

    async def receive():
        nonlocal pulled, empty_sent
        if pulled < chunks:
            pulled += 1
            return {"type": "http.request", "body": piece, "more_body": pulled < chunks}
        if not chunks and not empty_sent:
            empty_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client waits for its answer

    async def send(message):
        sent.append(message)

    async_to_sync(app)(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, body, pulled


@pytest.mark.django_db
@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "chunked"])
def test_a_50_mb_body_is_a_413_in_the_apis_shape_without_being_read_whole(crash_urls, settings, content_length):
    app = RequestBodyLimit(ASGIHandler())

    status, headers, body, pulled = asgi_request(
        app, "POST", "/api/v1/echo", body_size=50 * MB, content_length=content_length, request_id="big-1"
    )

    assert status == 413 and headers["x-request-id"] == "big-1"
    assert json.loads(body) == {
        "type": "client_error",
        "errors": [
            {
                "code": "request_too_large",
                "detail": f"The request body is larger than {settings.REQUEST_MAX_BYTES} bytes.",
                "attr": None,
            }
        ],
        "request_id": "big-1",
    }
    read = pulled * CHUNK
    assert (
        read == 0
        if content_length
        else settings.REQUEST_BODY_CEILING_BYTES < read <= settings.REQUEST_BODY_CEILING_BYTES + CHUNK
    )


@pytest.mark.django_db
@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "chunked"])
def test_a_50_mb_upload_from_the_browser_is_a_413_page_that_says_the_limit(content_length):
    """The memory import form, posting a file over the ceiling: a page, not Django's bare 400."""
    app = RequestBodyLimit(ASGIHandler())

    status, headers, body, pulled = asgi_request(
        app,
        "POST",
        "/memories/import/",
        body_size=50 * MB,
        content_length=content_length,
        content_type="multipart/form-data; boundary=x",
        extra_headers=[(b"cookie", b"csrftoken=" + b"a" * 32)],  # a browser's form carries its CSRF cookie
    )

    assert status == 413 and headers["content-type"].startswith("text/html"), body[:3000]
    assert "The upload is larger than this server takes (24 MiB)" in body.decode()
    assert "content-security-policy" in headers  # the page went through the middleware like any other
    assert pulled == 0 if content_length else pulled * CHUNK <= 24 * MB + CHUNK


@pytest.mark.django_db
def test_a_50_mb_body_to_the_openai_compatible_api_is_openais_413(crash_urls):
    status, _, body, pulled = asgi_request(RequestBodyLimit(ASGIHandler()), "POST", "/v1/echo", body_size=50 * MB)

    assert status == 413 and pulled == 0
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert json.loads(body)["error"]["code"] == "request_too_large"


@pytest.mark.django_db
def test_a_body_under_the_ceiling_passes_through_whole(crash_urls):
    app = RequestBodyLimit(ASGIHandler())

    status, _, body, pulled = asgi_request(app, "POST", "/api/v1/echo", body_size=3 * MB)

    assert pulled == 3 * MB // CHUNK
    assert status == 400 and b"JSON parse error" in body  # read whole and parsed: "[" and spaces are no JSON


@pytest.mark.django_db
def test_a_body_over_the_api_bound_but_under_the_ceiling_is_refused_by_the_parser(crash_urls, settings):
    app = RequestBodyLimit(ASGIHandler())

    status, _, body, _ = asgi_request(app, "POST", "/api/v1/echo", body_size=settings.REQUEST_MAX_BYTES + MB)

    assert status == 413
    assert (
        json.loads(body)["errors"][0]["detail"]
        == f"The request body is larger than {settings.REQUEST_MAX_BYTES} bytes."
    )


@pytest.mark.django_db(transaction=True)  # the gateway reads keys in threads of its own (core.async_db)
def test_the_agents_invoke_endpoint_refuses_a_50_mb_body_unread_with_a_key(agent, alice):
    from tests.conftest import make_key

    key = make_key(alice, scopes=("agents:invoke",))
    app = RequestBodyLimit(ASGIHandler())

    status, _, body, pulled = asgi_request(
        app,
        "POST",
        f"/api/v1/agents/{agent.pk}/invoke",
        body_size=50 * MB,
        extra_headers=[(b"authorization", f"Bearer {key}".encode())],
    )

    assert status == 413 and pulled == 0
    assert json.loads(body)["errors"][0]["code"] == "request_too_large"
