"""One reusable cursor per connection and role, for any client; the sync
cursor class that streams prepared statements.

A new psycopg cursor looks up a loader for every result column on its first
fetch, and the saver's results have up to 20 columns, most of them arrays.
That setup is about a third of the client's CPU time for a small read (~30 us
of ~95 us per ``get_tuple`` query), so clients reuse a cursor per
connection instead of opening one per call. psycopg repeats part of it (~14
us) when a cursor runs another statement than its last, so a connection
keeps one cursor for reads and another for writes: in a graph, reads
alternate with writes.

A cursor references its last result until it runs the next statement. The
client has turned every row into Python objects by the time a call ends, so
:meth:`KeptCursors.keep` frees that result first: a kept cursor holds no
checkpoint data between calls.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, Protocol, TypeVar

import psycopg
from psycopg import errors
from psycopg.abc import Params, PQGen, Query
from psycopg.generators import execute, send
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGresult
from psycopg.rows import Row

try:
    from psycopg._preparing import Prepare
except ImportError:  # pragma: no cover - a psycopg that moved it
    Prepare = None  # type: ignore[assignment,misc]


class _Cursor(Protocol):
    @property
    def connection(self) -> Any: ...

    @property
    def closed(self) -> bool: ...

    @property
    def pgresult(self) -> PGresult | None: ...


C = TypeVar("C", bound=_Cursor)

#: Which of a connection's kept cursors a call uses.
Role = Literal["read", "write"]


class KeptCursors(Generic[C]):
    """The cursors each connection's last calls left for the next ones, one
    per :data:`Role`.

    A call :meth:`take`\\ s its connection's cursor for its role (or opens a
    new one if there is none) and hands it back with :meth:`keep` when it
    ended without an error. Taking removes the cursor from the map, so no two
    calls share it. With ``enabled=False`` (a caller's pipeline, whose results
    may arrive after the call returns) nothing is kept.

    >>> kept: KeptCursors[Any] = KeptCursors()
    >>> kept.take(object(), "read") is None
    True
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self._enabled = enabled
        # Keyed by id(): a kept cursor references its connection, so the id
        # cannot be reused while the entry exists.
        self._cursors: dict[tuple[int, Role], C] = {}

    def take(self, conn: object, role: Role) -> C | None:
        """Remove and return the ``role`` cursor kept for ``conn``, if it is
        usable."""
        cur = self._cursors.pop((id(conn), role), None)
        if cur is None:
            # A connection (or role) new to us: a pool may have opened it to
            # replace one it closed, whose cursors (and the connection with
            # them) must not stay referenced here, whatever their role.
            self._forget_closed()
            return None
        if cur.closed or cur.connection is not conn:
            return None
        return cur

    def keep(self, conn: object, role: Role, cur: C) -> bool:
        """Free ``cur``'s last result and keep it for the next ``role`` call on
        ``conn``.

        Call only after every row was fetched and decoded: values still backed
        by the result (memoryviews given to loaders) would be freed with it.
        Returns ``False`` if keeping is disabled; the caller closes ``cur``.
        """
        if not self._enabled:
            return False
        if cur.pgresult is not None:
            cur.pgresult.clear()
        self._cursors[id(conn), role] = cur
        return True

    def _forget_closed(self) -> None:
        for key, cur in list(self._cursors.items()):
            if cur.closed or cur.connection.closed:
                self._cursors.pop(key, None)


class StreamingCursor(psycopg.Cursor[Row]):
    """A cursor whose :meth:`stream` runs the statement prepared, as
    :meth:`execute` does, where psycopg's always sends it unprepared.

    A sync ``list()`` page streams its rows, so that the client decodes each
    while the server computes the next. Unprepared, the server plans the
    page's query anew every time, and planning it (the lookups of blobs and
    writes) costs about half as much as running it: a ``list(limit=20)``
    took 0.72 ms streamed prepared against 1.08 ms before (PostgreSQL 15,
    the two alternating in one process). The connection's
    ``prepare_threshold`` decides as it does for ``execute`` (``None``, as
    for PgBouncer in transaction mode, never prepares), and the statement
    shares psycopg's cache of prepared statements.

    This overrides psycopg internals (the generator that sends a streamed
    query); :func:`streaming_cursor` falls back to psycopg's own cursor
    where they are missing.
    """

    def _stream_send_gen(
        self,
        query: Query,
        params: Params | None = None,
        *,
        binary: bool | None = None,
        size: int,
    ) -> PQGen[None]:
        if size != 1:  # chunks: psycopg's own, unprepared
            yield from super()._stream_send_gen(query, params, binary=binary, size=size)
            return
        yield from self._start_query(query)
        pgq = self._convert_query(query, params)
        prepared = self._conn._prepared
        prep, name = prepared.get(pgq)
        if prep is Prepare.NO:
            self._execute_send(pgq, binary=binary, force_extended=True)
            # Counted as execute() counts it, so that a connection with a
            # threshold prepares it from then on.
            prepared.maybe_add_to_cache(pgq, prep, name)
        else:
            if prep is Prepare.SHOULD:
                self._send_prepare(name, pgq)
                results = yield from execute(self._pgconn)
                for result in results:
                    if result.status == ExecStatus.FATAL_ERROR:
                        raise errors.error_from_result(result, encoding=self._encoding)
                # Cached once prepared, where execute() caches after the
                # run: a streamed run's results are not all in until it ends.
                if (key := prepared.maybe_add_to_cache(pgq, prep, name)) is not None:
                    prepared.validate(key, prep, name, results)
            else:
                prepared.maybe_add_to_cache(pgq, prep, name)  # recently used
            self._send_query_prepared(name, pgq, binary=binary)
        self._pgconn.set_single_row_mode()
        self._last_query = query
        yield from send(self._pgconn)


def _has_internals() -> bool:
    """Whether this psycopg has what :class:`StreamingCursor` overrides and
    calls."""
    names = (
        "_stream_send_gen",
        "_start_query",
        "_convert_query",
        "_execute_send",
        "_send_prepare",
        "_send_query_prepared",
    )
    return Prepare is not None and all(hasattr(psycopg.Cursor, n) for n in names)


_STREAMS_PREPARED = _has_internals()


def streaming_cursor(conn: psycopg.Connection[Any], row_factory: Any) -> Any:
    """A binary cursor on ``conn`` that streams prepared statements, unless
    the connection makes cursors of its own class (a ``ClientCursor`` binds
    parameters in the client, which the caller chose) or psycopg lacks the
    internals it overrides: then ``conn``'s usual cursor."""
    if _STREAMS_PREPARED and conn.cursor_factory is psycopg.Cursor:
        cur: psycopg.Cursor[Any] = StreamingCursor(conn, row_factory=row_factory)
        cur.format = psycopg.pq.Format.BINARY
        return cur
    return conn.cursor(binary=True, row_factory=row_factory)
