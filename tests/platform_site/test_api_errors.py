import json

import pytest
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


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
