from django.urls import path

from agents import api, views

urlpatterns = [
    path("", views.agent_list, name="agents"),
    path("<int:pk>/", views.agent_chat, name="agent_chat"),
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
