from django.urls import path, re_path

from tasks import api, views

urlpatterns = [
    path("", views.task_list, name="tasks"),
    path("<uuid:pk>/cancel/", views.task_cancel, name="task_cancel"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook_detail"),
    re_path(
        r"^webhooks/(?P<pk>\d+)/(?P<action>ping|enable|disable|rotate|delete)/$",
        views.webhook_action,
        name="webhook_action",
    ),
]

api_routes = [
    ("tasks", api.TaskViewSet, "taskrecord"),
    ("webhooks", api.WebhookEndpointViewSet, "webhookendpoint"),
]
