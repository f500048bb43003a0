from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.api.sharing import SharingMixin
from accounts.permissions import PolicyMixin
from accounts.selectors import owned_get, owned_or_shared, owned_or_shared_get
from tests.sharing.models import Notebook


class NotebookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notebook
        fields = ["id", "title", "owner"]
        read_only_fields = ["id", "owner"]


class NotebookViewSet(SharingMixin, PolicyMixin, viewsets.GenericViewSet):
    """Shaped like the viewsets of later issues: reads through selectors, `use` like invoking an agent."""

    queryset = Notebook.objects.all()
    serializer_class = NotebookSerializer
    action_policies = {
        "list": ("sharing.view_notebook", "agents:read"),
        "retrieve": ("sharing.view_notebook", "agents:read"),
        "create": ("sharing.add_notebook", "agents:write"),
        "partial_update": ("sharing.change_notebook", "agents:write"),
        "use": ("sharing.use_notebook", "agents:invoke"),
        "shares": ("sharing.change_notebook", "agents:write"),
        "unshare": ("sharing.change_notebook", "agents:write"),
    }

    def list(self, request):
        notebooks = owned_or_shared(user=request.user, queryset=self.queryset)
        return Response(NotebookSerializer(notebooks, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(NotebookSerializer(owned_or_shared_get(user=request.user, queryset=self.queryset, pk=pk)).data)

    def create(self, request):
        data = NotebookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notebook = Notebook.objects.create(owner=request.user, title=data.validated_data["title"])
        return Response(NotebookSerializer(notebook).data, status=201)

    def partial_update(self, request, pk=None):
        notebook = owned_get(user=request.user, queryset=self.queryset, pk=pk)
        data = NotebookSerializer(notebook, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        notebook.title = data.validated_data.get("title", notebook.title)
        notebook.save()
        return Response(NotebookSerializer(notebook).data)

    @action(detail=True, methods=["post"])
    def use(self, request, pk=None):
        notebook = owned_or_shared_get(user=request.user, queryset=self.queryset, pk=pk, level="use")
        return Response({"used": notebook.title})
