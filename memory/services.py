"""Writes of memories (every content change is embedded with the configured embedder) and of namespaces."""

import json

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import object_share
from memory.embeddings import embedder
from memory.models import Memory, MemoryNamespace, partition_of

EDITABLE = ("content", "namespace", "kind", "metadata", "importance", "expires_at", "agent_id", "archived")


def memory_create(*, owner, content: str, **fields) -> Memory:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not memory fields: {sorted(unknown)}")
    model = embedder()
    memory = Memory(
        owner=owner, content=content, embedding=model.embed([content])[0], embedding_model=model.name, **fields
    )
    memory.full_clean(exclude=["partition"])
    memory.save()
    return memory


@transaction.atomic
def memory_update(*, memory: Memory, **fields) -> Memory:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not memory fields: {sorted(unknown)}")
    if "content" in fields and fields["content"] != memory.content:
        model = embedder()
        memory.embedding, memory.embedding_model = model.embed([fields["content"]])[0], model.name
    for name, value in fields.items():
        setattr(memory, name, value)
    memory.full_clean(exclude=["partition"])
    memory.save()
    return memory


def namespace_create(*, owner, name: str, description: str = "") -> MemoryNamespace:
    """Describe one of the owner's namespaces (it may hold memories already), so it can be shared."""
    namespace = MemoryNamespace(owner=owner, name=name, description=description)
    namespace.full_clean()  # includes the one-name-per-owner check
    namespace.save()
    return namespace


def memory_import(*, owner, lines: str, progress=None) -> dict:
    """Create memories from JSON lines ({"content": ..., "namespace", "kind", "metadata", ...}).

    Every line is checked first; a malformed one stops the import before anything is written, and the
    error names its line number. Lines are embedded and written in batches.
    """
    rows = []
    for number, line in enumerate(lines.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValidationError({"lines": f"Line {number}: not JSON ({error.msg})."}) from error
        if not isinstance(row, dict) or not isinstance(row.get("content"), str) or not row["content"].strip():
            raise ValidationError({"lines": f"Line {number}: an object with a non-empty 'content' is needed."})
        unknown = set(row) - {"content", *EDITABLE}
        if unknown:
            raise ValidationError({"lines": f"Line {number}: unknown fields {', '.join(sorted(unknown))}."})
        try:
            Memory(owner=owner, **row).full_clean(exclude=["partition", "embedding", "embedding_model"])
        except (ValidationError, TypeError, ValueError) as error:
            detail = "; ".join(
                f"{k}: {' '.join(v)}" for k, v in getattr(error, "message_dict", {"row": [str(error)]}).items()
            )
            raise ValidationError({"lines": f"Line {number}: {detail}"}) from error
        rows.append(row)
    # Embed everything first, then write it all in one transaction: a failure leaves nothing half-imported.
    model = embedder()
    vectors = []
    for start in range(0, len(rows), 100):
        vectors += model.embed([row["content"] for row in rows[start : start + 100]])
        if progress:
            progress(90 * len(vectors) // max(len(rows), 1), f"{len(vectors)} of {len(rows)} embedded")
    partition = partition_of(owner.pk)
    with transaction.atomic():
        Memory.objects.bulk_create(
            Memory(owner=owner, partition=partition, embedding=vector, embedding_model=model.name, **row)
            for row, vector in zip(rows, vectors, strict=True)
        )
    created = len(rows)
    if progress:
        progress(100, f"{created} imported")
    return {"imported": created}


def memory_export(*, user):
    """The user's own memories as JSON lines (without embeddings: they are rebuilt on import)."""
    for memory in Memory.objects.filter(owner=user).order_by("id").iterator(chunk_size=500):
        yield json.dumps(
            {
                "content": memory.content, "namespace": memory.namespace, "kind": memory.kind,
                "metadata": memory.metadata, "importance": memory.importance, "agent_id": memory.agent_id,
                "archived": memory.archived,
            }
        ) + "\n"  # fmt: skip


@transaction.atomic
def namespace_share(*, owner, name: str, user, level: str, request=None) -> MemoryNamespace:
    """Share one of the owner's namespaces (described on the way if it was not) with `user` at `level`."""
    namespace = MemoryNamespace.objects.filter(owner=owner, name=name).first() or namespace_create(
        owner=owner, name=name
    )
    object_share(obj=namespace, owner=owner, user=user, level=level, request=request)
    return namespace
