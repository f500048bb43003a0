from django.urls import path

from quotas import api, views

urlpatterns = [path("", views.usage, name="usage")]

api_urlpatterns = [path("usage", api.UsageView.as_view(), name="api-usage")]
