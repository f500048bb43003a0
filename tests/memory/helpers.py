"""Helpers the memory tests share: clustered vectors like the benchmark's, and memories written in bulk."""

import random

from bench.memory import centres_of, clustered
from memory.models import Memory, partition_of


def clustered_vectors(count: int, clusters: int = 20, seed: int = 1) -> list[list[float]]:
    """The benchmark's generator (bench/memory.py), small."""
    rng = random.Random(seed)
    return list(clustered(rng, centres_of(rng, clusters), count))


def bulk_memories(user, vectors, **fields):
    Memory.objects.bulk_create(
        Memory(
            owner=user,
            partition=partition_of(user.pk),
            content=f"m{n}",
            embedding=vector,
            embedding_model="test",
            **fields,
        )
        for n, vector in enumerate(vectors)
    )
