"""The names code written for ``langgraph-checkpoint-postgres`` 3.2.0 imports.

The lists below were read from langgraph-checkpoint-postgres 3.2.0 installed in
a separate virtualenv (never this one), by importing each module there and
printing its ``__all__`` and ``vars()``; ``get_connection`` was read from its
source (``_internal.py`` and ``_ainternal.py``). The shallow savers
(``ShallowPostgresSaver``, ``AsyncShallowPostgresSaver``) have tests of their
own in ``tests/test_shallow.py``.

Each name is imported inside its test, so that a missing one fails that test
alone.
"""

from __future__ import annotations

import importlib
import typing
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

#: ``__all__`` of the two public modules in 3.2.0.
UPSTREAM_ALL = {
    "langgraph.checkpoint.postgres": [
        "PostgresSaver",
        "BasePostgresSaver",
        "ShallowPostgresSaver",
        "Conn",
    ],
    "langgraph.checkpoint.postgres.aio": [
        "AsyncPostgresSaver",
        "AsyncShallowPostgresSaver",
        "Conn",
    ],
}

#: Other 3.2.0 names that code imports: ``MIGRATIONS`` and ``BasePostgresSaver``
#: of ``.base``; ``Conn`` and ``get_connection`` of ``._internal`` (sync) and
#: ``._ainternal`` (async).
UPSTREAM_MIGRATION_COUNT = 10  # len(MIGRATIONS) in 3.2.0: versions 0-9

#: What migrations 0-9 leave in a database (read from one that 3.2.0's
#: ``setup()`` created): (table, column, type, nullable, default), then
#: (index, definition).
UPSTREAM_COLUMNS = [
    ("checkpoint_blobs", "thread_id", "text", "NO", None),
    ("checkpoint_blobs", "checkpoint_ns", "text", "NO", "''::text"),
    ("checkpoint_blobs", "channel", "text", "NO", None),
    ("checkpoint_blobs", "version", "text", "NO", None),
    ("checkpoint_blobs", "type", "text", "NO", None),
    ("checkpoint_blobs", "blob", "bytea", "YES", None),
    ("checkpoint_migrations", "v", "integer", "NO", None),
    ("checkpoint_writes", "thread_id", "text", "NO", None),
    ("checkpoint_writes", "checkpoint_ns", "text", "NO", "''::text"),
    ("checkpoint_writes", "checkpoint_id", "text", "NO", None),
    ("checkpoint_writes", "task_id", "text", "NO", None),
    ("checkpoint_writes", "idx", "integer", "NO", None),
    ("checkpoint_writes", "channel", "text", "NO", None),
    ("checkpoint_writes", "type", "text", "YES", None),
    ("checkpoint_writes", "blob", "bytea", "NO", None),
    ("checkpoint_writes", "task_path", "text", "NO", "''::text"),
    ("checkpoints", "thread_id", "text", "NO", None),
    ("checkpoints", "checkpoint_ns", "text", "NO", "''::text"),
    ("checkpoints", "checkpoint_id", "text", "NO", None),
    ("checkpoints", "parent_checkpoint_id", "text", "YES", None),
    ("checkpoints", "type", "text", "YES", None),
    ("checkpoints", "checkpoint", "jsonb", "NO", None),
    ("checkpoints", "metadata", "jsonb", "NO", "'{}'::jsonb"),
]
UPSTREAM_INDEXES = [
    ("checkpoint_blobs_pkey", "(thread_id, checkpoint_ns, channel, version)"),
    ("checkpoint_blobs_thread_id_idx", "(thread_id)"),
    ("checkpoint_migrations_pkey", "(v)"),
    (
        "checkpoint_writes_pkey",
        "(thread_id, checkpoint_ns, checkpoint_id, task_id, idx)",
    ),
    ("checkpoint_writes_thread_id_idx", "(thread_id)"),
    ("checkpoints_pkey", "(thread_id, checkpoint_ns, checkpoint_id)"),
    ("checkpoints_thread_id_idx", "(thread_id)"),
]


def _origins(union: Any) -> set[Any]:
    return {typing.get_origin(arg) or arg for arg in typing.get_args(union)}


@pytest.mark.parametrize("module", list(UPSTREAM_ALL))
def test_all_lists_the_upstream_names(module: str) -> None:
    mod = importlib.import_module(module)
    expected = set(UPSTREAM_ALL[module])
    assert expected <= set(mod.__all__)
    for name in expected:
        assert getattr(mod, name) is not None


