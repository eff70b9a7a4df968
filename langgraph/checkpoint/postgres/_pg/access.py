"""Connection types and helpers of the sync saver."""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import psycopg
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg_pool import ConnectionPool

from langgraph.checkpoint.postgres._pg.cursors import KeptCursors, Role
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    connection_lost_message,
    replacement_error,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.watchdog import WATCHDOG, _Alarm

#: What the sync saver accepts: one connection, shared behind a lock, or a pool
#: from which each call borrows a connection of its own.
Conn = Connection[DictRow] | ConnectionPool[Connection[DictRow]]


# -- lost connections and timeouts -------------------------------------------


class _Call:
    """What one saver call holds, entered and left as a context manager.

    Entering takes the call's turn (``turn``: the lock of a shared connection,
    or a no-op for a pool), borrows a connection if ``source`` is a pool,
    checks that the connection is usable and arms the ``timeout`` deadline.
    Leaving undoes these, innermost first, as nested ``with`` blocks would;
    meanwhile a broken connection becomes :class:`ConnectionLostError`, and a
    call that outlived ``timeout`` seconds :class:`CallTimeoutError`.

    Classes rather than nested ``@contextmanager`` generators (turn, borrow,
    guard, cursor), whose entering and leaving cost about 8 us more client
    CPU per call (13 us in the async saver), a tenth of a small ``get_tuple``.
    """

    __slots__ = ("_turn", "_source", "_timeout", "_pooled", "_borrowed", "_alarm")

    def __init__(
        self,
        turn: AbstractContextManager[Any],
        source: Conn,
        *,
        timeout: float | None,
        pooled: bool,
    ) -> None:
        self._turn = turn
        self._source = source
        self._timeout = timeout
        self._pooled = pooled
        self._borrowed: AbstractContextManager[Connection[Any]] | None = None
        self._alarm: _Alarm | None = None

    def _enter(self) -> Connection[Any]:
        self._turn.__enter__()
        try:
            source = self._source
            if isinstance(source, Connection):
                conn = source
            elif isinstance(source, ConnectionPool):
                borrowing = source.connection()
                conn = borrowing.__enter__()
                self._borrowed = borrowing  # to give back, once borrowed
            else:
                raise TypeError(
                    "expected a psycopg Connection or psycopg_pool ConnectionPool, "
                    f"got {type(source).__name__}"
                )
            check_open(conn, pooled=self._pooled)
        except BaseException as error:
            self._leave(error, None)  # re-raises it
        if self._timeout is not None:
            self._alarm = WATCHDOG.arm(conn, self._timeout)
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
            except psycopg.OperationalError as failure:
                if conn is None:
                    raise
                replacement = replacement_error(
                    failure,
                    timed_out=self._alarm is not None and self._alarm.fired,
                    timeout=self._timeout,
                    broken=conn.broken,
                    pooled=self._pooled,
                )
                if replacement is None:
                    raise
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
                self._turn.__exit__(None, None, None)
            raise
        try:
            if self._borrowed is not None:
                self._borrowed.__exit__(None, None, None)
        finally:
            self._turn.__exit__(None, None, None)


class CallConnection(_Call):
    """The connection of one saver call (see :class:`_Call`)."""

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
    """The cursor of one saver call (see :class:`_Call`).

    It is the cursor ``kept`` holds for the connection, or a new one, inside
    a transaction unless the connection is in autocommit mode. It goes back
    to ``kept`` when the call succeeds, and is closed when it fails.
    """

    __slots__ = ("_kept", "_role", "_cursor", "_transaction")

    def __init__(
        self,
        turn: AbstractContextManager[Any],
        source: Conn,
        kept: KeptCursors[Cursor[TupleRow]],
        role: Role,
        *,
        timeout: float | None,
        pooled: bool,
    ) -> None:
        super().__init__(turn, source, timeout=timeout, pooled=pooled)
        self._kept = kept
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
    cur = conn.cursor(binary=True, row_factory=tuple_row)
    use_orjson(cur)
    return cur


def check_open(conn: Connection[Any], *, pooled: bool) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", pooled=pooled)
        )
    if conn.closed:
        raise RuntimeError(
            "the saver's connection is closed: a saver from from_conn_string() "
            "works only inside its `with` block; keep the block open while the "
            "graph runs, or give the saver a ConnectionPool"
        )
