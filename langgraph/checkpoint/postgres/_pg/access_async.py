"""Connection types and helpers of the async saver."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres._pg.cursors import KeptCursors, Role
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    connection_lost_message,
    replacement_error,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.watchdog import sever

#: What the async saver accepts: one connection, shared behind a lock, or a
#: pool from which each call borrows a connection of its own.
Conn = AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]]


class _Alarm:
    __slots__ = ("conn", "fired")

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        sever(self.conn)


class _Call:
    """What one saver call holds, entered and left as an async context manager.

    See :class:`langgraph.checkpoint.postgres._pg.access._Call`; the deadline
    here is a timer on the event loop. Cancelling the task instead
    (``asyncio.timeout``) would not do: psycopg then asks the server to
    cancel and waits for its answer, which a server that stopped answering
    never sends.
    """

    __slots__ = ("_turn", "_source", "_timeout", "_pooled", "_borrowed", "_alarm")

    def __init__(
        self,
        turn: AbstractAsyncContextManager[Any],
        source: Conn,
        *,
        timeout: float | None,
        pooled: bool,
    ) -> None:
        self._turn = turn
        self._source = source
        self._timeout = timeout
        self._pooled = pooled
        self._borrowed: AbstractAsyncContextManager[AsyncConnection[Any]] | None = None
        self._alarm: tuple[_Alarm, asyncio.TimerHandle] | None = None

    async def _enter(self) -> AsyncConnection[Any]:
        await self._turn.__aenter__()
        try:
            source = self._source
            if isinstance(source, AsyncConnection):
                conn = source
            elif isinstance(source, AsyncConnectionPool):
                borrowing = source.connection()
                conn = await borrowing.__aenter__()
                self._borrowed = borrowing  # to give back, once borrowed
            else:
                raise TypeError(
                    "expected a psycopg AsyncConnection or psycopg_pool "
                    f"AsyncConnectionPool, got {type(source).__name__}"
                )
            check_open(conn, pooled=self._pooled)
        except BaseException as error:
            await self._leave(error, None)  # re-raises it
        if self._timeout is not None:
            alarm = _Alarm(conn)
            handle = asyncio.get_running_loop().call_later(self._timeout, alarm.fire)
            self._alarm = (alarm, handle)
        return conn

    async def _leave(
        self, error: BaseException | None, conn: AsyncConnection[Any] | None
    ) -> None:
        """Undo what entering did; re-raise ``error``, or what replaces it.

        ``conn`` is the connection once the deadline is armed: only errors
        from then on are the call's to translate.
        """
        try:
            try:
                if error is not None:
                    raise error
            except psycopg.OperationalError as failure:
                if conn is None:
                    raise
                replacement = replacement_error(
                    failure,
                    timed_out=self._alarm is not None and self._alarm[0].fired,
                    timeout=self._timeout,
                    broken=conn.broken,
                    pooled=self._pooled,
                )
                if replacement is None:
                    raise
                raise replacement from failure
            finally:
                if self._alarm is not None:
                    self._alarm[1].cancel()
        except BaseException as failure:
            try:
                if self._borrowed is not None:
                    await self._borrowed.__aexit__(
                        type(failure), failure, failure.__traceback__
                    )
            finally:
                await self._turn.__aexit__(None, None, None)
            raise
        try:
            if self._borrowed is not None:
                await self._borrowed.__aexit__(None, None, None)
        finally:
            await self._turn.__aexit__(None, None, None)


class CallConnection(_Call):
    """The connection of one saver call (see :class:`_Call`)."""

    __slots__ = ("_conn",)

    async def __aenter__(self) -> AsyncConnection[Any]:
        self._conn = await self._enter()
        return self._conn

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._leave(error, self._conn)


class CallCursor(_Call):
    """The cursor of one saver call (see
    :class:`langgraph.checkpoint.postgres._pg.access.CallCursor`)."""

    __slots__ = ("_kept", "_role", "_cursor", "_transaction")

    def __init__(
        self,
        turn: AbstractAsyncContextManager[Any],
        source: Conn,
        kept: KeptCursors[AsyncCursor[TupleRow]],
        role: Role,
        *,
        timeout: float | None,
        pooled: bool,
    ) -> None:
        super().__init__(turn, source, timeout=timeout, pooled=pooled)
        self._kept = kept
        self._role = role
        self._transaction: AbstractAsyncContextManager[Any] | None = None

    async def __aenter__(self) -> AsyncCursor[TupleRow]:
        conn = await self._enter()
        try:
            cur = self._cursor = self._kept.take(conn, self._role) or new_cursor(conn)
            if not conn.autocommit:
                self._transaction = conn.transaction()
                await self._transaction.__aenter__()
        except BaseException as error:
            await self._leave(error, conn)  # re-raises it
        return cur

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The body never raises psycopg's Rollback, the one exception that
        # leaving a transaction swallows: an error always propagates.
        cur = self._cursor
        conn = cur.connection
        try:
            try:
                if self._transaction is not None:
                    await self._transaction.__aexit__(kind, error, traceback)
                if error is not None:
                    raise error
            except BaseException:
                await cur.close()
                raise
            if not self._kept.keep(conn, self._role, cur):
                await cur.close()
        except BaseException as failure:
            await self._leave(failure, conn)
        else:
            await self._leave(None, conn)


def new_cursor(conn: AsyncConnection[Any]) -> AsyncCursor[TupleRow]:
    cur = conn.cursor(binary=True, row_factory=tuple_row)
    use_orjson(cur)
    return cur


def check_open(conn: AsyncConnection[Any], *, pooled: bool) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", pooled=pooled)
        )
    if conn.closed:
        raise RuntimeError(
            "the saver's connection is closed: a saver from from_conn_string() "
            "works only inside its `async with` block; keep the block open "
            "while the graph runs, or give the saver an AsyncConnectionPool"
        )