def test_base_postgres_saver_is_one_class_that_both_savers_extend() -> None:
    from langgraph.checkpoint.postgres import BasePostgresSaver, PostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.checkpoint.postgres.base import BasePostgresSaver as FromBase

    assert BasePostgresSaver is FromBase
    assert issubclass(BasePostgresSaver, BaseCheckpointSaver)
    assert issubclass(PostgresSaver, BasePostgresSaver)
    assert issubclass(AsyncPostgresSaver, BasePostgresSaver)


def test_migrations_is_a_list_of_sql_that_starts_with_upstreams() -> None:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.base import MIGRATIONS, BasePostgresSaver

    assert isinstance(MIGRATIONS, list)
    assert all(isinstance(m, str) and m.strip() for m in MIGRATIONS)
    assert len(MIGRATIONS) >= UPSTREAM_MIGRATION_COUNT
    assert BasePostgresSaver.MIGRATIONS == MIGRATIONS
    assert PostgresSaver.MIGRATIONS == MIGRATIONS


def test_migrations_0_to_9_create_the_upstream_layout(empty_db_uri: str) -> None:
    from langgraph.checkpoint.postgres.base import MIGRATIONS

    with psycopg.connect(empty_db_uri, autocommit=True) as conn:
        for migration in MIGRATIONS[:UPSTREAM_MIGRATION_COUNT]:
            conn.execute(migration)
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default
            FROM information_schema.columns WHERE table_schema = current_schema()
            ORDER BY table_name, ordinal_position"""
        ).fetchall()
        indexes = conn.execute(
            """SELECT indexname, substring(indexdef from '\\(.*\\)$')
            FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"""
        ).fetchall()
    assert columns == UPSTREAM_COLUMNS
    assert indexes == UPSTREAM_INDEXES


def test_conn_is_the_sync_union_and_the_async_one_in_aio() -> None:
    from langgraph.checkpoint.postgres import Conn, _ainternal, _internal
    from langgraph.checkpoint.postgres.aio import Conn as AsyncConn

    assert _origins(Conn) == {Connection, ConnectionPool}
    assert _origins(AsyncConn) == {AsyncConnection, AsyncConnectionPool}
    assert Conn == _internal.Conn
    assert AsyncConn == _ainternal.Conn


def test_get_connection_is_a_sync_context_manager_on_connections_and_pools(
    db_uri: str,
) -> None:
    from langgraph.checkpoint.postgres._internal import get_connection

    with Connection.connect(db_uri) as conn:
        manager = get_connection(conn)
        assert isinstance(manager, AbstractContextManager)
        with manager as got:
            assert got is conn
    with ConnectionPool(db_uri, min_size=1, max_size=1) as pool:
        with get_connection(pool) as got:
            assert isinstance(got, Connection)
            assert got.execute("SELECT 1").fetchone() == (1,)
            with pytest.raises(PoolTimeout):  # borrowed for the block
                pool.getconn(timeout=0.1)
        with pool.connection(timeout=5) as again:  # and given back after it
            assert again is got
    with pytest.raises(TypeError, match="Invalid connection type"):
        with get_connection(object()):  # type: ignore[arg-type]
            pass


async def test_get_connection_is_an_async_context_manager_on_connections_and_pools(
    db_uri: str,
) -> None:
    from langgraph.checkpoint.postgres._ainternal import get_connection

    async with await AsyncConnection.connect(db_uri) as conn:
        manager = get_connection(conn)
        assert isinstance(manager, AbstractAsyncContextManager)
        async with manager as got:
            assert got is conn
    async with AsyncConnectionPool(db_uri, min_size=1, max_size=1, open=False) as pool:
        async with get_connection(pool) as got:
            assert isinstance(got, AsyncConnection)
            assert await (await got.execute("SELECT 1")).fetchone() == (1,)
            with pytest.raises(PoolTimeout):
                await pool.getconn(timeout=0.1)
        async with pool.connection(timeout=5) as again:
            assert again is got
    with Connection.connect(db_uri) as sync_conn:
        with pytest.raises(TypeError, match="Invalid connection type"):
            async with get_connection(sync_conn):  # type: ignore[arg-type]
                pass
