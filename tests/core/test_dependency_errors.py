"""A dependency that fails where no step had a fallback is a 503 in the error shape with a log line, not a 500."""

import pytest
import redis
from django.db import OperationalError
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class FailingView(APIView):
    permission_classes = [AllowAny]
    error = None

    def get(self, request):
        raise self.error


urlpatterns = [
    path("api/v1/database-down", FailingView.as_view(error=OperationalError("server closed the connection"))),
    path("api/v1/redis-down", FailingView.as_view(error=redis.ConnectionError("Connection refused"))),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("what", ["database", "redis"])
def test_a_dependency_down_is_a_503_with_a_log_line(client, caplog, what):
    client.raise_request_exception = False  # a 5xx is also reported to Django's error log, as it should be
    response = client.get(f"/api/v1/{what}-down", HTTP_X_REQUEST_ID=f"down-{what}")

    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "service_unavailable"
    assert response.json()["request_id"] == f"down-{what}"
    assert "a dependency failed" in caplog.text
