"""A deterministic stand-in for an embedding model, for the store's tests.

The fixture in ``tests/fixtures/upstream-3.2.0-store`` was recorded with this
exact function (``record.py`` there carries a copy and refuses to run if the
two disagree), so a test can recompute every vector of that database and every
query vector its ``expected.json`` scores came from.

Each vector is a signed histogram of the text's character bigrams hashed into
``DIMS`` buckets: texts that share bigrams point the same way, so searches
rank plausibly, and no model or network is needed. Components are small
integers, exact in pgvector's float4, so a vector read back from the database
equals the recomputed one bit for bit.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

DIMS = 16
"""Dimensions of the fixture's ``store_vectors.embedding`` column."""

FIELDS = ["text", "tags[*]"]
"""The fixture's index ``fields``: one vector per text, one per tag."""


def embed_text(text: str, dims: int = DIMS) -> list[float]:
    """Embed one text: its bigram histogram with hashed signs and buckets."""
    vector = [0] * dims
    padded = f" {text.lower()} "
    for i in range(len(padded) - 1):
        h = zlib.crc32(padded[i : i + 2].encode("utf-8"))
        # Low bits pick the bucket, bit 16 the sign: the signs spread unrelated
        # texts apart (cosine can go negative) instead of all sharing a cone.
        vector[h % dims] += 1 if (h >> 16) & 1 else -1
    if not any(vector):
        # Cosine distance is undefined for the zero vector.
        vector[0] = 1
    return [float(x) for x in vector]


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Embed several texts; usable directly as an index config's ``embed``."""
    return [embed_text(text) for text in texts]
