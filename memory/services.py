"""Writes of memories (every content change is embedded with the configured embedder) and of namespaces."""

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.services import object_share, object_shares_end
from core.parsers import storable_json_problem
from memory.embeddings import embedder, unit_vector
from memory.models import Memory, MemoryNamespace, partition_of
from memory.search import Hit, memory_search
from tasks.services.records import task_start

# A memory's metadata, as JSON text: it is filtered on and shown, not a place for documents.
METADATA_MAX_CHARS = 10_000

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


BULK_BATCH = 1000  # rows changed per statement: a large selection (the admin's "all") holds no lock for long


def _in_batches(memories: QuerySet[Memory], change) -> int:
    """Apply `change` (a queryset -> rows changed) to the memories, a batch of ids at a time, walking the
    primary key once; returns the rows changed."""
    changed, last = 0, 0
    while ids := list(memories.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BULK_BATCH]):
        changed += change(Memory.objects.filter(pk__in=ids))
        last = ids[-1]
    return changed


def memories_delete(*, memories: QuerySet[Memory]) -> int:
    """Delete many memories at once (the caller scopes them: selectors.memories_owned, or the admin's)."""
    return _in_batches(memories, lambda batch: batch.delete()[0])


def memories_archive(*, memories: QuerySet[Memory], archived: bool = True) -> int:
    """Archive many memories (or bring them back with archived=False): archived ones leave the partial
    indexes and agents' recall, and are still listed and searched on request. Returns how many changed."""
    return _in_batches(memories.filter(archived=not archived), lambda batch: batch.update(archived=archived))


def memories_move(*, memories: QuerySet[Memory], namespace: str) -> int:
    """Move many memories into one namespace (the sharing of that namespace then applies to them)."""
    field = Memory._meta.get_field("namespace")
    try:
        field.clean(namespace, None)
    except ValidationError as error:
        raise ValidationError({"namespace": error.messages}) from None
    return _in_batches(memories.exclude(namespace=namespace), lambda batch: batch.update(namespace=namespace))


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


class ImportProblems(ValidationError):
    """An import refused, naming its lines. Its text, which a failed task keeps as its error, is the problems
    in words, one a line (a plain ValidationError's text is a Python repr of them)."""

    def __str__(self):
        return "\n".join(self.messages)


IMPORTABLE = {"content", "created_at", *EDITABLE}  # what memory_export writes: an export imports back unchanged
IMPORT_PROBLEMS_SHOWN = 10  # then the import stops looking: a file this wrong is likely not an export at all


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _import_row(owner, number: int, line: str) -> Memory | str:
    """The memory a line describes, checked but unsaved and not yet embedded, or what is wrong with it."""
    try:
        row = json.loads(line, parse_constant=_not_json_constant)
    except ValueError as error:
        return f"Line {number}: not JSON ({getattr(error, 'msg', error)})."
    except RecursionError:
        return f"Line {number}: nested too deeply."
    if not isinstance(row, dict):
        return f"Line {number}: a JSON object is needed (one memory a line)."
    if not isinstance(row.get("content"), str) or not row["content"].strip():
        return f"Line {number}: content is required (a text that is not empty)."
    unknown = set(row) - IMPORTABLE
    if unknown:
        return f"Line {number}: unknown fields {', '.join(sorted(unknown))}."
    if not isinstance(row.get("metadata", {}), dict):
        return f"Line {number}: metadata must be a JSON object."
    if len(json.dumps(row.get("metadata", {}))) > METADATA_MAX_CHARS:
        return f"Line {number}: at most {METADATA_MAX_CHARS:,} characters of metadata."
    problem = storable_json_problem(row)
    if problem:
        return f"Line {number}: {problem}"
    for name in ("created_at", "expires_at"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"Line {number}: {name} is a date and time in text, such as 2026-05-01T09:30:00+00:00."
    memory = Memory(owner=owner, **row)
    try:  # the owner is known to exist: not checked again for every line
        memory.full_clean(exclude=["owner", "partition", "embedding", "embedding_model"])
    except ValidationError as error:
        detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
        return f"Line {number}: {detail}"[:300]
    except (TypeError, ValueError) as error:  # a value no field reads: a number for a date
        return f"Line {number}: a value of the wrong type ({error})."[:300]
    return memory


def memory_import(*, owner, lines: str, progress=None) -> dict:
    """Create memories from JSON lines ({"content": ..., "namespace", "kind", "metadata", ...}), the format
    memory_export writes.

    Every line is checked first; malformed ones stop the import before anything is written, and the error
    (ImportProblems) names each line, up to IMPORT_PROBLEMS_SHOWN of them. Lines are embedded in batches
    and written in one transaction.
    """
    memories, numbers, problems = [], [], []
    for number, line in enumerate(lines.splitlines(), start=1):
        if not line.strip():
            continue
        checked = _import_row(owner, number, line)
        if isinstance(checked, str):
            problems.append(checked)
            if len(problems) == IMPORT_PROBLEMS_SHOWN:
                problems.append("The import stopped looking there.")
                break
        else:
            memories.append(checked)
            numbers.append(number)
    if problems:
        raise ImportProblems({"lines": problems})
    # Embed everything first, then write it all in one transaction: a failure leaves nothing half-imported.
    model = embedder()
    vectors = []
    for start in range(0, len(memories), 100):
        vectors += model.embed([memory.content for memory in memories[start : start + 100]])
        if progress:
            progress(90 * len(vectors) // max(len(memories), 1), f"{len(vectors)} of {len(memories)} embedded")
    empty = [
        f"Line {number}: {NOTHING_TO_EMBED}"
        for number, vector in zip(numbers, vectors, strict=True)
        if unit_vector(vector) is None
    ]
    if empty:
        raise ImportProblems({"lines": empty[:IMPORT_PROBLEMS_SHOWN]})
    partition = partition_of(owner.pk)
    for memory, vector in zip(memories, vectors, strict=True):
        memory.partition, memory.embedding, memory.embedding_model = partition, vector, model.name
    with transaction.atomic():
        Memory.objects.bulk_create(memories, batch_size=1000)
    created = len(memories)
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
