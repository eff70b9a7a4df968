"""What a failover looks like to a client, and how long to ride it out (no I/O).

When the primary dies and a standby takes over, a client sees a few kinds of
errors for a few seconds: its connection breaks (or the server says it is
shutting down), a pool has no live connection to lend until it has opened
new ones (``PoolTimeout``), a new connection may land on a server that is
still, or again, a read-only standby. Each of these is over once a writable
server answers, so a client that can get another connection (a pool, or a
connection it opened itself from a conninfo) retries the call. That is safe
because every call of the savers and the store can be repeated: reads,
upserts, idempotent deletes, migrations.

The rules here are shared by the sync and async ``Access`` twins:
:func:`is_failover_error` says which errors to retry, :class:`RetryBudget`
how long and with which pauses, and :class:`TimelineWatch` whether the
server answering after a failover is on another timeline than before (a
promotion happened, so checkpoints acknowledged just before it may be gone
unless replication was synchronous), probed once per new connection.
"""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from langgraph.checkpoint.postgres._pg.errors import (
    ConnectionLostError,
    ReadOnlyServerError,
)

#: How long (seconds) a call keeps retrying after its first failover error.
#: A failover with a ready standby takes seconds: the primary's death must be
#: noticed, the standby promoted, and a pool's reconnection attempts (which
#: psycopg_pool spaces 1, 2, 4, ... s apart) must reach it. 20 s rides out
#: that, yet a server that is really gone is reported while a person still
#: waits for the answer. A client's ``timeout=`` lowers it (see
#: :func:`retry_seconds`).
RETRY_SECONDS = 20.0

#: The first pause between two attempts, doubled after each, up to
#: :data:`MAX_PAUSE`: the first retries come quickly (a pool sweep often
#: leaves a live connection at once), later ones do not hammer a server that
#: is still starting.
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0

#: SQLSTATEs of a server going away or not yet there: admin_shutdown,
#: crash_shutdown, cannot_connect_now; and read_only_sql_transaction, a
#: write that reached a standby. Class 08 (connection exception) counts too.
FAILOVER_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25006"})


def is_failover_error(error: BaseException) -> bool:
    """Whether ``error`` is one a failover causes, and another connection
    may not: worth retrying on a fresh (or reconnected) connection.

    :class:`~.errors.CallTimeoutError` is not: the client's ``timeout=``
    bounds a call, and retrying would exceed it. Nor is any error of the
    statement itself (a unique violation, a syntax error).
    """
    if isinstance(error, (ConnectionLostError, ReadOnlyServerError, PoolTimeout)):
        return True
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        return state is not None and (
            state in FAILOVER_SQLSTATES or state.startswith("08")
        )
    return False


def retry_seconds(timeout: float | None) -> float:
    """How long a call of a client with ``timeout=`` retries failover errors:
    :data:`RETRY_SECONDS`, or less if the client bounds its calls tighter."""
    if timeout is None:
        return RETRY_SECONDS
    return min(RETRY_SECONDS, timeout)


