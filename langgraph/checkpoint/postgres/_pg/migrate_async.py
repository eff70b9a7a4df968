"""The migration runner (async): runs the steps of ``setup()`` on a connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection

from langgraph.checkpoint.postgres._pg.statement import Steps


async def run_steps(conn: AsyncConnection[Any], steps: Steps) -> Any:
    """Execute the statements ``steps`` yields; return what it returns.

    See :func:`langgraph.checkpoint.postgres._pg.access.run_steps`.
    """
    rows: list[Any] | None = None
    try:
        while True:
            statement = steps.send(rows)
            cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
            async with cur:
                await cur.execute(
                    statement.sql, statement.params or None, prepare=False
                )
                rows = await cur.fetchall() if statement.fetch else None
    except StopIteration as done:
        return done.value


@asynccontextmanager
async def autocommit(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """Run the block with autocommit on, restoring the setting after it."""
    if conn.autocommit:
        yield
        return
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        if not conn.closed:
            await conn.set_autocommit(False)
