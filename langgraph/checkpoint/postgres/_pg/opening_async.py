"""What a client is given or opens, async twin of :mod:`.opening`: the same
names and shapes, awaited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncPipeline
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    Recovery,
    connection_lost_message,
)
from langgraph.checkpoint.postgres._pg.options import (
    CONNECTION_KWARGS,
    PoolConfig,
    pool_arguments,
)

#: What an async client accepts: one connection, shared behind a lock, or a
#: pool from which each call borrows a connection of its own.
Conn = AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]]


@asynccontextmanager
async def get_connection(conn: Conn) -> AsyncIterator[AsyncConnection[DictRow]]:
    """Yield ``conn`` itself, or a connection borrowed from the pool ``conn``
    (given back when the block ends), as ``langgraph-checkpoint-postgres``'s
    helper of the same name does.

    >>> async with get_connection(pool) as conn:  # doctest: +SKIP
    ...     await conn.execute("SELECT 1")
    """
    if isinstance(conn, AsyncConnection):
        yield conn
    elif isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as borrowed:
            yield borrowed
    else:
        raise TypeError(f"Invalid connection type: {type(conn)}")


class _Access(Protocol):
    """What :class:`Opened` sets and reads on a client's ``Access`` (see
    :class:`langgraph.checkpoint.postgres._pg.opening._Access`)."""

    source: Conn
    pipe: AsyncPipeline | None
    owner: str
    recovery: Recovery
    opened: Opened | None


class _Client(Protocol):
    """What :meth:`Opened.adopt` needs of a client (see
    :class:`langgraph.checkpoint.postgres._pg.opening._Client`)."""

    @property
    def _db(self) -> _Access: ...

    conn: Any
    pipe: Any


C = TypeVar("C", bound=_Client)


def sweeping_check(
    pools: list[AsyncConnectionPool[Any]],
) -> Callable[[Any], Awaitable[None]]:
    """A pool ``check=`` that sweeps every idle connection when one fails
    (see :func:`langgraph.checkpoint.postgres._pg.opening.sweeping_check`)."""

    async def check(conn: Any) -> None:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            for pool in pools:
                await pool.check()
            raise

    return check


class Opened:
    """What ``from_conn_string`` opened for a client (see
    :class:`langgraph.checkpoint.postgres._pg.opening.Opened`)."""

    __slots__ = ("conninfo", "conn", "pipe", "finished", "_client", "_pipe_block")

    def __init__(self, conninfo: str, conn: Conn, pipe: AsyncPipeline | None) -> None:
        self.conninfo = conninfo
        self.conn: Conn = conn
        self.pipe = pipe
        self.finished = False
        self._client: _Client | None = None
        self._pipe_block: AbstractAsyncContextManager[AsyncPipeline] | None = None

    def adopt(self, client: C) -> C:
        """Let ``client`` reopen its connection from the conninfo when it is
        lost (nothing to do for a pool, which replaces its own); return it."""
        if isinstance(self.conn, AsyncConnection):
            self._client = client
            client._db.opened = self
            client._db.recovery = "reconnect"
        return client

    async def reopen(self) -> AsyncConnection[DictRow]:
        """Open a connection in place of the lost one, in the caller's turn;
        raise :class:`ConnectionLostError` if no server accepts it."""
        await self._close_current()
        try:
            conn = await AsyncConnection.connect(self.conninfo, **CONNECTION_KWARGS)
        except psycopg.OperationalError as error:
            owner = "saver" if self._client is None else self._client._db.owner
            message = connection_lost_message(
                f"reconnecting failed: {error}", recovery="reconnect", owner=owner
            )
            raise ConnectionLostError(message) from error
        pipe = None
        if self.pipe is not None:
            self._pipe_block = conn.pipeline()
            pipe = await self._pipe_block.__aenter__()
        self.conn, self.pipe = conn, pipe
        if self._client is not None:
            self._client._db.source = conn
            self._client._db.pipe = pipe
            self._client.conn = conn
            self._client.pipe = pipe
        return conn

    async def _close_current(self) -> None:
        """Close the current connection (and leave its pipeline), quietly."""
        conn = self.conn
        try:
            if self._pipe_block is not None:
                block, self._pipe_block = self._pipe_block, None
                if not conn.closed:
                    await block.__aexit__(None, None, None)
        except psycopg.Error:
            pass
        finally:
            if isinstance(conn, AsyncConnection):
                await conn.close()

    async def close(self) -> None:
        """End of the ``from_conn_string`` block: close the current
        connection, and reopen none from now on."""
        self.finished = True
        await self._close_current()


@asynccontextmanager
async def connect(
    conn_string: str, *, pipeline: bool, pool_config: PoolConfig | None
) -> AsyncIterator[Opened]:
    """Open what ``from_conn_string`` gives a client (see
    :func:`langgraph.checkpoint.postgres._pg.opening.connect`)."""
    if pool_config is not None:
        if pipeline:
            raise ValueError(
                "pipeline=True needs a single connection: leave out "
                "pool_config, or pipeline"
            )
        pools: list[AsyncConnectionPool[Any]] = []
        check = sweeping_check(pools) if pool_config.get("check") else None
        async with AsyncConnectionPool(
            conn_string, check=check, open=False, **pool_arguments(pool_config)
        ) as pool:
            pools.append(pool)
            yield Opened(conn_string, pool, None)
        return
    conn = await AsyncConnection.connect(conn_string, **CONNECTION_KWARGS)
    opened = Opened(conn_string, conn, None)
    try:
        if pipeline:
            opened._pipe_block = conn.pipeline()
            opened.pipe = await opened._pipe_block.__aenter__()
        yield opened
        # Leaving the pipeline sends what is queued and raises its errors.
        if opened._pipe_block is not None and not opened.conn.closed:
            block, opened._pipe_block = opened._pipe_block, None
            await block.__aexit__(None, None, None)
    finally:
        await opened.close()
