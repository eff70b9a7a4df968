"""The migration runner (sync): runs the steps of ``setup()`` on a connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection

from langgraph.checkpoint.postgres._pg.statement import Steps


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
