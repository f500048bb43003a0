"""The security headers every answer carries: a browser page, an admin page, the API, Swagger UI, a 404 and a
500 alike. The policy forbids inline script and style (the browser tests check no page needs them)."""

import pytest
from django.urls import path

import platform_site.urls as site_urls
from tests.conftest import PASSWORD, make_user

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "object-src": "'none'",
}
OFF = ("camera", "microphone", "geolocation", "payment", "usb")


def crash(request):
    raise RuntimeError("a bug in a page")


urlpatterns = [path("crash/", crash), *site_urls.urlpatterns]
handler500 = site_urls.handler500


def directives(header: str) -> dict:
    return {name: value.strip() for name, _, value in (part.strip().partition(" ") for part in header.split(";"))}


def assert_hardened(response):
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    features = dict(part.strip().split("=", 1) for part in response["Permissions-Policy"].split(","))
    assert all(features[feature] == "()" for feature in OFF), features


@pytest.fixture
def operator_client(client, db):
    client.force_login(make_user("olga", role="operator"))
    return client


@pytest.mark.urls(__name__)
@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, status",
    [
        ("/accounts/login/", 200),  # a browser page, signed out
        ("/admin/login/", 200),
        ("/api/v1/", 200),  # the API's root (JSON)
        ("/api/docs/", 200),  # Swagger UI
        ("/agents/999999/", 302),  # signed out: to the login page
        ("/no-such-page/", 404),
        ("/api/v1/no-such-endpoint", 404),
        ("/v1/no-such-endpoint", 404),
    ],
)
def test_every_answer_carries_the_security_headers_and_a_policy_without_inline_script_or_style(client, url, status):
    client.raise_request_exception = False

    response = client.get(url)

    assert response.status_code == status
    assert_hardened(response)


@pytest.mark.urls(__name__)
def test_a_page_that_fails_answers_the_platforms_500_page_with_the_headers_and_the_request_id(client):
    client.raise_request_exception = False

    response = client.get("/crash/", HTTP_X_REQUEST_ID="page-crash-1")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert_hardened(response)
    page = response.content.decode()
    assert "Something went wrong" in page and "page-crash-1" in page
    assert "a bug in a page" not in page and "Traceback" not in page


def test_an_admin_page_signed_in_carries_the_headers(operator_client):
    response = operator_client.get("/admin/")

    assert response.status_code == 200
    assert_hardened(response)


def test_a_signed_in_browser_page_carries_the_headers(operator_client):
    response = operator_client.get("/")

    assert response.status_code == 200
    assert_hardened(response)


def test_https_answers_carry_hsts_with_subdomains_when_it_is_configured(client, settings, db):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    over_https = client.get("/accounts/login/", secure=True)
    over_http = client.get("/accounts/login/")

    assert over_https["Strict-Transport-Security"].startswith("max-age=31536000; includeSubDomains")
    assert "Strict-Transport-Security" not in over_http  # browsers ignore it over HTTP; development stays HTTP


def test_the_session_and_csrf_cookies_are_http_only_and_same_site(client, db):
    make_user("mia")

    page = client.get("/accounts/login/")
    signed_in = client.post("/accounts/login/", {"username": "mia", "password": PASSWORD})

    csrf = page.cookies["csrftoken"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"
    session = signed_in.cookies.get("sessionid") or client.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax"


def test_a_report_only_policy_can_be_tried_instead(client, settings, db):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = settings.CONTENT_SECURITY_POLICY
    settings.CONTENT_SECURITY_POLICY = None

    response = client.get("/accounts/login/")

    assert "Content-Security-Policy" not in response
    assert directives(response["Content-Security-Policy-Report-Only"]) == POLICY
