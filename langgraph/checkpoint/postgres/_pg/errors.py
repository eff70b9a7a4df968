"""Errors a database call raises, and which error replaces a failed call's.

Messages name the ``owner`` of the call ("saver", "store"): the client whose
settings the reader should change.
"""

from __future__ import annotations

from typing import Literal

import psycopg
import psycopg.errors


class IncompatibleSchemaError(RuntimeError):
    """The database was migrated by a newer version of this package."""


class ConnectionLostError(psycopg.OperationalError):
    """The connection to the server broke (terminated, dropped, or reset).

    A saver (or store) on a pool, or on the connection ``from_conn_string``
    opened, retries the call on a fresh (or reopened) connection for up to
    :data:`~.failover.RETRY_SECONDS`, so this reaches the caller only from
    one on a connection the caller opened, or when no server answered in
    that time.
    """


class ReadOnlyServerError(psycopg.errors.ReadOnlySqlTransaction):
    """A write reached a server that accepts none: a hot standby (the old
    primary back as a standby, or a conninfo without
    ``target_session_attrs=read-write``), or a session set read-only.

    A ``psycopg.errors.ReadOnlySqlTransaction`` (SQLSTATE 25006), so code
    that caught that catches this too. A saver on a pool discards the
    connection and retries on another, as it does for a lost one.
    """


class CallTimeoutError(psycopg.OperationalError, TimeoutError):
    """A call did not finish within the saver's (or store's) ``timeout``.

    The server is asked to cancel the call; if it does not answer within a
    second more, the connection the call used is closed, since it may be
    mid-message (a pool replaces it).
    """


#: How a client gets another connection when one fails: ``"pool"`` (it
#: borrows another), ``"reconnect"`` (it opens one from the conninfo it was
#: made with, ``from_conn_string``), ``"none"`` (a connection of the
#: caller's: it cannot).
Recovery = Literal["pool", "reconnect", "none"]

#: What the conninfo of a client that must reach the primary should say.
READ_WRITE_HINT = (
    "list every server that may become the primary and ask for the writable "
    "one: host=db1,db2 port=5432,5432 target_session_attrs=read-write (in a "
    "URI: postgresql://db1:5432,db2:5432/app?target_session_attrs=read-write)"
)


def connection_lost_message(error: object, *, recovery: Recovery, owner: str) -> str:
    """What to tell a caller whose connection broke during a call."""
    if recovery == "pool":
        return (
            f"the connection to the database was lost ({error}); the {owner} "
            "retried on fresh connections from the pool until its retry time "
            "ran out. Check that the server is up and reachable; for failover, "
            + READ_WRITE_HINT
        )
    if recovery == "reconnect":
        return (
            f"the connection to the database was lost ({error}); the {owner} "
            "reconnected with the conninfo it was opened with until its retry "
            "time ran out. Check that the server is up and reachable; for "
            "failover, " + READ_WRITE_HINT
        )
    return (
        f"the connection to the database was lost ({error}); a {owner} on a "
        f"connection you opened cannot reconnect. Let the {owner} open its "
        "own, which it reopens when lost: from_conn_string(uri), or "
        "from_conn_string(uri, pool_config={'max_size': 10}) for a pool; or "
        "give it a psycopg_pool pool of your own, which replaces lost "
        "connections"
    )


def read_only_message(
    error: object, *, standby: bool | None, recovery: Recovery, owner: str
) -> str:
    """What to tell a caller whose write reached a server that accepts none.

    ``standby`` is the server's ``in_hot_standby`` (PostgreSQL 14+ reports
    it), ``None`` when unknown.
    """
    if standby:
        where = "reached a read-only standby (a server in recovery)"
    elif standby is None:
        where = "reached a read-only server (a standby, or a read-only session)"
    else:
        where = (
            "reached a read-only session (default_transaction_read_only is on, "
            "or a READ ONLY transaction is open)"
        )
    retried = {
        "pool": "; the connection was discarded and the call retried on others "
        "from the pool until its retry time ran out",
        "reconnect": "; the connection was reopened and the call retried until "
        "its retry time ran out",
        "none": "",
    }[recovery]
    return (
        f"the {owner}'s write {where}: {error}{retried}. Connect to the "
        "primary: add target_session_attrs=read-write to the conninfo, so that "
        "libpq skips servers that accept no writes; to survive a failover, "
        + READ_WRITE_HINT
    )


def timeout_message(timeout: float, *, owner: str, closed: bool = True) -> str:
    if not closed:
        return (
            f"the call did not finish within the {owner}'s timeout of "
            f"{timeout:g} s, and the server cancelled it at our request (nothing "
            "of it was committed). It may have waited for a lock another "
            "transaction holds, or the server is overloaded; raise `timeout=` "
            "if calls are legitimately slower"
        )
    return (
        f"the database did not answer within the {owner}'s timeout of "
        f"{timeout:g} s; the connection was closed. The server may be down, "
        "overloaded, or unreachable (a half-open connection); raise `timeout=` "
        "if calls are legitimately slower"
    )


def replacement_error(
    error: psycopg.Error,
    *,
    timed_out: bool,
    timeout: float | None,
    broken: bool,
    standby: bool | None,
    recovery: Recovery,
    owner: str,
) -> psycopg.Error | None:
    """What a call that failed with ``error`` raises instead, if anything.

    :class:`CallTimeoutError` when the call was cut off at ``timeout``;
    :class:`ConnectionLostError` when the connection broke under it, and
    :class:`ReadOnlyServerError` when a write reached a read-only server
    (both signals to retry on, where the client can get another
    connection); ``None`` to let ``error`` through.
    """
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        if isinstance(error, ReadOnlyServerError):
            return None
        message = read_only_message(
            error, standby=standby, recovery=recovery, owner=owner
        )
        return ReadOnlyServerError(message)
    if not isinstance(error, psycopg.OperationalError):
        return None
    if timed_out:
        message = timeout_message(timeout or 0, owner=owner, closed=broken)
        return CallTimeoutError(message)
    if broken and not isinstance(error, ConnectionLostError):
        message = connection_lost_message(error, recovery=recovery, owner=owner)
        return ConnectionLostError(message)
    return None


def setup_read_only_message(error: object, *, owner: str) -> str:
    """What ``setup()`` says when it reached a server that accepts no writes."""
    return (
        f"{owner} setup() reached a read-only standby (or read-only session), "
        "where it cannot create or migrate tables: run setup() against the "
        "primary, with target_session_attrs=read-write in the conninfo. "
        f"({error})"
    )
