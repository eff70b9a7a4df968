"""The migration runner (async): runs the steps of ``setup()`` on a connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, pq

from langgraph.checkpoint.postgres._pg.migrations import (
    BUILD_COLLISIONS,
    MAX_BUILD_COLLISIONS,
    Migrations,
    collision_pause,
)
from langgraph.checkpoint.postgres._pg.statement import Steps


async def migrate(
    conn: AsyncConnection[Any],
    migrations: Migrations,
    schema: str | None,
    *,
    pipelined: bool,
) -> None:
    """Bring the database of ``conn`` to the latest version of ``migrations``.

    See :func:`langgraph.checkpoint.postgres._pg.migrate.migrate`.
    """
    online = not pipelined and conn.info.transaction_status == pq.TransactionStatus.IDLE
    built: set[int] = set()
    collisions = 0
    while True:
        try:
            async with conn.transaction():
                steps = migrations.steps(schema, online=online, built=built)
                version = await run_steps(conn, steps)
            if version is None:
                return
            async with autocommit(conn):
                await run_steps(conn, migrations.online_steps(schema, version))
            built.add(version)
        except BUILD_COLLISIONS:
            # The failed step was rolled back, unless it ran in the caller's
            # transaction (not online): then that is aborted.
            collisions += 1
            if not online or collisions > MAX_BUILD_COLLISIONS:
                raise
            await asyncio.sleep(collision_pause(collisions))


async def refuse_newer(
    conn: AsyncConnection[Any], histories: Sequence[Migrations], schema: str | None
) -> None:
    """Raise :class:`IncompatibleSchemaError` if any of ``histories`` is
    newer in the database than this package knows, before any is migrated."""
    async with conn.transaction():
        for migrations in histories:
            await run_steps(conn, migrations.version_check(schema))


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
