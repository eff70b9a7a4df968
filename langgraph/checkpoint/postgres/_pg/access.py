"""How a client (a saver, a store) reaches its database, sync twin.

:class:`Access` holds what the client was given (a connection, a pool, or a
connection and its pipeline) and hands each call the connection or cursor it
uses: borrowed from the pool, or taken in turn on the shared connection,
checked, and bounded by the call's timeout. It retries a call that a
failover interrupted (see :mod:`.failover`) on another connection, when the
client can get one, and runs the client's migrations. The async twin,
:mod:`.access_async`, has the same names and shapes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg import Connection, Cursor, Pipeline
from psycopg.rows import TupleRow, tuple_row
from psycopg_pool import ConnectionPool

from langgraph.checkpoint.postgres._pg import failover
from langgraph.checkpoint.postgres._pg.cursors import (
    KeptCursors,
    Role,
    streaming_cursor,
)
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    ReadOnlyServerError,
    Recovery,
    connection_lost_message,
    replacement_error,
    setup_read_only_message,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.migrate import migrate, refuse_newer
from langgraph.checkpoint.postgres._pg.migrations import Migrations
from langgraph.checkpoint.postgres._pg.opening import Conn, Opened
from langgraph.checkpoint.postgres._pg.watchdog import WATCHDOG, Alarm

T = TypeVar("T")


class Access:
    """How one client reaches its database: the connection, pool or pipeline
    it was given, and the calls it makes through them.

    With a pool each call borrows a connection of its own; on one shared
    connection calls take turns with ``lock``. ``owner`` names the client in
    error messages ("saver", "store"); ``timeout`` is its call timeout,
    which also bounds how long a call retries failover errors. Each
    connection keeps a cursor per :data:`.cursors.Role` for the next call
    (not in a caller's pipeline, whose results may arrive after the call
    returns).

    ``recovery`` says how a failed call gets another connection: from the
    pool, by reopening one the client owns (``opened``, set by
    :meth:`Opened.adopt`), or not at all (a caller's connection).
    """

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
        pipe: Pipeline | None,
        lock: threading.Lock,
        *,
        owner: str,
        timeout: float | None = None,
    ) -> None:
        if isinstance(source, ConnectionPool) and pipe is not None:
            raise ValueError(
                "a pipeline belongs to one connection: pass pipe= only with a "
                "Connection, not with a ConnectionPool"
            )
        self.source = source
        self.pipe = pipe
        self.pooled = isinstance(source, ConnectionPool)
        # A pool hands every call its own connection; only one shared
        # connection needs calls to take turns.
        self.turn: AbstractContextManager[Any] = nullcontext() if self.pooled else lock
        self.kept: KeptCursors[Cursor[TupleRow]] = KeptCursors(enabled=pipe is None)
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

    def sync(self) -> None:
        """End a call in the caller's pipeline: send it and wait for results."""
        if self.pipe is not None:
            self.pipe.sync()

    def retrying(self, call: Callable[[], T]) -> T:
        """Run ``call``, again and again while a failover interrupts it.

        A failover error (:func:`.failover.is_failover_error`: a lost
        connection, a server shutting down, no connection from the pool in
        time, a write that reached a read-only server) is retried after a
        short pause, growing, for up to :func:`.failover.retry_seconds` from
        the first one, if the client can get another connection: a pool
        lends a fresh one (its dead idle connections are swept first), a
        connection the client opened is reopened. Other errors, and every
        error on a connection of the caller's, are raised at once. ``call``
        must be safe to repeat (a read, an upsert, an idempotent delete, a
        migration), as every call of a client is.

        A connection new to the client has its server's timeline read after
        its first call, if a failover may have happened since the last look
        (:meth:`needs_probe`): a new timeline means that a standby was
        promoted, which is logged as a warning.
        """
        if self.recovery == "none":
            return call()
        budget: failover.RetryBudget | None = None
        while True:
            try:
                if budget is None:
                    result = call()
                else:
                    token = failover.RETRY_DEADLINE.set(budget.deadline)
                    try:
                        result = call()
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
                    self.source, ConnectionPool
                ):
                    # Replace every dead idle connection now, so that the
                    # retry does not borrow the next dead one.
                    self.source.check()
                time.sleep(pause)
                continue
            return result

    def needs_probe(self, conn: Connection[Any]) -> bool:
        """Whether to read the timeline after this call on ``conn``: it is
        new to the client, and a failover may have happened since the last
        look (see :class:`.failover.TimelineWatch`)."""
        if not self.watch.unseen(conn):
            return False
        if self.watch.suspect:
            return True
        pool = self.source if self.pooled else None
        return self.watch.should_probe(failover.connections_lost(pool))

    def probe_timeline(self, conn: Connection[Any]) -> None:
        """Note the timeline of the server of ``conn``, a connection new to
        the client; log a warning if it is not the one seen before (a
        standby was promoted). Never raises: a client that cannot tell its
        timeline (a standby, a server that refuses the query, a connection
        lost meanwhile) works on."""
        lost = failover.connections_lost(self.source if self.pooled else None)
        try:
            with conn.transaction() if not conn.autocommit else nullcontext():
                # A plain cursor, whatever cursor_factory the connection has.
                with Cursor(conn, row_factory=tuple_row) as cur:
                    cur.execute(failover.TIMELINE_SQL, prepare=False)
                    row = cur.fetchone()
        except psycopg.Error as error:
            self.logger.debug("could not read the server's timeline: %s", error)
            return
        warning = self.watch.observe(
            failover.timeline_of(row), lost=lost, owner=self.owner
        )
        if warning is not None:
            self.logger.warning(warning)

    def migrate(
        self, migrations: Migrations | Sequence[Migrations], schema: str | None
    ) -> None:
        """Bring the database up to the latest version of ``migrations`` (one
        history, or several applied in turn, all checked first) in ``schema``
        (see :func:`.migrate.migrate`).

        Raises :class:`ReadOnlyServerError` saying so when it reached a
        read-only standby, where no table can be created.
        """
        histories = [migrations] if isinstance(migrations, Migrations) else migrations
        try:
            self.retrying(partial(self._migrate_once, list(histories), schema))
        except ReadOnlyServerError as error:
            raise ReadOnlyServerError(
                setup_read_only_message(error.__cause__ or error, owner=self.owner)
            ) from error

    def _migrate_once(self, histories: list[Migrations], schema: str | None) -> None:
        # Unbounded by a timeout: building an index may take minutes.
        with self.connection(None) as conn:
            if len(histories) > 1:
                refuse_newer(conn, histories, schema)
            for migrations in histories:
                migrate(conn, migrations, schema, pipelined=self.pipe is not None)
            self.sync()


