"""Memories and namespaces for operators: read only, searched by owner and content, archived (or brought
back) through the service. The memory table grows without bound, so every query of its list is bounded:
the count stops at COUNT_LIMIT, no second count of the whole table, filter choices that read no memory
row, no date hierarchy (a DISTINCT over the table), a list that is one owner's or the newest RECENT_ROWS
memories (see get_search_results), and never the embeddings (1.5 kB a row)."""

import json

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts.admin import ReadOnlyAdmin
from accounts.models import User
from memory import services
from memory.embeddings import embedder
from memory.models import Memory, MemoryNamespace

COUNT_LIMIT = 10_000
RECENT_ROWS = 100_000  # ids: the newest this many, fewer where some were deleted


class BoundedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT + 1 rows (an index-only scan that stops there): past it, the list shows
    that many and its last pages are reached by filtering or searching instead."""

    @cached_property
    def count(self):
        return self.object_list.order_by().values("pk")[: COUNT_LIMIT + 1].count()


class NamespaceFilter(admin.SimpleListFilter):
    """Choices from the described namespaces (a small table), not a DISTINCT over every memory; any
    `?namespace=` works, as the namespace list's links use it."""

    title = "namespace"
    parameter_name = "namespace"

    def lookups(self, request, model_admin):
        names = MemoryNamespace.objects.order_by("name").values_list("name", flat=True).distinct()[:50]
        return [(name, name) for name in sorted({"default", *names})]

    def queryset(self, request, queryset):
        return queryset.filter(namespace=self.value()) if self.value() else queryset


class EmbeddingModelFilter(admin.SimpleListFilter):
    """The configured embedder's memories, or those of another model (waiting to be embedded again)."""

    title = "embedding model"
    parameter_name = "embedding"

    def lookups(self, request, model_admin):
        return [("current", f"{embedder().name} (current)"), ("other", "another model (to re-embed)")]

    def queryset(self, request, queryset):
        if self.value() == "current":
            return queryset.filter(embedding_model=embedder().name)
        if self.value() == "other":
            return queryset.exclude(embedding_model=embedder().name)
        return queryset


@admin.register(Memory)
class MemoryAdmin(ReadOnlyAdmin):
    list_display = ["excerpt", "owner", "namespace", "kind", "archived", "embedding_model", "created_at", "expires_at"]
    list_filter = [NamespaceFilter, "archived", "kind", EmbeddingModelFilter]
    list_select_related = ["owner"]
    search_fields = ["content"]  # and owners: see get_search_results
    # Said above the list (a search_help_text would describe the search box by aria-describedby alone).
    list_help = (
        "Search: a username shows that user's memories (all of them); other words search the content. Without "
        f"a username, the list holds the newest {RECENT_ROWS:,} memories."
    )
    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice
    actions = ["archive", "unarchive"]
    fields = [
        "owner",
        "namespace",
        "kind",
        "content",
        "pretty_metadata",
        "importance",
        "agent_id",
        "archived",
        "expires_at",
        "created_at",
        "access_count",
        "last_accessed_at",
        "embedding_model",
        "partition",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, extra_context={**(extra_context or {}), "list_help": self.list_help})

    def get_search_results(self, request, queryset, search_term):
        """Terms that are usernames keep those users' memories (the owner's index); every other term must
        appear in the content. Without a user named, the list (filters, content search, count, actions on
        all) reads the newest RECENT_ROWS ids only, a range of the primary key: a rare filter or word
        never scans the whole table. Called by the change list with every request, search or not."""
        terms = search_term.split()[:10]
        owners = dict(User.objects.filter(username__in=terms).values_list("username", "pk")) if terms else {}
        if owners:
            queryset = queryset.filter(owner_id__in=owners.values())
        else:
            newest = Memory.objects.order_by("-pk").values_list("pk", flat=True).first()
            if newest is not None and newest > RECENT_ROWS:
                queryset = queryset.filter(pk__gt=newest - RECENT_ROWS)
        for word in (term for term in terms if term not in owners):
            queryset = queryset.filter(content__icontains=word)
        return queryset, False

    @admin.display(description="memory")
    def excerpt(self, memory):
        return memory.content[:80]

    @admin.display(description="metadata")
    def pretty_metadata(self, memory):
        return format_html("<pre>{}</pre>", json.dumps(memory.metadata, ensure_ascii=False, indent=2))

    def has_archive_permission(self, request):
        return request.user.has_perm("memory.change_memory")

    @admin.action(description="Archive the selected memories", permissions=["archive"])
    def archive(self, request, queryset):
        changed = services.memories_archive(memories=queryset)
        messages.success(request, f"{changed} memories archived.")

    @admin.action(description="Bring the selected memories back from the archive", permissions=["archive"])
    def unarchive(self, request, queryset):
        changed = services.memories_archive(memories=queryset, archived=False)
        messages.success(request, f"{changed} memories brought back.")


@admin.register(MemoryNamespace)
class MemoryNamespaceAdmin(ReadOnlyAdmin):
    list_display = ["name", "owner", "description", "created_at", "memories"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    fields = ["owner", "name", "description", "created_at"]
    readonly_fields = fields

    @admin.display(description="memories")
    def memories(self, namespace):
        query = urlencode({"namespace": namespace.name, "q": namespace.owner.username})
        return format_html('<a href="{}?{}">Its memories</a>', reverse("admin:memory_memory_changelist"), query)
