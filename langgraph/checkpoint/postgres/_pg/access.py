"""How a client (a saver, a store) reaches its database, sync twin.

:class:`Access` holds what the client was given (a connection, a pool, or a
connection and its pipeline) and hands each call the connection or cursor it
uses: borrowed from the pool, or taken in turn on the shared connection,
checked, and bounded by the call's timeout. It retries a call whose pooled
connection died and runs the client's migrations. The async twin,
:mod:`.access_async`, has the same names and shapes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg import Connection, Cursor, Pipeline
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg_pool import ConnectionPool

from langgraph.checkpoint.postgres._pg.cursors import KeptCursors, Role
from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    connection_lost_message,
    replacement_error,
)
from langgraph.checkpoint.postgres._pg.jsonb import use_orjson
from langgraph.checkpoint.postgres._pg.migrate import migrate, refuse_newer
from langgraph.checkpoint.postgres._pg.migrations import Migrations
from langgraph.checkpoint.postgres._pg.options import (
    CONNECTION_KWARGS,
    PoolConfig,
    pool_arguments,
)
from langgraph.checkpoint.postgres._pg.watchdog import WATCHDOG, Alarm

T = TypeVar("T")

#: What a sync client accepts: one connection, shared behind a lock, or a pool
#: from which each call borrows a connection of its own.
Conn = Connection[DictRow] | ConnectionPool[Connection[DictRow]]


@contextmanager
def get_connection(conn: Conn) -> Iterator[Connection[DictRow]]:
    """Yield ``conn`` itself, or a connection borrowed from the pool ``conn``
    (given back when the block ends), as ``langgraph-checkpoint-postgres``'s
    helper of the same name does.

    >>> with get_connection(pool) as conn:  # doctest: +SKIP
    ...     conn.execute("SELECT 1")
    """
    if isinstance(conn, Connection):
        yield conn
    elif isinstance(conn, ConnectionPool):
        with conn.connection() as borrowed:
            yield borrowed
    else:
        raise TypeError(f"Invalid connection type: {type(conn)}")


@contextmanager
def connect(
    conn_string: str, *, pipeline: bool, pool_config: PoolConfig | None
) -> Iterator[tuple[Conn, Pipeline | None]]:
    """Open what ``from_conn_string`` gives a client: a connection (in a
    pipeline with ``pipeline``), or a pool with ``pool_config``; yield it and
    the pipeline, and close both when the block ends."""
    if pool_config is not None:
        if pipeline:
            raise ValueError(
                "pipeline=True needs a single connection: leave out "
                "pool_config, or pipeline"
            )
        check = ConnectionPool.check_connection if pool_config.get("check") else None
        with ConnectionPool(
            conn_string, check=check, **pool_arguments(pool_config)
        ) as pool:
            yield pool, None
        return
    with Connection.connect(conn_string, **CONNECTION_KWARGS) as conn:
        if pipeline:
            with conn.pipeline() as pipe:
                yield conn, pipe
        else:
            yield conn, None


class Access:
    """How one client reaches its database: the connection, pool or pipeline
    it was given, and the calls it makes through them.

    With a pool each call borrows a connection of its own; on one shared
    connection calls take turns with ``lock``. ``owner`` names the client in
    error messages ("saver", "store"). Each connection keeps a cursor per
    :data:`.cursors.Role` for the next call (not in a caller's pipeline,
    whose results may arrive after the call returns).
    """

    __slots__ = ("source", "pipe", "pooled", "turn", "kept", "owner")

    def __init__(
        self,
        source: Conn,
        pipe: Pipeline | None,
        lock: threading.Lock,
        *,
        owner: str,
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
        """Run ``call``; if its pooled connection broke, run it once more.

        The second run comes after the pool has replaced its dead idle
        connections. ``call`` must be safe to repeat (a read, an upsert, an
        idempotent delete, a migration), as every call of a client is.
        """
        try:
            return call()
        except ConnectionLostError:
            if not isinstance(self.source, ConnectionPool):
                raise
            self.source.check()
        return call()

    def migrate(
        self, migrations: Migrations | Sequence[Migrations], schema: str | None
    ) -> None:
        """Bring the database up to the latest version of ``migrations`` (one
        history, or several applied in turn, all checked first) in ``schema``
        (see :func:`.migrate.migrate`)."""
        histories = [migrations] if isinstance(migrations, Migrations) else migrations
        self.retrying(partial(self._migrate_once, list(histories), schema))

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

    __slots__ = ("_access", "_timeout", "_borrowed", "_alarm")

    def __init__(self, access: Access, timeout: float | None) -> None:
        self._access = access
        self._timeout = timeout
        self._borrowed: AbstractContextManager[Connection[Any]] | None = None
        self._alarm: Alarm | None = None

    def _enter(self) -> Connection[Any]:
        access = self._access
        access.turn.__enter__()
        try:
            source = access.source
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
            check_open(conn, pooled=access.pooled, owner=access.owner)
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
                    pooled=self._access.pooled,
                    owner=self._access.owner,
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
    cur = conn.cursor(binary=True, row_factory=tuple_row)
    use_orjson(cur)
    return cur


def check_open(conn: Connection[Any], *, pooled: bool, owner: str) -> None:
    if conn.broken:
        raise ConnectionLostError(
            connection_lost_message("connection broken", pooled=pooled, owner=owner)
        )
    if conn.closed:
        raise RuntimeError(
            f"the {owner}'s connection is closed: a {owner} from "
            "from_conn_string() works only inside its `with` block; keep the "
            f"block open while the graph runs, or give the {owner} a "
            "ConnectionPool"
        )
