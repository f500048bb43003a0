"""Writes of memories: every content change is embedded with the configured embedder."""

from django.core.exceptions import ValidationError
from django.db import transaction

from memory.embeddings import embedder
from memory.models import Memory

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
    try:
        memory.full_clean(exclude=["partition"])
    except ValidationError:
        raise
    memory.save()
    return memory
