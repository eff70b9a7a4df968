"""Connection types and helpers of the async saver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres._internal import sever
from langgraph.checkpoint.postgres.base import Steps, replacement_error

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


async def run_steps(conn: AsyncConnection[Any], steps: Steps) -> Any:
    """Execute the statements ``steps`` yields; return what it returns.

    See :func:`langgraph.checkpoint.postgres._internal.run_steps`.
    """
    rows: list[Any] | None = None
    try:
        while True:
            statement = steps.send(rows)
            cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
            async with cur:
                await cur.execute(
                    statement.sql, statement.params or None, prepare=False
                )
                rows = await cur.fetchall() if statement.fetch else None
    except StopIteration as done:
        return done.value


@asynccontextmanager
async def autocommit(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """Run the block with autocommit on, restoring the setting after it."""
    if conn.autocommit:
        yield
        return
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        if not conn.closed:
            await conn.set_autocommit(False)


class _Alarm:
    __slots__ = ("conn", "fired")

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        sever(self.conn)


@asynccontextmanager
async def guarded(
    conn: AsyncConnection[Any], *, timeout: float | None, pooled: bool
) -> AsyncIterator[None]:
    """Turn a broken connection into :class:`ConnectionLostError`, and a call
    that outlives ``timeout`` seconds into :class:`CallTimeoutError`.

    Cancelling the task instead (``asyncio.timeout``) would not do: psycopg
    then asks the server to cancel and waits for its answer, which a server
    that stopped answering never sends.
    """
    alarm = _Alarm(conn)
    handle = (
        asyncio.get_running_loop().call_later(timeout, alarm.fire)
        if timeout is not None
        else None
    )
    try:
        yield
    except psycopg.OperationalError as error:
        replacement = replacement_error(
            error,
            timed_out=alarm.fired,
            timeout=timeout,
            broken=conn.broken,
            pooled=pooled,
        )
        if replacement is None:
            raise
        raise replacement from error
    finally:
        if handle is not None:
            handle.cancel()
