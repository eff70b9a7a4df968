"""One reusable cursor per connection and role, for any client (no I/O here).

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

from psycopg.pq.abc import PGresult


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
