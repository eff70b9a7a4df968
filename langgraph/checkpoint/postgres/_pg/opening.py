"""What a client is given or opens, sync twin: :data:`Conn` (a connection or
a pool), :func:`get_connection`, and :func:`connect`, which opens what
``from_conn_string`` gives a client as an :class:`Opened` that the client
adopts, so that it can reopen a lost connection from the same conninfo.
The async twin, :mod:`.opening_async`, has the same names and shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import Connection, Pipeline
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

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


class _Access(Protocol):
    """What :class:`Opened` sets and reads on a client's ``Access`` (from
    ``.access``), described here rather than imported: that module
    imports this one."""

    source: Conn
    pipe: Pipeline | None
    owner: str
    recovery: Recovery
    opened: Opened | None


class _Client(Protocol):
    """What :meth:`Opened.adopt` needs of a client: the ``Access`` it calls
    through, and the ``conn``/``pipe`` attributes it shows its users."""

    # Read-only here, so that a client's own ``Access`` type matches.
    @property
    def _db(self) -> _Access: ...

    conn: Any
    pipe: Any


C = TypeVar("C", bound=_Client)


def sweeping_check(pools: list[ConnectionPool[Any]]) -> Callable[[Any], None]:
    """A pool ``check=`` that, when a connection fails it, tests all the
    pool's idle connections at once (``pool.check()``), so that the pool
    replaces every dead one now.

    psycopg_pool tests one connection per pause otherwise, and doubles the
    pause each time (1, 2, 4, ... s): after a failover, with many idle
    connections all dead, a call waited for several seconds, or failed with
    ``PoolTimeout`` after 30. ``pools`` holds the pool once it is made.
    """

    def check(conn: Any) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            for pool in pools:
                pool.check()
            raise

    return check


class Opened:
    """What ``from_conn_string`` opened for a client: a pool, or a
    connection (and its pipeline) that the client owns, and so reopens from
    the same conninfo when it is lost.

    The block of :func:`connect` closes whichever connection is current
    when it ends; from then on nothing is reopened.
    """

    __slots__ = ("conninfo", "conn", "pipe", "finished", "_client", "_pipe_block")

    def __init__(self, conninfo: str, conn: Conn, pipe: Pipeline | None) -> None:
        self.conninfo = conninfo
        self.conn: Conn = conn
        self.pipe = pipe
        self.finished = False
        self._client: _Client | None = None
        self._pipe_block: AbstractContextManager[Pipeline] | None = None

    def adopt(self, client: C) -> C:
        """Let ``client`` reopen its connection from the conninfo when it is
        lost (nothing to do for a pool, which replaces its own); return it."""
        if isinstance(self.conn, Connection):
            self._client = client
            client._db.opened = self
            client._db.recovery = "reconnect"
        return client

    def reopen(self) -> Connection[DictRow]:
        """Open a connection in place of the lost one (the caller holds the
        client's turn, so no other call uses it); return it.

        Raises :class:`ConnectionLostError` if no server accepts it, a
        failover error the caller retries on.
        """
        old = self.conn
        assert isinstance(old, Connection)
        self._close_current()
        try:
            conn = Connection.connect(self.conninfo, **CONNECTION_KWARGS)
        except psycopg.OperationalError as error:
            owner = "saver" if self._client is None else self._client._db.owner
            message = connection_lost_message(
                f"reconnecting failed: {error}", recovery="reconnect", owner=owner
            )
            raise ConnectionLostError(message) from error
        pipe = None
        if self.pipe is not None:
            self._pipe_block = conn.pipeline()
            pipe = self._pipe_block.__enter__()
        self.conn, self.pipe = conn, pipe
        if self._client is not None:
            self._client._db.source = conn
            self._client._db.pipe = pipe
            self._client.conn = conn
            self._client.pipe = pipe
        return conn

    def _close_current(self) -> None:
        """Close the current connection (and leave its pipeline), quietly:
        it is lost, or being replaced."""
        conn = self.conn
        try:
            if self._pipe_block is not None:
                block, self._pipe_block = self._pipe_block, None
                if not conn.closed:
                    block.__exit__(None, None, None)
        except psycopg.Error:
            pass
        finally:
            if isinstance(conn, Connection):
                conn.close()

    def close(self) -> None:
        """End of the ``from_conn_string`` block: close the current
        connection, and reopen none from now on."""
        self.finished = True
        self._close_current()


@contextmanager
def connect(
    conn_string: str, *, pipeline: bool, pool_config: PoolConfig | None
) -> Iterator[Opened]:
    """Open what ``from_conn_string`` gives a client: a connection (in a
    pipeline with ``pipeline``), or a pool with ``pool_config``; yield it as
    an :class:`Opened`, which the client adopts, and close it when the block
    ends."""
    if pool_config is not None:
        if pipeline:
            raise ValueError(
                "pipeline=True needs a single connection: leave out "
                "pool_config, or pipeline"
            )
        pools: list[ConnectionPool[Any]] = []
        check = sweeping_check(pools) if pool_config.get("check") else None
        with ConnectionPool(
            conn_string, check=check, **pool_arguments(pool_config)
        ) as pool:
            pools.append(pool)
            yield Opened(conn_string, pool, None)
        return
    conn = Connection.connect(conn_string, **CONNECTION_KWARGS)
    opened = Opened(conn_string, conn, None)
    try:
        if pipeline:
            opened._pipe_block = conn.pipeline()
            opened.pipe = opened._pipe_block.__enter__()
        yield opened
        # Leaving the pipeline sends what is queued and raises its errors.
        if opened._pipe_block is not None and not opened.conn.closed:
            block, opened._pipe_block = opened._pipe_block, None
            block.__exit__(None, None, None)
    finally:
        opened.close()
