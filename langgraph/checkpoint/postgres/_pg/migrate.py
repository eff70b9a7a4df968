"""The migration runner (sync): runs the steps of ``setup()`` on a connection."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, pq

from langgraph.checkpoint.postgres._pg.migrations import (
    BUILD_COLLISIONS,
    MAX_BUILD_COLLISIONS,
    Migrations,
    collision_pause,
)
from langgraph.checkpoint.postgres._pg.statement import Steps


def migrate(
    conn: Connection[Any],
    migrations: Migrations,
    schema: str | None,
    *,
    pipelined: bool,
) -> None:
    """Bring the database of ``conn`` to the latest version of ``migrations``.

    Migrations apply in one transaction (the caller's, if one is open),
    except that, when no transaction of the caller is open and ``conn`` is
    not ``pipelined``, an index on a populated table is built
    ``CONCURRENTLY`` outside it, so writers are not locked out. A step the
    server aborts because it deadlocked with another session was rolled
    back, and runs again after a pause, unless it ran in the caller's
    transaction (which is then aborted, so the error is raised).
    """
    # CONCURRENTLY refuses to run in a transaction or a pipeline.
    online = not pipelined and conn.info.transaction_status == pq.TransactionStatus.IDLE
    built: set[int] = set()
    collisions = 0
    while True:
        try:
            with conn.transaction():
                steps = migrations.steps(schema, online=online, built=built)
                version = run_steps(conn, steps)
            if version is None:
                return
            with autocommit(conn):
                run_steps(conn, migrations.online_steps(schema, version))
            built.add(version)
        except BUILD_COLLISIONS:
            # The failed step was rolled back, unless it ran in the caller's
            # transaction (not online): then that is aborted.
            collisions += 1
            if not online or collisions > MAX_BUILD_COLLISIONS:
                raise
            time.sleep(collision_pause(collisions))


def refuse_newer(
    conn: Connection[Any], histories: Sequence[Migrations], schema: str | None
) -> None:
    """Raise :class:`IncompatibleSchemaError` if any of ``histories`` is
    newer in the database than this package knows, before any is migrated."""
    with conn.transaction():
        for migrations in histories:
            run_steps(conn, migrations.version_check(schema))


def run_steps(conn: Connection[Any], steps: Steps) -> Any:
    """Execute the statements ``steps`` yields; return what it returns.

    Statements run unprepared, each on its own cursor: DDL makes psycopg
    deallocate prepared statements, which in pipeline mode would race with
    statements queued after it.
    """
    rows: list[Any] | None = None
    try:
        while True:
            statement = steps.send(rows)
            cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
            with cur:
                cur.execute(statement.sql, statement.params or None, prepare=False)
                rows = cur.fetchall() if statement.fetch else None
    except StopIteration as done:
        return done.value


@contextmanager
def autocommit(conn: Connection[Any]) -> Iterator[None]:
    """Run the block with autocommit on (for statements that refuse to run
    in a transaction), restoring the connection's setting after it."""
    if conn.autocommit:
        yield
        return
    conn.autocommit = True
    try:
        yield
    finally:
        if not conn.closed:
            conn.autocommit = False
