"""Connection types and helpers of the sync saver."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

#: What the sync saver accepts: one connection, shared behind a lock, or a pool
#: from which each call borrows a connection of its own.
Conn = Connection[DictRow] | ConnectionPool[Connection[DictRow]]


@contextmanager
def get_connection(conn: Conn | Connection[Any]) -> Iterator[Connection[Any]]:
    """Yield ``conn`` itself, or a connection borrowed from the pool ``conn``."""
    if isinstance(conn, Connection):
        yield conn
    elif isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            yield pooled
    else:
        raise TypeError(
            "expected a psycopg Connection or psycopg_pool ConnectionPool, "
            f"got {type(conn).__name__}"
        )
