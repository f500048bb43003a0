from django.urls import path

from agents import api, views

urlpatterns = [
    path("", views.agent_list, name="agents"),
    path("<int:pk>/", views.agent_chat, name="agent_chat"),
    path("<int:pk>/chat/stream/", views.agent_chat_stream, name="agent_chat_stream"),
    path("<int:pk>/edit/", views.agent_edit, name="agent_edit"),
    path("<int:pk>/delete/", views.agent_delete, name="agent_delete"),
    path("<int:pk>/shares/", views.agent_share, name="agent_share"),
    path("<int:pk>/shares/<str:username>/delete/", views.agent_unshare, name="agent_unshare"),
    path("<int:pk>/runs/", views.agent_runs, name="agent_runs"),
    path("runs/<uuid:pk>/", views.agent_run, name="agent_run"),
]

api_urlpatterns = [
    path("agents/<str:pk>/invoke", api.AgentInvokeView.as_view(), name="agent-invoke"),
    path("cache/invalidate", api.CacheInvalidationView.as_view(), name="api-cache-invalidate"),
]

api_routes = [
    ("agents", api.AgentViewSet, "agent"),
    ("runs", api.AgentRunViewSet, "agentrun"),
    ("agent-types", api.AgentTypeViewSet, "agenttype"),
    ("models", api.LanguageModelViewSet, "languagemodel"),
]