class _Call:
    """What one call holds, entered and left as a context manager.

    Entering takes the call's turn (the lock of a shared connection, or a
    no-op for a pool), borrows a connection if the access has a pool, checks
    that the connection is usable and arms the ``timeout`` deadline.
    Leaving undoes these, innermost first, as nested ``with`` blocks would;
    meanwhile a broken connection becomes :class:`ConnectionLostError`, and a
    call that outlived ``timeout`` seconds :class:`CallTimeoutError`.

    Classes rather than nested ``@contextmanager`` generators (turn, borrow,
    guard, cursor), whose entering and leaving cost about 8 us more client
    CPU per call (13 us in the async saver), a tenth of a small ``get_tuple``.
    """

    __slots__ = ("_access", "_timeout", "_borrowed", "_alarm", "_probe")

    def __init__(self, access: Access, timeout: float | None) -> None:
        self._access = access
        self._timeout = timeout
        self._borrowed: AbstractContextManager[Connection[Any]] | None = None
        self._alarm: Alarm | None = None
        # Whether the connection is new to a client that reconnects, so its
        # timeline is read once the call's own work is done.
        self._probe = False

    def _enter(self) -> Connection[Any]:
        access = self._access
        access.turn.__enter__()
        try:
            source = access.source
            if isinstance(source, Connection):
                opened = access.opened
                if source.closed and opened is not None and not opened.finished:
                    # Lost (or closed after it reached a read-only server):
                    # the client owns it, so it opens another, in its turn.
                    source = opened.reopen()
                conn = source
            elif isinstance(source, ConnectionPool):
                # A retry waits for a connection no longer than it may retry
                # (a moment at least: a zero wait fails even a ready one).
                deadline = failover.RETRY_DEADLINE.get()
                if deadline is None:
                    borrowing = source.connection()
                else:
                    wait = min(deadline - time.monotonic(), source.timeout)
                    borrowing = source.connection(timeout=max(0.05, wait))
                conn = borrowing.__enter__()
                self._borrowed = borrowing  # to give back, once borrowed
            else:
                raise TypeError(
                    "expected a psycopg Connection or psycopg_pool ConnectionPool, "
                    f"got {type(source).__name__}"
                )
            check_open(conn, recovery=access.recovery, owner=access.owner)
        except BaseException as error:
            self._leave(error, None)  # re-raises it
        if self._timeout is not None:
            self._alarm = WATCHDOG.arm(conn, self._timeout)
        # A connection new to a client that reconnects: a failover shows as
        # a new timeline. (A caller's connection never changes.)
        self._probe = access.recovery != "none" and access.needs_probe(conn)
        return conn

    def _leave(self, error: BaseException | None, conn: Connection[Any] | None) -> None:
        """Undo what entering did; re-raise ``error``, or what replaces it.

        ``conn`` is the connection once the deadline is armed: only errors
        from then on are the call's to translate.
        """
        try:
            try:
                if error is not None:
                    raise error
                if self._probe and conn is not None:
                    # After the call's work, not before: an extra round trip
                    # must not delay its commit. Within its deadline still.
                    self._access.probe_timeline(conn)
            except psycopg.Error as failure:
                if conn is None:
                    raise
                replacement = replacement_error(
                    failure,
                    timed_out=self._alarm is not None and self._alarm.fired,
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
                    conn.close()
                raise replacement from failure
            finally:
                if self._alarm is not None:
                    WATCHDOG.cancel(self._alarm)
        except BaseException as failure:
            try:
                if self._borrowed is not None:
                    self._borrowed.__exit__(
                        type(failure), failure, failure.__traceback__
                    )
            finally:
                self._access.turn.__exit__(None, None, None)
            raise
        try:
            if self._borrowed is not None:
                self._borrowed.__exit__(None, None, None)
        finally:
            self._access.turn.__exit__(None, None, None)


class CallConnection(_Call):
    """The connection of one call (see :class:`_Call`)."""

    __slots__ = ("_conn",)

    def __enter__(self) -> Connection[Any]:
        self._conn = self._enter()
        return self._conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._leave(error, self._conn)


class CallCursor(_Call):
    """The cursor of one call (see :class:`_Call`).

    It is the cursor the access keeps for the connection and ``role``, or a
    new one, inside a transaction unless the connection is in autocommit
    mode. It is kept again when the call succeeds, and closed when it fails.
    """

    __slots__ = ("_kept", "_role", "_cursor", "_transaction")

    def __init__(self, access: Access, role: Role, timeout: float | None) -> None:
        super().__init__(access, timeout)
        self._kept = access.kept
        self._role = role
        self._transaction: AbstractContextManager[Any] | None = None

    def __enter__(self) -> Cursor[TupleRow]:
        conn = self._enter()
        try:
            cur = self._cursor = self._kept.take(conn, self._role) or new_cursor(conn)
            if not conn.autocommit:
                self._transaction = conn.transaction()
                self._transaction.__enter__()
        except BaseException as error:
            self._leave(error, conn)  # re-raises it
        return cur

    def __exit__(
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
                    self._transaction.__exit__(kind, error, traceback)
                if error is not None:
                    raise error
            except BaseException:
                cur.close()
                raise
            if not self._kept.keep(conn, self._role, cur):
                cur.close()
        except BaseException as failure:
            self._leave(failure, conn)
        else:
            self._leave(None, conn)


def new_cursor(conn: Connection[Any]) -> Cursor[TupleRow]:
    cur: Cursor[TupleRow] = streaming_cursor(conn, tuple_row)
    use_orjson(cur)
    return cur


def in_hot_standby(conn: Connection[Any]) -> bool | None:
    """Whether the server of ``conn`` is a hot standby (PostgreSQL 14+
    reports it at once, no query), ``None`` if it does not say."""
    try:
        status = conn.info.parameter_status("in_hot_standby")
    except psycopg.Error:
        return None
    return None if status is None else status == "on"


def check_open(conn: Connection[Any], *, recovery: Recovery, owner: str) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", recovery=recovery, owner=owner)
        )
    if conn.closed:
        raise RuntimeError(
            f"the {owner}'s connection is closed: a {owner} from "
            "from_conn_string() works only inside its `with` block; keep the "
            f"block open while the graph runs, or give the {owner} a "
            "ConnectionPool"
        )
