import re

import pytest
from django.core.management import call_command


def test_the_openapi_schema_generates_and_validates_with_no_warnings(tmp_path):
    schema_file = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))

    assert schema_file.read_text().startswith("openapi: 3")


def test_the_schema_is_served_as_json(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Switchboard API"


def test_swagger_ui_is_served_offline_from_our_own_static_files(client):
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page loads no assets"
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))]
    bundle = next(url for url in assets if url.endswith("swagger-ui-bundle.js"))
    assert client.get(bundle).status_code == 200


@pytest.mark.django_db
def test_the_api_root_lists_collections_without_authentication(client):
    response = client.get("/api/v1/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_a_browser_asking_for_an_api_route_gets_json_not_a_page(client):
    """No browsable API (its inline styles break the CSP): a browser's Accept header still gets the JSON."""
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"

    response = client.get("/api/v1/", HTTP_ACCEPT=browser_accept)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "agents" in response.json()
