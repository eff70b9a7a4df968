"""SyncRetention: ``prune``, ``sweep`` and the background sweeper of
:class:`~langgraph.checkpoint.postgres.PostgresSaver`.

The saver inherits it; the statements and settings come from
``_retention_core`` (which ``BasePostgresSaver`` inherits), the I/O from the
saver's own helpers. ``_retention_async`` is its async twin.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from psycopg.errors import LockNotAvailable
from psycopg.rows import TupleRow

from langgraph.checkpoint.postgres._pg.access import Access, CallCursor
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import SweeperThread
from langgraph.checkpoint.postgres._retention_core import RetentionCore
from langgraph.checkpoint.postgres._sweep import SWEEPING, SweepPass, SweepResult

__all__ = ["SyncRetention"]


class SyncRetention(RetentionCore):
    """The retention methods of the sync saver."""

    # Set by PostgresSaver.__init__.
    _db: Access
    _sweeper: SweeperThread[SweepResult] | None

    if TYPE_CHECKING:
        # PostgresSaver's I/O helpers, declared for the type checker only:
        # at run time the saver's own are the only ones.
        def _cursor(self, role: Role) -> CallCursor: ...

        def _fetch(self, statement: Statement) -> list[TupleRow]: ...

        def _execute_all(self, statements: Sequence[Statement]) -> None: ...

    def prune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep: int | None = None,
    ) -> None:
        """Remove old checkpoints of ``thread_ids``, atomically.

        ``"keep_latest"`` keeps the newest checkpoint of each namespace with its
        writes, plus what reading it back needs: for threads that use a
        ``DeltaChannel``, the ancestors back to the nearest snapshot of each
        delta channel, so that the state rebuilt afterwards is unchanged; for a
        checkpoint older than format v4, the parent holding its pending sends.
        ``"keep_last"`` with ``keep=N`` does the same for the newest ``N``
        checkpoints of each namespace. As in ``langgraph-checkpoint-postgres``,
        a subgraph call's namespace (``node:task_id``) goes entirely with the
        root checkpoint it started from, the oldest kept checkpoint of a
        namespace is left with no parent, and writes go with the checkpoints
        deleted (writes saved before their checkpoint stay). ``"delete"``
        removes everything of those threads. Blobs no kept checkpoint
        references are removed.
        """
        self._execute_all(self._prune_statements(thread_ids, strategy, keep))

    # -- retention policy ----------------------------------------------------

    def sweep(self) -> SweepResult:
        """Apply the saver's ``retention`` policy once, to every thread.

        Threads are read a page of ``sweep_limit`` at a time and each page is
        swept in one transaction, thread by thread. A thread another sweeper
        (in any process) is sweeping, one whose rows a live writer holds, and
        one that received a checkpoint since the page was read are left for
        the next sweep. Returns what was removed::

            saver = PostgresSaver(pool, retention={"strategy": "keep_last", "keep": 20})
            removed = saver.sweep()
            print(removed.checkpoints, "checkpoints removed")
        """
        sweep = self._sweep_pass()
        total = SweepResult()
        while (page := sweep.next_page()) is not None:
            rows = self._fetch(page)
            sweep.receive(rows)
            if rows:
                total += self._db.retrying(partial(self._sweep_batch, sweep, rows))
        return total

    def _sweep_batch(self, sweep: SweepPass, rows: Sequence[TupleRow]) -> SweepResult:
        """Sweep a page of threads in one transaction."""
        newest = {row[0]: row[1] for row in rows}
        with self._cursor("write") as cur:
            conn = cur.connection
            with conn.transaction():
                for statement in (sweep.settings(), sweep.lock(rows)):
                    cur.execute(statement.sql, statement.params)
                mine = [row[0] for row in cur.fetchall()]
                result = SweepResult(skipped=len(rows) - len(mine))
                for thread_id in mine:
                    statement = sweep.thread(thread_id, newest[thread_id])
                    counts = None
                    try:
                        with conn.transaction():  # a savepoint
                            cur.execute(statement.sql, statement.params)
                            counts = cur.fetchone()
                    except LockNotAvailable:
                        pass  # a live writer holds the thread: next sweep
                    result += SweepResult.of_thread(counts)
            self._db.sync()
        return result

    def start_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Run :meth:`sweep` every ``sweep_interval_minutes`` (the retention
        policy's by default) on a daemon thread, until :meth:`stop_sweeper`.

        Returns a future that completes when the sweeper stops; cancelling it
        stops the sweeper. A sweep that fails is logged (logger
        ``langgraph.checkpoint.postgres.sweeper``) and tried again at the next
        interval. Starting a running sweeper returns its future.
        """
        interval = self._sweep_interval(sweep_interval_minutes)
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = SweeperThread(self.sweep, interval, SWEEPING)
        return self._sweeper.future

    def stop_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the background sweeper after its sweep in progress, if any;
        return whether it ended within ``timeout`` seconds (``None``: wait)."""
        if self._sweeper is None or not self._sweeper.stop(timeout):
            return self._sweeper is None
        self._sweeper = None
        return True
