"""Errors a database call raises, and which error replaces a failed call's.

Messages name the ``owner`` of the call ("saver", "store"): the client whose
settings the reader should change.
"""

from __future__ import annotations

import psycopg


class IncompatibleSchemaError(RuntimeError):
    """The database was migrated by a newer version of this package."""


class ConnectionLostError(psycopg.OperationalError):
    """The connection to the server broke (terminated, dropped, or reset).

    A saver (or store) on a pool retries the call once on a fresh
    connection, so this reaches the caller only from one on a single
    connection, or when the retry failed too.
    """


class CallTimeoutError(psycopg.OperationalError, TimeoutError):
    """A call did not finish within the saver's (or store's) ``timeout``.

    The server is asked to cancel the call; if it does not answer within a
    second more, the connection the call used is closed, since it may be
    mid-message (a pool replaces it).
    """


def connection_lost_message(error: object, *, pooled: bool, owner: str) -> str:
    """What to tell a caller whose connection broke during a call."""
    if pooled:
        return (
            f"the connection to the database was lost twice in a row ({error}); "
            f"the {owner} retried once on a fresh connection from the pool. "
            "Check that the server is up and reachable"
        )
    return (
        f"the connection to the database was lost ({error}); a {owner} on a "
        f"single connection cannot reconnect. Give the {owner} a pool, which "
        f"replaces lost connections and lets the {owner} retry: "
        "from_conn_string(uri, pool_config={'max_size': 10, 'check': True}), "
        "or a psycopg_pool pool of your own passed to its constructor"
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
    error: psycopg.OperationalError,
    *,
    timed_out: bool,
    timeout: float | None,
    broken: bool,
    pooled: bool,
    owner: str,
) -> psycopg.OperationalError | None:
    """What a call that failed with ``error`` raises instead, if anything.

    :class:`CallTimeoutError` when the call was cut off at ``timeout``;
    :class:`ConnectionLostError` when the connection broke under it (the
    signal to retry on); ``None`` to let ``error`` through.
    """
    if timed_out:
        message = timeout_message(timeout or 0, owner=owner, closed=broken)
        return CallTimeoutError(message)
    if broken and not isinstance(error, ConnectionLostError):
        message = connection_lost_message(error, pooled=pooled, owner=owner)
        return ConnectionLostError(message)
    return None
