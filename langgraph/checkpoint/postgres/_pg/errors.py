"""Errors a database call raises, and which error replaces a failed call's."""

from __future__ import annotations

import psycopg


class IncompatibleSchemaError(RuntimeError):
    """The database was migrated by a newer version of this package."""


class ConnectionLostError(psycopg.OperationalError):
    """The connection to the server broke (terminated, dropped, or reset).

    A saver on a pool retries the call once on a fresh connection, so this
    reaches the caller only from a saver on a single connection, or when the
    retry failed too.
    """


class CallTimeoutError(psycopg.OperationalError, TimeoutError):
    """The server did not answer within the saver's ``timeout``.

    The connection the call used is closed, since it may be mid-message; a
    pool replaces it.
    """


def connection_lost_message(error: object, *, pooled: bool) -> str:
    """What to tell a caller whose connection broke during a call."""
    if pooled:
        return (
            f"the connection to the database was lost twice in a row ({error}); "
            "the saver retried once on a fresh connection from the pool. Check "
            "that the server is up and reachable"
        )
    return (
        f"the connection to the database was lost ({error}); a saver on a "
        "single connection cannot reconnect. Give the saver a pool, which "
        "replaces lost connections and lets the saver retry: "
        "from_conn_string(uri, pool_config={'max_size': 10, 'check': True}), "
        "or PostgresSaver(ConnectionPool(uri, ...))"
    )


def timeout_message(timeout: float) -> str:
    return (
        f"the database did not answer within the saver's timeout of {timeout:g} "
        "s; the connection was closed. The server may be down, overloaded, or "
        "unreachable (a half-open connection); raise `timeout=` if calls are "
        "legitimately slower"
    )


def replacement_error(
    error: psycopg.OperationalError,
    *,
    timed_out: bool,
    timeout: float | None,
    broken: bool,
    pooled: bool,
) -> psycopg.OperationalError | None:
    """What a call that failed with ``error`` raises instead, if anything.

    :class:`CallTimeoutError` when the saver cut the call off at ``timeout``;
    :class:`ConnectionLostError` when the connection broke under it (the
    signal the savers retry on); ``None`` to let ``error`` through.
    """
    if timed_out:
        return CallTimeoutError(timeout_message(timeout or 0))
    if broken and not isinstance(error, ConnectionLostError):
        return ConnectionLostError(connection_lost_message(error, pooled=pooled))
    return None
