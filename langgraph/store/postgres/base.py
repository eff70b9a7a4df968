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

from langgraph.store.base import TTLConfig

from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.store.postgres._config import (
    ANNIndexConfig,
    HNSWConfig,
    IVFFlatConfig,
    PostgresIndexConfig,
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
    "PgvectorMissingError",
    "PoolConfig",
    "PostgresIndexConfig",
    "PostgresStore",
    "Row",
    "TTLConfig",
    "VECTOR_MIGRATIONS",
]
