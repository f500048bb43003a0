from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import permissions, routers

import accounts.urls
import agents.urls
import memory.urls
import quotas.urls
import tasks.urls
import workflows.urls
from platform_site import health, metrics, views


class APIRootView(routers.APIRootView):
    """Lists the API's collections; public, like the schema."""

    permission_classes = [permissions.AllowAny]


class Router(routers.DefaultRouter):
    APIRootView = APIRootView


# Apps register their viewsets on this router (paths without a trailing slash: /api/v1/keys/{id}).
api_router = Router(trailing_slash=False)
for prefix, viewset, basename in [
    *accounts.urls.api_routes,
    *tasks.urls.api_routes,
    *agents.urls.api_routes,
    *memory.urls.api_routes,
    *workflows.urls.api_routes,
]:
    api_router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("status/", views.status, name="status"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus; not part of the API (platform_site/metrics.py)
    path("accounts/", include("accounts.urls")),
    path("tasks/", include("tasks.urls")),
    path("agents/", include("agents.urls")),
    path("usage/", include("quotas.urls")),
    path("memories/", include("memory.urls")),
    path("workflows/", include("workflows.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(accounts.urls.api_urlpatterns)),
    path("api/v1/", include(agents.urls.api_urlpatterns)),
    path("api/v1/", include(quotas.urls.api_urlpatterns)),
    path("api/v1/", include(workflows.urls.api_urlpatterns)),
    path("api/v1/", include(api_router.urls)),
    path("v1/", include("agents.openai_api.urls")),  # OpenAI-compatible: clients set base_url to .../v1
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from a URL: the page has no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/", views.api_not_found),  # last: any other /api/ path is the API's JSON 404
]

handler400 = "platform_site.views.bad_request"
handler500 = "platform_site.views.server_error"
