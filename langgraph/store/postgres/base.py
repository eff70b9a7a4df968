"""The store's public names, where ``langgraph-checkpoint-postgres`` has them.

``PostgresStore``, its configuration types (``PostgresIndexConfig``,
``ANNIndexConfig``, ``HNSWConfig``, ``IVFFlatConfig``, ``PoolConfig``,
``TTLConfig``), the shared core ``BasePostgresStore`` and the layout's
``MIGRATIONS`` / ``VECTOR_MIGRATIONS`` import from here as they do from the
existing package. The code lives in modules named for what they hold:
``_config`` (configuration), ``_migrations`` (layout), ``_sql`` (statements),
``_filters`` (search filters), ``_batch`` (planning a batch), ``_core`` (the
shared core) and ``_sync`` (the sync store).

>>> from langgraph.store.postgres.base import PostgresIndexConfig
>>> index: PostgresIndexConfig = {"dims": 1536, "embed": "openai:text-embedding-3"}
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import TTLConfig

from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.store.postgres._config import (
    ANNIndexConfig,
    HNSWConfig,
    IVFFlatConfig,
    PostgresIndexConfig,
    VectorIndex,
)
from langgraph.store.postgres._core import (
    BasePostgresStore,
    C,
    PgvectorMissingError,
    Row,
)
from langgraph.store.postgres._migrations import (
    MIGRATIONS,
    VECTOR_MIGRATIONS,
    Migration,
)
from langgraph.store.postgres._sync import PostgresStore

__all__ = [
    "ANNIndexConfig",
    "BasePostgresStore",
    "C",
    "HNSWConfig",
    "IVFFlatConfig",
    "MIGRATIONS",
    "Migration",
    "PLACEHOLDER",
    "PgvectorMissingError",
    "PoolConfig",
    "PostgresIndexConfig",
    "PostgresStore",
    "Row",
    "TTLConfig",
    "VECTOR_MIGRATIONS",
    "get_distance_operator",
]


#: Stands for a query vector in statements built before it is embedded, in
#: the existing package; kept so code importing it still does.
PLACEHOLDER = object()


def get_distance_operator(store: Any) -> tuple[str, str]:
    """pgvector's distance expression for ``store``'s index config (over
    ``sv.embedding`` and a ``%s::%s`` query vector), and the expression of
    the score users see (over ``scored.neg_score``), as the existing package
    exposes them.
    """
    if not getattr(store, "index_config", None):
        raise ValueError(
            "semantic search needs an index config: pass index={'dims': ..., "
            f"'embed': ...}} when creating the {type(store).__name__}"
        )
    index = VectorIndex.from_config(store.index_config)
    distance = f"sv.embedding {index.operator} %s::%s"
    score = {
        "cosine": "1 - scored.neg_score",
        "l2": "-scored.neg_score",
        "inner_product": "-(scored.neg_score)",
    }[index.distance]
    return distance, score
