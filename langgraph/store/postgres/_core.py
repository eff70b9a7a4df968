"""The store's I/O-free core: its configuration, plans and setup steps.

:class:`BasePostgresStore` holds what both shells (``PostgresStore``,
``AsyncPostgresStore``) share: the checked index and TTL configuration, the
schema and timeout, and the decisions of each call, made without touching
the database. The shells borrow a connection, run what it prepared and hand
the rows back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import psycopg
from langgraph.store.base import Op, TTLConfig
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres._pg.migrations import Migrations
from langgraph.checkpoint.postgres._pg.opening import Conn as SyncConn
from langgraph.checkpoint.postgres._pg.opening_async import Conn as AsyncConn
from langgraph.checkpoint.postgres._pg.options import check_timeout
from langgraph.checkpoint.postgres._pg.schema import check_schema
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import Sweeping
from langgraph.store.postgres import _sql
from langgraph.store.postgres._batch import BatchPlan
from langgraph.store.postgres._config import (
    PostgresIndexConfig,
    VectorIndex,
    check_ttl_config,
    legacy_index_config,
    make_embeddings,
)
from langgraph.store.postgres._migrations import (
    EXT_MIGRATIONS,
    IVFFLAT_READY_SQL,
    IVFFLAT_VECTORS_PER_LIST,
    MIGRATIONS,
    STORE_MIGRATIONS,
    VECTOR_MIGRATIONS,
    vector_migrations,
)
from langgraph.store.postgres._plan import StoreSettings

if TYPE_CHECKING:
    from datetime import datetime

    from langchain_core.embeddings import Embeddings

C = TypeVar("C", bound=SyncConn | AsyncConn)

#: Expired items one sweep transaction deletes at most, so a sweep of many
#: never holds many row locks at once.
SWEEP_BATCH = 1000

#: The store's TTL sweeper (see ``_pg.sweeper``); it logs what each sweep
#: deleted, as langgraph-checkpoint-postgres's store does.
SWEEPING: Sweeping[int] = Sweeping(
    "store TTL sweeper",
    logging.getLogger("langgraph.store.postgres"),
    lambda swept: f"deleted {swept} expired items" if swept else None,
)


class Row(TypedDict):
    """A row of the ``store`` table, as the existing package names it."""

    key: str
    value: Any
    prefix: str
    created_at: datetime
    updated_at: datetime


class PgvectorMissingError(RuntimeError):
    """The server has no pgvector, which an ``index=`` config needs."""


#: What the server says when ``CREATE EXTENSION vector`` cannot work.
PGVECTOR_MISSING = (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported)


def pgvector_missing(error: psycopg.Error) -> PgvectorMissingError:
    return PgvectorMissingError(
        "the store's index= config needs the pgvector extension, which this "
        "PostgreSQL server does not have: install it (e.g. the "
        "postgresql-NN-pgvector package, or the pgvector/pgvector Docker "
        "image), or leave out index= to store without semantic search "
        f"({error})"
    )


#: What the server says when the store's tables (or our columns) are missing.
NOT_SET_UP = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)


def not_set_up(error: psycopg.Error) -> psycopg.Error:
    """``error`` (same class, so handlers still catch it), saying what to do."""
    return type(error)(
        "the store's tables are missing or older than this package "
        f"({str(error).splitlines()[0]}): call store.setup() once, with the same "
        "index= config, before using the store"
    )


def parse_version(text: str | None) -> tuple[int, ...]:
    """``'0.8.1'`` as ``(0, 8, 1)``; unknown parts count as 0."""
    parts = []
    for part in (text or "0").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class BasePostgresStore(Generic[C]):
    """What ``PostgresStore`` and ``AsyncPostgresStore`` share, free of I/O."""

    MIGRATIONS = MIGRATIONS
    VECTOR_MIGRATIONS = VECTOR_MIGRATIONS
    supports_ttl: bool = True

    conn: C
    index_config: dict[str, Any] | None
    embeddings: Embeddings | None
    ttl_config: TTLConfig | None
    _deserializer: Callable[[Any], dict[str, Any]] | None

    def _configure(
        self,
        *,
        index: PostgresIndexConfig | None,
        ttl: TTLConfig | None,
        schema: str | None,
        timeout: float | None,
        deserializer: Callable[[Any], dict[str, Any]] | None,
    ) -> None:
        self.schema = check_schema(schema)
        self.timeout = check_timeout(timeout)
        self.ttl_config = check_ttl_config(ttl)
        self._deserializer = deserializer
        self._index: VectorIndex | None = None
        self.index_config = None
        self.embeddings = None
        if index is not None:
            self._index = VectorIndex.from_config(index)
            self.index_config = legacy_index_config(index, self._index)
            self.embeddings = make_embeddings(index)
        self._settings = StoreSettings(
            schema=self.schema,
            index=self._index,
            omit_expired=bool(self.ttl_config and self.ttl_config.get("omit_expired")),
        )

    @property
    def _omit_expired(self) -> bool:
        """Whether reads leave out expired items the sweeper has not deleted."""
        return self._settings.omit_expired

    def _plan(self, ops: Iterable[Op]) -> BatchPlan:
        return BatchPlan.of(ops, self._settings)

    def _needs_pgvector_version(self, plan: BatchPlan) -> bool:
        return plan.has_semantic_search and self._settings.pgvector is None

    def _pgvector_version_statement(self) -> Statement:
        return Statement(_sql.PGVECTOR_VERSION_SQL, {})

    def _remember_pgvector(self, rows: list[Any]) -> None:
        self._settings.pgvector = parse_version(rows[0][0] if rows else None)

    def _migrations(self) -> list[Migrations]:
        """What ``setup()`` applies, in order (an IVFFlat index apart: see
        :meth:`_ivfflat_statement`)."""
        migrations = [STORE_MIGRATIONS, EXT_MIGRATIONS]
        if self._index is not None:
            ann_index = self._index.kind != "ivfflat"
            migrations.append(vector_migrations(self._index, ann_index=ann_index))
        return migrations

    def _ivfflat_statement(self) -> Statement | None:
        """Whether to build the IVFFlat index yet (``None``: no such index)."""
        if self._index is None or self._index.kind != "ivfflat":
            return None
        enough = self._index.lists * IVFFLAT_VECTORS_PER_LIST
        sql = _sql.render(IVFFLAT_READY_SQL, self.schema)
        return Statement(sql, {"enough": enough})

    def _ivfflat_migrations(self) -> Migrations:
        assert self._index is not None
        return vector_migrations(self._index)

    def _embedding_type_statement(self) -> Statement:
        table = _sql.render("$store_vectors", self.schema)
        return Statement(_sql.EMBEDDING_TYPE_SQL, {"table": table})

    def _check_embedding_type(self, rows: list[Any]) -> None:
        """Refuse an index config whose vectors the table cannot hold."""
        index = self._index
        if index is None or not rows:
            return
        declared = rows[0][0]
        wanted = f"{index.vector_type}({index.dims})"
        if declared != wanted:
            raise ValueError(
                f"store_vectors holds {declared} embeddings, but the index "
                f"config asks for {wanted}: make 'dims' and 'vector_type' match "
                "the stored embeddings, or use another schema= (or database) "
                "for the new embedding model"
            )

    def _sweep_statement(self) -> Statement:
        return Statement(
            _sql.render(_sql.SWEEP_SQL, self.schema), {"limit": SWEEP_BATCH}
        )
