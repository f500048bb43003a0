from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


def partition_of(owner_id: int) -> int:
    """The partition of an owner's memories, so one user's search walks one partition's graph. Plain
    modulo: ids spread evenly, and SQL can compute it too (maintenance.reindex moves rows when the count
    changes)."""
    return owner_id % settings.MEMORY_PARTITIONS


class MemoryQuerySet(models.QuerySet):
    def unexpired(self):
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now()))

    def live(self):
        """Not archived, not expired: what the partial indexes hold and searches walk."""
        return self.unexpired().filter(archived=False)


class Memory(models.Model):
    """One memory of a user (optionally of one of their agents), with its embedding and metadata."""

    class Kind(models.TextChoices):
        FACT = "fact", "Fact"
        MESSAGE = "message", "Message"
        SUMMARY = "summary", "Summary"
        DOCUMENT_CHUNK = "document_chunk", "Document chunk"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memories")
    partition = models.PositiveSmallIntegerField(editable=False)
    agent_id = models.BigIntegerField(null=True, blank=True, help_text="The agent it belongs to; empty: all.")
    namespace = models.SlugField(max_length=100, default="default")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.FACT)
    content = models.TextField(max_length=20000)
    embedding = VectorField(dimensions=settings.MEMORY_EMBEDDING_DIMENSIONS)
    embedding_model = models.CharField(max_length=100)
    metadata = models.JSONField(default=dict, blank=True)
    importance = models.FloatField(default=0.5)
    access_count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    archived = models.BooleanField(default=False)

    objects = MemoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "memories"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "namespace", "-created_at"]),
            models.Index(fields=["partition", "owner"]),
            # Metadata equality and membership filters (compiled to @>) narrow a large owner's rows here.
            GinIndex(fields=["metadata"], opclasses=["jsonb_path_ops"], name="memory_metadata_gin"),
            # The bounded count that picks a search's plan (selectors) reads this alone, an index-only scan of
            # the owner's live rows, rather than a heap row per memory counted: a large owner's are scattered.
            models.Index(
                fields=["owner", "partition"],
                include=["expires_at", "agent_id", "namespace"],
                condition=models.Q(archived=False),
                name="memory_live_slice",
            ),
        ]

    def __str__(self):
        return self.content[:60]

    def save(self, *args, **kwargs):
        self.partition = partition_of(self.owner_id)
        super().save(*args, **kwargs)


class MemoryNamespace(models.Model):
    """One of a user's memory namespaces, as something they can share (accounts' object sharing): at `view`
    the other user reads and searches its memories, at `use` their agents also draw on them. Memories name
    their namespace by slug; this row exists once the owner describes or shares one."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_namespaces")
    name = models.SlugField(max_length=100)
    description = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="memory_namespace_unique_per_owner")]
        permissions = [("use_memorynamespace", "Can let agents draw on a shared memory namespace")]

    def __str__(self):
        return f"{self.owner}/{self.name}"
