"""AsyncRetention: ``aprune``, ``asweep`` and the background sweeper of
:class:`~langgraph.checkpoint.postgres.aio.AsyncPostgresSaver` (whose
``prune`` and ``sweep``, for callers on other threads, stay with its other
sync methods).

The saver inherits it; the statements and settings come from
``_retention_core`` (which ``BasePostgresSaver`` inherits), the I/O from the
saver's own helpers. ``_retention_sync`` is its sync twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from psycopg.errors import LockNotAvailable
from psycopg.rows import TupleRow

from langgraph.checkpoint.postgres._pg.access_async import Access, CallCursor
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import SweeperTask
from langgraph.checkpoint.postgres._retention_core import RetentionCore
from langgraph.checkpoint.postgres._sweep import SWEEPING, SweepPass, SweepResult

__all__ = ["AsyncRetention"]


class AsyncRetention(RetentionCore):
    """The retention methods of the async saver."""

    # Set by AsyncPostgresSaver.__init__.
    _db: Access
    _sweeper: SweeperTask[SweepResult] | None

    if TYPE_CHECKING:
        # AsyncPostgresSaver's I/O helpers, declared for the type checker
        # only: at run time the saver's own are the only ones.
        def _cursor(self, role: Role) -> CallCursor: ...

        async def _fetch(self, statement: Statement) -> list[TupleRow]: ...

        async def _execute_all(self, statements: Sequence[Statement]) -> None: ...

    async def aprune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep: int | None = None,
    ) -> None:
        """Remove old checkpoints of ``thread_ids``, atomically.

        See :meth:`PostgresSaver.prune`.
        """
        await self._execute_all(self._prune_statements(thread_ids, strategy, keep))

    # -- retention policy ----------------------------------------------------

    async def asweep(self) -> SweepResult:
        """Apply the saver's ``retention`` policy once, to every thread.

        See :meth:`PostgresSaver.sweep`.
        """
        sweep = self._sweep_pass()
        total = SweepResult()
        while (page := sweep.next_page()) is not None:
            rows = await self._fetch(page)
            sweep.receive(rows)
            if rows:
                total += await self._db.retrying(
                    partial(self._sweep_batch, sweep, rows)
                )
        return total

    async def _sweep_batch(
        self, sweep: SweepPass, rows: Sequence[TupleRow]
    ) -> SweepResult:
        # See PostgresSaver._sweep_batch.
        newest = {row[0]: row[1] for row in rows}
        async with self._cursor("write") as cur:
            conn = cur.connection
            async with conn.transaction():
                for statement in (sweep.settings(), sweep.lock(rows)):
                    await cur.execute(statement.sql, statement.params)
                mine = [row[0] for row in await cur.fetchall()]
                result = SweepResult(skipped=len(rows) - len(mine))
                for thread_id in mine:
                    statement = sweep.thread(thread_id, newest[thread_id])
                    counts = None
                    try:
                        async with conn.transaction():  # a savepoint
                            await cur.execute(statement.sql, statement.params)
                            counts = await cur.fetchone()
                    except LockNotAvailable:
                        pass  # a live writer holds the thread: next sweep
                    result += SweepResult.of_thread(counts)
            await self._db.sync()
        return result

    async def start_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Run :meth:`asweep` every ``sweep_interval_minutes`` (the retention
        policy's by default) in a task of the running loop, until
        :meth:`stop_sweeper`; return the task.

        A sweep that fails is logged and tried again at the next interval
        (see :meth:`PostgresSaver.start_sweeper`).
        """
        interval = self._sweep_interval(sweep_interval_minutes)
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = SweeperTask(self.asweep, interval, SWEEPING)
        return self._sweeper.task

    async def stop_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the background sweeper after its sweep in progress, if any;
        return whether it ended within ``timeout`` seconds (``None``: wait)."""
        if self._sweeper is None or not await self._sweeper.stop(timeout):
            return self._sweeper is None
        self._sweeper = None
        return True
