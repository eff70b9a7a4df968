"""Ways to build a store that the tests run everything through.

The same kinds as the savers' (``tests/savers.py``): one connection, a pool
with the recommended settings and with psycopg's defaults (no autocommit,
tuple rows), and a pipeline on one connection; sync and async.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.store.postgres import AsyncPostgresStore, PostgresStore

SYNC_STORE_KINDS = ["conn", "pool", "pool-defaults", "pipeline"]
ASYNC_STORE_KINDS = ["aconn", "apool", "apool-defaults", "apipeline"]

_RECOMMENDED = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@contextmanager
def sync_store(kind: str, uri: str, **options: Any) -> Iterator[PostgresStore]:
    """Yield a :class:`PostgresStore` on ``uri`` connected the ``kind`` way;
    ``options`` go to its constructor (``index=``, ``ttl=``, ``schema=``...)."""
    if kind == "conn":
        with Connection.connect(uri, **_RECOMMENDED) as conn:
            yield PostgresStore(conn, **options)
    elif kind == "pipeline":
        with Connection.connect(uri, **_RECOMMENDED) as conn, conn.pipeline() as pipe:
            yield PostgresStore(conn, pipe=pipe, **options)
    elif kind in ("pool", "pool-defaults"):
        kwargs = _RECOMMENDED if kind == "pool" else {}
        with ConnectionPool(uri, min_size=1, max_size=4, kwargs=kwargs) as pool:
            yield PostgresStore(pool, **options)
    else:
        raise ValueError(f"unknown sync store kind {kind!r}")


@asynccontextmanager
async def async_store(
    kind: str, uri: str, **options: Any
) -> AsyncIterator[AsyncPostgresStore]:
    """Yield an :class:`AsyncPostgresStore` on ``uri`` connected the ``kind`` way."""
    if kind == "aconn":
        async with await AsyncConnection.connect(uri, **_RECOMMENDED) as conn:
            yield AsyncPostgresStore(conn, **options)
    elif kind == "apipeline":
        async with await AsyncConnection.connect(uri, **_RECOMMENDED) as conn:
            async with conn.pipeline() as pipe:
                yield AsyncPostgresStore(conn, pipe=pipe, **options)
    elif kind in ("apool", "apool-defaults"):
        kwargs = _RECOMMENDED if kind == "apool" else {}
        async with AsyncConnectionPool(
            uri, min_size=1, max_size=4, kwargs=kwargs, open=False
        ) as pool:
            yield AsyncPostgresStore(pool, **options)
    else:
        raise ValueError(f"unknown async store kind {kind!r}")


def has_pgvector(uri: str) -> bool:
    """Whether the server at ``uri`` can create the pgvector extension."""
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return row is not None


def require_pgvector(uri: str) -> None:
    """Skip the test when the server has no pgvector, unless the run
    requires it (``REQUIRE_PGVECTOR=1``, as CI sets for PostgreSQL 18)."""
    if has_pgvector(uri):
        return
    reason = (
        "the test server has no pgvector extension (Debian's PostgreSQL 15 "
        "here has none; the embedded PostgreSQL 18 ships it)"
    )
    if os.environ.get("REQUIRE_PGVECTOR") == "1":
        pytest.fail(f"REQUIRE_PGVECTOR=1 but {reason}")
    pytest.skip(reason)
