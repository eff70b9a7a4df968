"""How a client (a saver, a store) reaches its database, async twin.

The same names and shapes as :mod:`.access`, awaited; a call's deadline is a
timer on the event loop instead of the watchdog thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncCursor, AsyncPipeline
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres._pg.cursors import KeptCursors, Role
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    connection_lost_message,
    replacement_error,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.migrate_async import migrate, refuse_newer
from langgraph.checkpoint.postgres._pg.migrations import Migrations
from langgraph.checkpoint.postgres._pg.options import (
    CONNECTION_KWARGS,
    PoolConfig,
    pool_arguments,
)
from langgraph.checkpoint.postgres._pg.watchdog import WATCHDOG, cut_off

T = TypeVar("T")

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


@asynccontextmanager
async def connect(
    conn_string: str, *, pipeline: bool, pool_config: PoolConfig | None
) -> AsyncIterator[tuple[Conn, AsyncPipeline | None]]:
    """Open what ``from_conn_string`` gives a client (see
    :func:`langgraph.checkpoint.postgres._pg.access.connect`)."""
    if pool_config is not None:
        if pipeline:
            raise ValueError(
                "pipeline=True needs a single connection: leave out "
                "pool_config, or pipeline"
            )
        check = (
            AsyncConnectionPool.check_connection if pool_config.get("check") else None
        )
        async with AsyncConnectionPool(
            conn_string, check=check, open=False, **pool_arguments(pool_config)
        ) as pool:
            yield pool, None
        return
    async with await AsyncConnection.connect(conn_string, **CONNECTION_KWARGS) as conn:
        if pipeline:
            async with conn.pipeline() as pipe:
                yield conn, pipe
        else:
            yield conn, None


class Access:
    """How one client reaches its database (see
    :class:`langgraph.checkpoint.postgres._pg.access.Access`)."""

    __slots__ = ("source", "pipe", "pooled", "turn", "kept", "owner")

    def __init__(
        self,
        source: Conn,
        pipe: AsyncPipeline | None,
        lock: asyncio.Lock,
        *,
        owner: str,
    ) -> None:
        if isinstance(source, AsyncConnectionPool) and pipe is not None:
            raise ValueError(
                "a pipeline belongs to one connection: pass pipe= only with an "
                "AsyncConnection, not with an AsyncConnectionPool"
            )
        self.source = source
        self.pipe = pipe
        self.pooled = isinstance(source, AsyncConnectionPool)
        # A pool hands every call its own connection; only one shared
        # connection needs calls to take turns.
        self.turn: AbstractAsyncContextManager[Any] = (
            nullcontext() if self.pooled else lock
        )
        self.kept: KeptCursors[AsyncCursor[TupleRow]] = KeptCursors(
            enabled=pipe is None
        )
        self.owner = owner

    def connection(self, timeout: float | None) -> CallConnection:
        """The connection of one call that may take ``timeout`` seconds."""
        return CallConnection(self, timeout)

    def cursor(self, role: Role, timeout: float | None) -> CallCursor:
        """The cursor of one ``role`` call that may take ``timeout`` seconds."""
        return CallCursor(self, role, timeout)

    async def sync(self) -> None:
        """End a call in the caller's pipeline: send it and wait for results."""
        if self.pipe is not None:
            await self.pipe.sync()

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call``; if its pooled connection broke, run it once more
        (see :meth:`langgraph.checkpoint.postgres._pg.access.Access.retrying`)."""
        try:
            return await call()
        except ConnectionLostError:
            if not isinstance(self.source, AsyncConnectionPool):
                raise
            await self.source.check()
        return await call()

    async def migrate(
        self, migrations: Migrations | Sequence[Migrations], schema: str | None
    ) -> None:
        """Bring the database up to the latest version of ``migrations`` (one
        history, or several applied in turn, all checked first) in ``schema``
        (see :func:`.migrate_async.migrate`)."""
        histories = [migrations] if isinstance(migrations, Migrations) else migrations
        await self.retrying(partial(self._migrate_once, list(histories), schema))

    async def _migrate_once(
        self, histories: list[Migrations], schema: str | None
    ) -> None:
        # Unbounded by a timeout: building an index may take minutes.
        async with self.connection(None) as conn:
            if len(histories) > 1:
                await refuse_newer(conn, histories, schema)
            for migrations in histories:
                await migrate(conn, migrations, schema, pipelined=self.pipe is not None)
            await self.sync()


class _Alarm:
    __slots__ = ("conn", "fired", "cancelled")

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.fired = False
        self.cancelled = False

    def fire(self) -> None:
        self.fired = True
        cut_off(self)


class _Call:
    """What one call holds, entered and left as an async context manager.

    See :class:`langgraph.checkpoint.postgres._pg.access._Call`; the deadline
    here is a timer on the event loop. Cancelling the task instead
    (``asyncio.timeout``) would not do: psycopg then asks the server to
    cancel and waits for its answer, which a server that stopped answering
    never sends.
    """

    __slots__ = ("_access", "_timeout", "_borrowed", "_alarm")

    def __init__(self, access: Access, timeout: float | None) -> None:
        self._access = access
        self._timeout = timeout
        self._borrowed: AbstractAsyncContextManager[AsyncConnection[Any]] | None = None
        self._alarm: tuple[_Alarm, asyncio.TimerHandle] | None = None

    async def _enter(self) -> AsyncConnection[Any]:
        access = self._access
        await access.turn.__aenter__()
        try:
            source = access.source
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
            check_open(conn, pooled=access.pooled, owner=access.owner)
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
                    pooled=self._access.pooled,
                    owner=self._access.owner,
                )
                if replacement is None:
                    raise
                raise replacement from failure
            finally:
                if self._alarm is not None:
                    self._alarm[1].cancel()
                    if self._alarm[0].fired:
                        WATCHDOG.cancel(self._alarm[0])  # under the cut-off's lock
                    else:
                        self._alarm[0].cancelled = True
        except BaseException as failure:
            try:
                if self._borrowed is not None:
                    await self._borrowed.__aexit__(
                        type(failure), failure, failure.__traceback__
                    )
            finally:
                await self._access.turn.__aexit__(None, None, None)
            raise
        try:
            if self._borrowed is not None:
                await self._borrowed.__aexit__(None, None, None)
        finally:
            await self._access.turn.__aexit__(None, None, None)


class CallConnection(_Call):
    """The connection of one call (see :class:`_Call`)."""

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
    """The cursor of one call (see
    :class:`langgraph.checkpoint.postgres._pg.access.CallCursor`)."""

    __slots__ = ("_kept", "_role", "_cursor", "_transaction")

    def __init__(self, access: Access, role: Role, timeout: float | None) -> None:
        super().__init__(access, timeout)
        self._kept = access.kept
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


def check_open(conn: AsyncConnection[Any], *, pooled: bool, owner: str) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", pooled=pooled, owner=owner)
        )
    if conn.closed:
        raise RuntimeError(
            f"the {owner}'s connection is closed: a {owner} from "
            "from_conn_string() works only inside its `async with` block; keep "
            f"the block open while the graph runs, or give the {owner} an "
            "AsyncConnectionPool"
        )
