from django.urls import path, re_path

from agents.openai_api import views

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("models", views.ModelListView.as_view(), name="openai-models"),
    path("models/<path:model>", views.ModelDetailView.as_view(), name="openai-model"),
    path("embeddings", views.EmbeddingsView.as_view(), name="openai-embeddings"),
    re_path(r"", views.not_found),
]
