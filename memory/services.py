"""Writes of memories (every content change is embedded with the configured embedder) and of namespaces."""

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import object_share, object_shares_end
from memory.embeddings import embedder, unit_vector
from memory.models import Memory, MemoryNamespace, partition_of
from memory.search import Hit, memory_search
from tasks.services.records import task_start

EDITABLE = ("content", "namespace", "kind", "metadata", "importance", "expires_at", "agent_id", "archived")


NOTHING_TO_EMBED = "This text has nothing the embedder can use (no words), so it could never be found."


def _embedding(content: str) -> list[float]:
    """The content's embedding; a text that embeds to nothing (a zero vector) is refused: no search could
    ever find it, and its distance to every query is NaN."""
    [vector] = embedder().embed([content])
    if unit_vector(vector) is None:
        raise ValidationError({"content": NOTHING_TO_EMBED})
    return vector


def memory_create(*, owner, content: str, **fields) -> Memory:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not memory fields: {sorted(unknown)}")
    memory = Memory(
        owner=owner, content=content, embedding=_embedding(content), embedding_model=embedder().name, **fields
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
        memory.embedding, memory.embedding_model = _embedding(fields["content"]), embedder().name
    for name, value in fields.items():
        setattr(memory, name, value)
    memory.full_clean(exclude=["partition"])
    memory.save()
    return memory


def memory_delete(*, memory: Memory) -> None:
    memory.delete()


def memory_recall(*, user, **search) -> tuple[list[Hit], str]:
    """A search that counts as use (an agent's prompt, an API search): the memories found are marked
    accessed, which keeps them from being archived or pruned as unused. Takes memory_search's options."""
    hits, plan = memory_search(user=user, **search)
    if hits:
        Memory.objects.filter(pk__in=[hit.memory.pk for hit in hits]).update(
            access_count=F("access_count") + 1, last_accessed_at=timezone.now()
        )
    return hits, plan


def memory_import_start(*, owner, lines: str, idempotency_key: str = ""):
    """Import JSON lines in the background: (the task record, whether it was created). See memory_import."""
    return task_start(
        kind="memory.import",
        owner=owner,
        input={"owner_id": owner.pk, "lines": lines},
        idempotency_key=idempotency_key,
    )


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
    rows, numbers = [], []
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
        numbers.append(number)
    # Embed everything first, then write it all in one transaction: a failure leaves nothing half-imported.
    model = embedder()
    vectors = []
    for start in range(0, len(rows), 100):
        vectors += model.embed([row["content"] for row in rows[start : start + 100]])
        if progress:
            progress(90 * len(vectors) // max(len(rows), 1), f"{len(vectors)} of {len(rows)} embedded")
    for number, vector in zip(numbers, vectors, strict=True):
        if unit_vector(vector) is None:
            raise ValidationError({"lines": f"Line {number}: {NOTHING_TO_EMBED}"})
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


def namespace_update(*, namespace: MemoryNamespace, name: str | None = None, description: str | None = None):
    """Describe a namespace again; its name is what its memories refer to, so it cannot change."""
    if name is not None and name != namespace.name:
        raise ValidationError({"name": "A namespace keeps its name; describe it instead."})
    if description is not None:
        namespace.description = description
        namespace.save(update_fields=["description"])
    return namespace


@transaction.atomic
def namespace_delete(*, namespace: MemoryNamespace) -> None:
    """Delete the description and end its sharing; the memories stay (they belong to the owner)."""
    object_shares_end(obj=namespace)
    namespace.delete()


@transaction.atomic
def namespace_share(*, owner, name: str, user, level: str, request=None) -> MemoryNamespace:
    """Share one of the owner's namespaces (described on the way if it was not) with `user` at `level`."""
    namespace = MemoryNamespace.objects.filter(owner=owner, name=name).first() or namespace_create(
        owner=owner, name=name
    )
    object_share(obj=namespace, owner=owner, user=user, level=level, request=request)
    return namespace
