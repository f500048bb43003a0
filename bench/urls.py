from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from platform_site.urls import urlpatterns as platform_urlpatterns


class NoopView(APIView):
    """Authenticates (API key) and answers: the floor any endpoint of the platform pays."""

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [path("api/v1/bench/noop", NoopView.as_view()), *platform_urlpatterns]
