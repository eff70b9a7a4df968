"""How a client (a saver, a store) reaches its database, async twin.

The same names and shapes as :mod:`.access`, awaited; a call's deadline is a
timer on the event loop instead of the watchdog thread, and a retry's pause
an ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncCursor, AsyncPipeline
from psycopg.rows import TupleRow, tuple_row
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres._pg import failover
from langgraph.checkpoint.postgres._pg.cursors import KeptCursors, Role
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    ReadOnlyServerError,
    Recovery,
    connection_lost_message,
    replacement_error,
    setup_read_only_message,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.migrate_async import migrate, refuse_newer
from langgraph.checkpoint.postgres._pg.migrations import Migrations
from langgraph.checkpoint.postgres._pg.opening_async import Conn, Opened
from langgraph.checkpoint.postgres._pg.watchdog import WATCHDOG, cut_off

T = TypeVar("T")


class Access:
    """How one client reaches its database (see
    :class:`langgraph.checkpoint.postgres._pg.access.Access`)."""

    __slots__ = (
        "source",
        "pipe",
        "pooled",
        "turn",
        "kept",
        "owner",
        "timeout",
        "recovery",
        "opened",
        "watch",
        "logger",
    )

    def __init__(
        self,
        source: Conn,
        pipe: AsyncPipeline | None,
        lock: asyncio.Lock,
        *,
        owner: str,
        timeout: float | None = None,
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
        self.timeout = timeout
        self.recovery: Recovery = "pool" if self.pooled else "none"
        self.opened: Opened | None = None
        self.watch = failover.TimelineWatch()
        self.logger = logging.getLogger(failover.logger_name(owner))

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
        """Run ``call``, again and again while a failover interrupts it (see
        :meth:`langgraph.checkpoint.postgres._pg.access.Access.retrying`)."""
        if self.recovery == "none":
            return await call()
        budget: failover.RetryBudget | None = None
        while True:
            try:
                if budget is None:
                    result = await call()
                else:
                    token = failover.RETRY_DEADLINE.set(budget.deadline)
                    try:
                        result = await call()
                    finally:
                        failover.RETRY_DEADLINE.reset(token)
            except Exception as error:
                if not failover.is_failover_error(error):
                    raise
                # The next new connection may be on a promoted standby.
                self.watch.suspect = True
                if budget is None:
                    budget = failover.RetryBudget(failover.retry_seconds(self.timeout))
                pause = budget.next_pause(time.monotonic())
                if pause is None:
                    raise
                self.logger.info(
                    "%s call failed (%s); retrying in %.2f s (failover)",
                    self.owner,
                    type(error).__name__,
                    pause,
                )
                if isinstance(error, ConnectionLostError) and isinstance(
                    self.source, AsyncConnectionPool
                ):
                    # Replace every dead idle connection now, so that the
                    # retry does not borrow the next dead one.
                    await self.source.check()
                await asyncio.sleep(pause)
                continue
            return result

    def needs_probe(self, conn: AsyncConnection[Any]) -> bool:
        """Whether to read the timeline after this call on ``conn`` (see
        :meth:`langgraph.checkpoint.postgres._pg.access.Access.needs_probe`)."""
        if not self.watch.unseen(conn):
            return False
        if self.watch.suspect:
            return True
        pool = self.source if self.pooled else None
        return self.watch.should_probe(failover.connections_lost(pool))

    async def probe_timeline(self, conn: AsyncConnection[Any]) -> None:
        """Note the timeline of the server of ``conn``, a connection new to
        the client; never raises (see
        :meth:`langgraph.checkpoint.postgres._pg.access.Access.probe_timeline`)."""
        lost = failover.connections_lost(self.source if self.pooled else None)
        try:
            async with conn.transaction() if not conn.autocommit else nullcontext():
                # A plain cursor, whatever cursor_factory the connection has.
                async with AsyncCursor(conn, row_factory=tuple_row) as cur:
                    await cur.execute(failover.TIMELINE_SQL, prepare=False)
                    row = await cur.fetchone()
        except psycopg.Error as error:
            self.logger.debug("could not read the server's timeline: %s", error)
            return
        warning = self.watch.observe(
            failover.timeline_of(row), lost=lost, owner=self.owner
        )
        if warning is not None:
            self.logger.warning(warning)

    async def migrate(
        self, migrations: Migrations | Sequence[Migrations], schema: str | None
    ) -> None:
        """Bring the database up to the latest version of ``migrations`` (one
        history, or several applied in turn, all checked first) in ``schema``
        (see :func:`.migrate_async.migrate`); a read-only standby is refused
        with :class:`ReadOnlyServerError` saying so."""
        histories = [migrations] if isinstance(migrations, Migrations) else migrations
        try:
            await self.retrying(partial(self._migrate_once, list(histories), schema))
        except ReadOnlyServerError as error:
            raise ReadOnlyServerError(
                setup_read_only_message(error.__cause__ or error, owner=self.owner)
            ) from error

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

    __slots__ = ("_access", "_timeout", "_borrowed", "_alarm", "_probe")

    def __init__(self, access: Access, timeout: float | None) -> None:
        self._access = access
        self._timeout = timeout
        self._borrowed: AbstractAsyncContextManager[AsyncConnection[Any]] | None = None
        self._alarm: tuple[_Alarm, asyncio.TimerHandle] | None = None
        # See access._Call: the timeline of a new connection, after the call.
        self._probe = False

    async def _enter(self) -> AsyncConnection[Any]:
        access = self._access
        await access.turn.__aenter__()
        try:
            source = access.source
            if isinstance(source, AsyncConnection):
                opened = access.opened
                if source.closed and opened is not None and not opened.finished:
                    # Lost (or closed after it reached a read-only server):
                    # the client owns it, so it opens another, in its turn.
                    source = await opened.reopen()
                conn = source
            elif isinstance(source, AsyncConnectionPool):
                # A retry waits for a connection no longer than it may retry
                # (a moment at least: a zero wait fails even a ready one).
                deadline = failover.RETRY_DEADLINE.get()
                if deadline is None:
                    borrowing = source.connection()
                else:
                    wait = min(deadline - time.monotonic(), source.timeout)
                    borrowing = source.connection(timeout=max(0.05, wait))
                conn = await borrowing.__aenter__()
                self._borrowed = borrowing  # to give back, once borrowed
            else:
                raise TypeError(
                    "expected a psycopg AsyncConnection or psycopg_pool "
                    f"AsyncConnectionPool, got {type(source).__name__}"
                )
            check_open(conn, recovery=access.recovery, owner=access.owner)
        except BaseException as error:
            await self._leave(error, None)  # re-raises it
        if self._timeout is not None:
            alarm = _Alarm(conn)
            handle = asyncio.get_running_loop().call_later(self._timeout, alarm.fire)
            self._alarm = (alarm, handle)
        # See access._Call._enter: a new connection may be a new timeline.
        self._probe = access.recovery != "none" and access.needs_probe(conn)
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
                if self._probe and conn is not None:
                    # After the call's work (see access._Call._leave).
                    await self._access.probe_timeline(conn)
            except psycopg.Error as failure:
                if conn is None:
                    raise
                replacement = replacement_error(
                    failure,
                    timed_out=self._alarm is not None and self._alarm[0].fired,
                    timeout=self._timeout,
                    broken=conn.broken,
                    standby=in_hot_standby(conn),
                    recovery=self._access.recovery,
                    owner=self._access.owner,
                )
                if replacement is None:
                    raise
                if (
                    isinstance(replacement, ReadOnlyServerError)
                    and self._access.recovery != "none"
                ):
                    # Closed, a pool replaces it and a client's own is
                    # reopened: the retry may reach the primary.
                    await conn.close()
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


def in_hot_standby(conn: AsyncConnection[Any]) -> bool | None:
    """Whether the server of ``conn`` is a hot standby (see
    :func:`langgraph.checkpoint.postgres._pg.access.in_hot_standby`)."""
    try:
        status = conn.info.parameter_status("in_hot_standby")
    except psycopg.Error:
        return None
    return None if status is None else status == "on"


def check_open(conn: AsyncConnection[Any], *, recovery: Recovery, owner: str) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", recovery=recovery, owner=owner)
        )
    if conn.closed:
        raise RuntimeError(
            f"the {owner}'s connection is closed: a {owner} from "
            "from_conn_string() works only inside its `async with` block; keep "
            f"the block open while the graph runs, or give the {owner} an "
            "AsyncConnectionPool"
        )
