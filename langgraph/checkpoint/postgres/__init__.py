"""PostgreSQL checkpoint saver for LangGraph (sync).

>>> from langgraph.checkpoint.postgres import PostgresSaver
>>> with PostgresSaver.from_conn_string(DB_URI) as saver:  # doctest: +SKIP
...     saver.setup()
...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import Capabilities, Pipeline
from psycopg.rows import TupleRow

from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.checkpoint.postgres._paging import ListPages
from langgraph.checkpoint.postgres._pg.access import Access, CallCursor
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.opening import Conn, connect
from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import SweeperThread
from langgraph.checkpoint.postgres._retention_sync import SyncRetention
from langgraph.checkpoint.postgres._sweep import RetentionConfig, SweepResult
from langgraph.checkpoint.postgres._writes import Batch, QueuedWrite, WriteQueue
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.postgres.shallow import ShallowPostgresSaver

__all__ = [
    "BasePostgresSaver",
    "Conn",
    "PostgresSaver",
    "RetentionConfig",
    "ShallowPostgresSaver",
    "SweepResult",
]


class PostgresSaver(SyncRetention, BasePostgresSaver):
    """Checkpoint saver that stores LangGraph state in PostgreSQL.

    Give it a psycopg ``Connection`` (shared by all calls, behind a lock) or a
    ``ConnectionPool`` (each call borrows its own connection, so calls from
    several threads run in parallel, and a call whose connection the server
    dropped is retried once on a fresh one). With a single connection you may
    also pass a ``Pipeline`` on it. Call :meth:`setup` once per database (it
    is safe on every start) before the first use.

    ``schema`` keeps the tables in that Postgres schema (created by
    :meth:`setup`) instead of the connection's ``search_path``. ``timeout``
    (seconds) bounds each database call: one the server does not answer in
    time raises :class:`~langgraph.checkpoint.postgres.base.CallTimeoutError`
    instead of hanging.

    Example::

        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string("postgresql://localhost/db") as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "1"}})
    """

    lock: threading.Lock

    def __init__(
        self,
        conn: Conn,
        pipe: Pipeline | None = None,
        serde: SerializerProtocol | None = None,
        *,
        schema: str | None = None,
        timeout: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> None:
        super().__init__(
            serde=serde, schema=schema, timeout=timeout, retention=retention
        )
        self.lock = threading.Lock()
        self._db = Access(conn, pipe, self.lock, owner="saver", timeout=self.timeout)
        self.conn = conn
        self.pipe = pipe
        self.supports_pipeline = Capabilities().has_pipeline()
        # Writes that wait for the shared connection are committed together.
        self._writes = None if self._db.pooled else WriteQueue()
        self._leading = threading.Lock()
        self._sweeper: SweeperThread[SweepResult] | None = None

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        serde: SerializerProtocol | None = None,
        pool_config: PoolConfig | None = None,
        schema: str | None = None,
        timeout: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> Iterator[PostgresSaver]:
        """Open a connection to ``conn_string`` and yield a saver that uses it.

        The saver owns that connection: when it is lost (a restart, a
        failover), the next call opens another from ``conn_string``.

        With ``pool_config`` (e.g. ``{"max_size": 10, "check": True}``) the
        saver opens and uses a ``ConnectionPool`` instead, so calls from
        several threads run in parallel. The connection, pipeline or pool
        closes when the block ends, after the saver's sweeper (if started)
        has stopped.
        """
        with connect(conn_string, pipeline=pipeline, pool_config=pool_config) as opened:
            # The saver owns what it opened: it reopens a lost connection.
            saver = opened.adopt(
                cls(
                    opened.conn,
                    opened.pipe,
                    serde=serde,
                    schema=schema,
                    timeout=timeout,
                    retention=retention,
                )
            )
            try:
                yield saver
            finally:
                # Its sweeper would only fail on the closed connection.
                saver.stop_sweeper()

    # -- I/O ---------------------------------------------------------------

    def _cursor(self, role: Role) -> CallCursor:
        return self._db.cursor(role, self.timeout)

    def _run(self, statement: Statement, *, fetch: bool) -> list[TupleRow]:
        with self._cursor("read" if fetch else "write") as cur:
            cur.execute(statement.sql, statement.params)
            if fetch:
                return cur.fetchall()
            self._db.sync()
            return []

    def _run_batch(self, batch: Batch) -> None:
        self._run_statements(batch.statements(), batch.prepare)

    def _run_statements(
        self, statements: Sequence[Statement], prepare: bool | None = None
    ) -> None:
        """Run ``statements`` (at least one) in one transaction."""
        first, *more = statements
        with self._cursor("write") as cur:
            if not more:
                cur.execute(first.sql, first.params, prepare=prepare)
            else:
                # One round trip where the pipeline allows, in an explicit
                # transaction: Citus treats statements of a pipeline's
                # implicit transaction as separate ones, each committed alone.
                conn = cur.connection
                together = conn.pipeline() if self.supports_pipeline else nullcontext()
                with together, conn.transaction():
                    for statement in (first, *more):
                        cur.execute(statement.sql, statement.params, prepare=False)
            self._db.sync()

    def _read_page(
        self, statement: Statement
    ) -> tuple[list[CheckpointTuple], TupleRow | None]:
        """Run a ``list()`` page's query, decoding each row as it arrives.

        Returns the page's tuples and its last raw row, where the next page
        resumes. Rows stream in one by one, so the client decodes a row while
        the server still computes the next ones, instead of waiting for the
        whole page and then decoding it while the server idles.
        """
        with self._cursor("read") as cur:
            if cur.connection.pgconn.pipeline_status:
                # psycopg cannot stream in pipeline mode: the page comes whole.
                cur.execute(statement.sql, statement.params)
                rows = cur.fetchall()
                return self._load_tuples(rows), rows[-1] if rows else None
            last: TupleRow | None = None
            tuples: list[CheckpointTuple] = []
            for last in cur.stream(statement.sql, statement.params):
                tuples.append(self._load_tuple(last))
            return tuples, last

    def _fetch(self, statement: Statement) -> list[TupleRow]:
        # Every statement is safe to repeat (reads, upserts, idempotent
        # deletes, copies), so a call whose pooled connection broke runs again.
        return self._db.retrying(partial(self._run, statement, fetch=True))

    def _on_citus(self) -> bool:
        if (statement := self._on_citus_statement()) is not None:
            self._citus = bool(self._fetch(statement)[0][0])
        return bool(self._citus)

    def _list_by_keys(self, pages: ListPages) -> Iterator[CheckpointTuple]:
        """A list across threads on Citus: each page's keys, then its rows
        thread by thread, each query on one shard."""
        while (statement := pages.next_keys_statement()) is not None:
            keys = self._fetch(statement)
            pages.receive(len(keys), keys[-1] if keys else None)
            rows: list[TupleRow] = []
            for query in pages.rows_statements(keys):
                rows += self._fetch(query)
            yield from self._load_tuples(pages.in_key_order(keys, rows))

    def _execute(self, statement: Statement) -> None:
        self._db.retrying(partial(self._run, statement, fetch=False))

    def _execute_all(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in one transaction (nothing for none)."""
        if statements:
            self._db.retrying(partial(self._run_statements, statements))

    def _execute_batch(self, batch: Batch) -> None:
        if self._writes is None:  # a pool: every call has its own connection
            self._db.retrying(partial(self._run_batch, batch))
            return
        # A write that a failover interrupted is queued again, on the
        # reopened connection of a saver that owns it.
        self._db.retrying(partial(self._queue_write, batch))

    def _queue_write(self, batch: Batch) -> None:
        """Commit ``batch`` on the shared connection, with the writes that
        queued for it meanwhile."""
        assert self._writes is not None  # not a pool
        entry = self._writes.add(batch)
        with self._leading:
            # An earlier leader may have committed this write with its group.
            if not entry.done:
                group = self._writes.take(entry)
                try:
                    self._run_group(group)
                finally:
                    self._writes.put_back(group, entry)
        entry.outcome()

    def _run_group(self, group: list[QueuedWrite]) -> None:
        """Commit ``group`` in one transaction, or else each write alone."""
        if len(group) > 1 and (together := WriteQueue.combined(group)) is not None:
            try:
                self._run_batch(together)
            except Exception:
                pass  # one by one below, so each caller gets its own error
            else:
                for entry in group:
                    entry.finish()
                return
        for entry in group:
            try:
                self._run_batch(entry.batch)
            except Exception as error:
                entry.finish(error)
            else:
                entry.finish()

    # -- API ---------------------------------------------------------------

    def setup(self) -> None:
        """Create the tables, or migrate them to this package's version.

        Safe to call on every start and from several processes at once: a
        transaction-scoped advisory lock lets one migrate while the others
        wait. Migrations apply in one transaction, except that on a populated
        database an index is built ``CONCURRENTLY`` outside it (when no
        transaction of the caller is open), so writers are not locked out.
        A step the server aborts because it deadlocked with another session
        (another ``setup()``, or a transaction of the application) was rolled
        back and runs again, unless it ran in the caller's transaction.
        """
        self._db.migrate(SAVER_MIGRATIONS, self.schema)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint ``config`` names, or the thread's latest.

        ``config["configurable"]`` holds ``thread_id``, optionally
        ``checkpoint_ns`` (default ``""``) and ``checkpoint_id``.
        """
        rows = self._fetch(self._get_tuple_statement(config))
        return self._load_tuple(rows[0]) if rows else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Yield checkpoints, newest first.

        ``config=None`` lists every thread; a config without ``checkpoint_ns``
        lists every namespace of its thread. ``filter`` matches metadata by
        JSON containment, ``before`` keeps checkpoints older than the one it
        names, ``limit`` caps the count. Rows arrive in pages; between pages
        no connection or lock is held, so the loop body may call the saver.
        """
        pages = self._list_pages(config, filter=filter, before=before, limit=limit)
        if pages.spans_threads and self._on_citus():
            yield from self._list_by_keys(pages)
            return
        while (statement := pages.next_statement()) is not None:
            tuples, last = self._db.retrying(partial(self._read_page, statement))
            pages.receive(len(tuples), last)
            yield from tuples

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` (and its new channel values) in one statement.

        Returns the config that names the stored checkpoint.
        """
        batch, next_config = self._put_statement(
            config, checkpoint, metadata, new_versions
        )
        self._execute_batch(batch)
        return next_config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes a task made against the checkpoint ``config`` names."""
        batch = self._put_writes_statement(config, writes, task_id, task_path)
        if batch is not None:
            self._execute_batch(batch)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of ``thread_id``, atomically."""
        self._execute(self._delete_thread_statement(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is listed.

        Their writes go with them, in every namespace, and so do the blobs no
        remaining checkpoint references; all in one transaction.
        """
        # The threads first (a query that may visit every Citus shard), then
        # one statement per thread, all in one transaction.
        query = self._threads_of_runs_statement(run_ids)
        if query is not None:
            rows = self._fetch(query)
            self._execute_all(self._delete_for_runs_statements(query, rows))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread to another thread id.

        Ids, parent links, metadata and namespaces are kept, so the copy has
        the same state and history; the source is unchanged.
        """
        self._execute(self._copy_thread_statement(source_thread_id, target_thread_id))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walk the ancestors of a checkpoint for ``channels``, in one query.

        Returns what ``BaseCheckpointSaver.get_delta_channel_history`` does, in
        a single round trip however deep the thread is.
        """
        if not channels:
            return {}
        rows = self._fetch(self._delta_history_statement(config, channels))
        return self._load_delta_history(rows, channels)