class RetryBudget:
    """The retries of one call: which pause comes next, and when to stop.

    The budget starts at the call's first failover error, not at the call's
    start: the attempt that failed had its own bound (the client's
    ``timeout=``, or the pool's wait for a connection).
    """

    __slots__ = ("_seconds", "_deadline", "failures")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline: float | None = None
        #: Failover errors so far.
        self.failures = 0

    def next_pause(self, now: float) -> float | None:
        """The pause before the next attempt, after a failover error at
        ``now`` (``time.monotonic()``); ``None`` once the budget is spent.

        >>> budget = RetryBudget(0.5)
        >>> [budget.next_pause(0.0) for _ in range(6)]
        [0.05, 0.1, 0.2, 0.4, None, None]
        """
        if self._deadline is None:
            self._deadline = now + self._seconds
        pause = min(FIRST_PAUSE * 2**self.failures, MAX_PAUSE)
        self.failures += 1
        if now + pause > self._deadline:
            return None
        return pause

    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` when retrying ends (``None`` before the
        first failure)."""
        return self._deadline


#: While a call is retried, the ``time.monotonic()`` its retries end at: a
#: retry waits for a pool's connection no longer than that. A context
#: variable, so that the sync twin's threads and the async twin's tasks each
#: see their own call's.
RETRY_DEADLINE: ContextVar[float | None] = ContextVar(
    "langgraph_postgres_retry_deadline", default=None
)


def logger_name(owner: str) -> str:
    """The logger a client's failover messages go to: its package's."""
    if owner == "store":
        return "langgraph.store.postgres"
    return "langgraph.checkpoint.postgres"


#: Ask a primary for its timeline: the first 8 hex digits of the name of the
#: WAL file it writes. Any role may call these functions; a server in
#: recovery (a standby) answers NULL, as it has no timeline of its own yet.
TIMELINE_SQL = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
    "ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END"
)


def timeline_of(row: object) -> int | None:
    """The timeline in a row of :data:`TIMELINE_SQL`'s result, if any."""
    if not isinstance(row, (tuple, list)) or not row or row[0] is None:
        return None
    try:
        return int(str(row[0]), 16)
    except ValueError:
        return None


def timeline_warning(before: int, after: int, *, owner: str) -> str:
    """The warning of a client that reconnected to a server whose timeline
    is not the one it saw before: a standby was promoted."""
    return (
        f"the {owner} reconnected to a server on timeline {after}, not "
        f"{before} as before: a standby was promoted (a failover). Writes "
        "acknowledged just before the failover (checkpoints, store items) "
        "may be missing from the new primary unless replication to it was "
        "synchronous (synchronous_standby_names naming it, and "
        "synchronous_commit on or remote_apply)"
    )


class TimelineWatch:
    """The timeline a client's server was on, to notice a promotion.

    A client that can get new connections (a pool, or one it reopens) reads
    the timeline (:data:`TIMELINE_SQL`) on a connection it has not used
    before, when a failover may have happened since it last looked: at its
    first call, after a failover error, or when its pool reports lost
    connections (a pool's ``check=`` replaces dead connections unseen).
    New connections otherwise (a pool growing, or renewing old ones) cost
    nothing, and calls on known connections only a dictionary lookup.
    Shared by the threads (or tasks) of one client.
    """

    __slots__ = ("_lock", "_seen", "timeline", "suspect", "lost")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id() -> a weak reference to the connection: a plain lookup per
        # call (a WeakSet costs 4 times more), and the reference tells a
        # connection from a later one that reuses a dead one's id.
        self._seen: dict[int, weakref.ref[Any]] = {}
        #: The timeline last seen, ``None`` while unknown.
        self.timeline: int | None = None
        #: Whether a failover may have happened since the last probe.
        self.suspect = True
        #: The pool's count of lost connections at the last probe.
        self.lost: int | None = None

    def unseen(self, conn: object) -> bool:
        """Whether ``conn`` is new to this client (it is seen from now on).

        >>> class Conn: ...  # any object that takes weak references
        >>> watch, conn = TimelineWatch(), Conn()
        >>> watch.unseen(conn), watch.unseen(conn)
        (True, False)
        """
        ref = self._seen.get(id(conn))
        if ref is not None and ref() is conn:
            return False
        with self._lock:
            # Forget the connections gone since (a pool replaces its own).
            for key in [k for k, r in self._seen.items() if r() is None]:
                del self._seen[key]
            self._seen[id(conn)] = weakref.ref(conn)
        return True

    def should_probe(self, lost: int | None) -> bool:
        """Whether to read the timeline on a new connection, given the pool's
        count of lost connections now (``None`` without a pool)."""
        return self.suspect or (lost is not None and lost != self.lost)

    def observe(
        self, timeline: int | None, *, lost: int | None, owner: str
    ) -> str | None:
        """Record a probe's ``timeline`` (``None``: unknown, e.g. a standby
        answered) and the pool's ``lost`` count; return the warning to log
        if the timeline differs from the one seen before."""
        with self._lock:
            self.suspect = False
            self.lost = lost
            if timeline is None:
                return None
            before, self.timeline = self.timeline, timeline
        if before is None or before == timeline:
            return None
        return timeline_warning(before, timeline, owner=owner)


def connections_lost(pool: Any) -> int | None:
    """How many connections psycopg_pool ``pool`` found broken so far
    (``None`` for no pool, or a pool that does not say)."""
    if pool is None:
        return None
    try:
        return int(pool.get_stats().get("connections_lost", 0))
    except Exception:
        return None
