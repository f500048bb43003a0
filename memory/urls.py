from django.urls import path

from memory import api, views

urlpatterns = [
    path("", views.memory_list, name="memories"),
    path("<int:pk>/", views.memory_edit, name="memory_edit"),
    path("<int:pk>/delete/", views.memory_delete, name="memory_delete"),
    path("bulk/", views.memory_bulk, name="memory_bulk"),
    path("export/", views.memory_export, name="memory_export"),
    path("import/", views.memory_import, name="memory_import"),
    path("import/<uuid:pk>/", views.memory_import_status, name="memory_import_status"),
    path("share/", views.namespace_share, name="memory_namespace_share"),
    path("namespaces/<int:pk>/unshare/<str:username>/", views.namespace_unshare, name="memory_namespace_unshare"),
]

api_routes = [
    ("memories", api.MemoryViewSet, "memory"),
    ("memory-namespaces", api.MemoryNamespaceViewSet, "memory-namespace"),
]
