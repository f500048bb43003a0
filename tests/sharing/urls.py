from django.urls import include, path
from rest_framework.routers import SimpleRouter

from platform_site.urls import urlpatterns as platform_urlpatterns
from tests.sharing.api import NotebookViewSet

router = SimpleRouter(trailing_slash=False)
router.register("notebooks", NotebookViewSet, basename="notebook")

urlpatterns = [path("api/v1/", include(router.urls)), *platform_urlpatterns]
