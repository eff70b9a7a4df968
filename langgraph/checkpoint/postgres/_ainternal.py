"""Connection types and helpers of the async saver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

#: What the async saver accepts: one connection, shared behind a lock, or a
#: pool from which each call borrows a connection of its own.
Conn = AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]]


@asynccontextmanager
async def get_connection(
    conn: Conn | AsyncConnection[Any],
) -> AsyncIterator[AsyncConnection[Any]]:
    """Yield ``conn`` itself, or a connection borrowed from the pool ``conn``."""
    if isinstance(conn, AsyncConnection):
        yield conn
    elif isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            yield pooled
    else:
        raise TypeError(
            "expected a psycopg AsyncConnection or psycopg_pool "
            f"AsyncConnectionPool, got {type(conn).__name__}"
        )
