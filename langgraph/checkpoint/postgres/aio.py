"""PostgreSQL checkpoint saver for LangGraph (asyncio).

>>> from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
>>> async with AsyncPostgresSaver.from_conn_string(DB_URI) as saver:  # doctest: +SKIP
...     await saver.setup()
...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncPipeline, Capabilities
from psycopg.rows import TupleRow

from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.checkpoint.postgres._paging import ListPages
from langgraph.checkpoint.postgres._pg.access_async import Access, CallCursor
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.loop_bridge import (
    AsyncClient,
    followed_loop,
    run_on_loop,
)
from langgraph.checkpoint.postgres._pg.opening_async import Conn, connect
from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import SweeperTask
from langgraph.checkpoint.postgres._retention_async import AsyncRetention
from langgraph.checkpoint.postgres._sweep import RetentionConfig, SweepResult
from langgraph.checkpoint.postgres._writes import Batch, QueuedWrite, WriteQueue
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.postgres.shallow import AsyncShallowPostgresSaver

__all__ = ["AsyncPostgresSaver", "AsyncShallowPostgresSaver", "Conn"]

T = TypeVar("T")


class AsyncPostgresSaver(AsyncRetention, BasePostgresSaver):
    """Asynchronous checkpoint saver that stores LangGraph state in PostgreSQL.

    Give it a psycopg ``AsyncConnection`` (shared by all calls, behind a lock)
    or an ``AsyncConnectionPool`` (each call borrows its own connection, so
    concurrent tasks run in parallel). With a single connection you may also
    pass an ``AsyncPipeline`` on it. Await :meth:`setup` once per database
    before the first use. ``schema`` and ``timeout`` work as on
    :class:`~langgraph.checkpoint.postgres.PostgresSaver`, and so does the
    retry of a call whose pooled connection the server dropped.

    The synchronous methods (``get_tuple``, ``list``, ``put``, ...) work from
    other threads, by running the async method on the saver's event loop (the
    loop it was created in, or first used in; if that loop has stopped, the
    next loop an async method runs in) while that loop runs in another thread.
    They never wait for a loop that cannot answer: called on the loop's own
    thread they raise ``asyncio.InvalidStateError``, and when the loop is
    closed, not running, or stops during the call, they raise ``RuntimeError``
    at once instead of hanging.

    Example::

        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(DB_URI) as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": "1"}})
    """

    lock: asyncio.Lock

    def __init__(
        self,
        conn: Conn,
        pipe: AsyncPipeline | None = None,
        serde: SerializerProtocol | None = None,
        *,
        schema: str | None = None,
        timeout: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> None:
        super().__init__(
            serde=serde, schema=schema, timeout=timeout, retention=retention
        )
        self.lock = asyncio.Lock()
        self._db = Access(conn, pipe, self.lock, owner="saver", timeout=self.timeout)
        self.conn = conn
        self.pipe = pipe
        self.supports_pipeline = Capabilities().has_pipeline()
        # Writes that wait for the shared connection are committed together.
        self._writes = None if self._db.pooled else WriteQueue()
        self._leading = asyncio.Lock()
        self._sweeper: SweeperTask[SweepResult] | None = None
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        serde: SerializerProtocol | None = None,
        pool_config: PoolConfig | None = None,
        schema: str | None = None,
        timeout: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """Open a connection to ``conn_string`` and yield a saver that uses it.

        The saver owns that connection and reopens it when lost (see
        :meth:`PostgresSaver.from_conn_string`).

        With ``pool_config`` (e.g. ``{"max_size": 10, "check": True}``) the
        saver opens and uses an ``AsyncConnectionPool`` instead, so concurrent
        tasks run in parallel. The connection, pipeline or pool closes when
        the block ends, after the saver's sweeper (if started) has stopped.
        """
        async with connect(
            conn_string, pipeline=pipeline, pool_config=pool_config
        ) as opened:
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
                await saver.stop_sweeper()

    # -- I/O ---------------------------------------------------------------

    def _cursor(self, role: Role) -> CallCursor:
        self._remember_loop()
        return self._db.cursor(role, self.timeout)

    async def _run(self, statement: Statement, *, fetch: bool) -> list[TupleRow]:
        async with self._cursor("read" if fetch else "write") as cur:
            await cur.execute(statement.sql, statement.params)
            if fetch:
                return await cur.fetchall()
            await self._db.sync()
            return []

    async def _run_batch(self, batch: Batch) -> None:
        await self._run_statements(batch.statements(), batch.prepare)

    async def _run_statements(
        self, statements: Sequence[Statement], prepare: bool | None = None
    ) -> None:
        # See PostgresSaver._run_statements.
        first, *more = statements
        async with self._cursor("write") as cur:
            if not more:
                await cur.execute(first.sql, first.params, prepare=prepare)
            else:
                conn = cur.connection
                together = conn.pipeline() if self.supports_pipeline else nullcontext()
                async with together, conn.transaction():
                    for statement in (first, *more):
                        await cur.execute(
                            statement.sql, statement.params, prepare=False
                        )
            await self._db.sync()

    async def _load_while_fetching(
        self, rows: list[TupleRow], statement: Statement
    ) -> tuple[list[CheckpointTuple], list[TupleRow]]:
        """Decode ``rows`` while the server runs ``statement``; return both.

        Empties ``rows``, so that a page's raw rows and the next page's are
        not held at once. (The sync saver streams each page's rows instead;
        in asyncio, waiting for every row costs more than it gains.)
        """
        async with self._cursor("read") as cur:
            conn = cur.connection
            async with conn.pipeline() if self.supports_pipeline else nullcontext():
                await cur.execute(statement.sql, statement.params)
                tuples = self._load_tuples(rows)
                rows.clear()  # free this page's raw rows before the next arrives
                return tuples, await cur.fetchall()

    async def _fetch(self, statement: Statement) -> list[TupleRow]:
        # See PostgresSaver._fetch: every statement is safe to repeat.
        return await self._db.retrying(partial(self._run, statement, fetch=True))

    async def _on_citus(self) -> bool:
        if (statement := self._on_citus_statement()) is not None:
            self._citus = bool((await self._fetch(statement))[0][0])
        return bool(self._citus)

    async def _list_by_keys(self, pages: ListPages) -> AsyncIterator[CheckpointTuple]:
        # See PostgresSaver._list_by_keys.
        while (statement := pages.next_keys_statement()) is not None:
            keys = await self._fetch(statement)
            pages.receive(len(keys), keys[-1] if keys else None)
            rows: list[TupleRow] = []
            for query in pages.rows_statements(keys):
                rows += await self._fetch(query)
            for row in pages.in_key_order(keys, rows):
                yield self._load_tuple(row)

    async def _execute(self, statement: Statement) -> None:
        await self._db.retrying(partial(self._run, statement, fetch=False))

    async def _execute_all(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in one transaction (nothing for none)."""
        if statements:
            await self._db.retrying(partial(self._run_statements, statements))

    async def _execute_batch(self, batch: Batch) -> None:
        # See PostgresSaver._execute_batch.
        if self._writes is None:
            await self._db.retrying(partial(self._run_batch, batch))
            return
        await self._db.retrying(partial(self._queue_write, batch))

    async def _queue_write(self, batch: Batch) -> None:
        # See PostgresSaver._queue_write.
        assert self._writes is not None  # not a pool
        entry = self._writes.add(batch)
        async with self._leading:
            if not entry.done:
                group = self._writes.take(entry)
                try:
                    await self._run_group(group)
                finally:
                    self._writes.put_back(group, entry)
        entry.outcome()

    async def _run_group(self, group: list[QueuedWrite]) -> None:
        # See PostgresSaver._run_group.
        if len(group) > 1 and (together := WriteQueue.combined(group)) is not None:
            try:
                await self._run_batch(together)
            except Exception:
                pass
            else:
                for entry in group:
                    entry.finish()
                return
        for entry in group:
            try:
                await self._run_batch(entry.batch)
            except Exception as error:
                entry.finish(error)
            else:
                entry.finish()

    # -- async API ---------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables, or migrate them to this package's version.

        See :meth:`PostgresSaver.setup`: safe to call on every start and from
        several processes at once; on a populated database new indexes are
        built without locking out writers.
        """
        self._remember_loop()
        await self._db.migrate(SAVER_MIGRATIONS, self.schema)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint ``config`` names, or the thread's latest."""
        rows = await self._fetch(self._get_tuple_statement(config))
        return self._load_tuple(rows[0]) if rows else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Yield checkpoints, newest first (see :meth:`PostgresSaver.list`)."""
        pages = self._list_pages(config, filter=filter, before=before, limit=limit)
        if pages.spans_threads and await self._on_citus():
            async for item in self._list_by_keys(pages):
                yield item
            return
        if (statement := pages.next_statement()) is None:
            return
        rows = await self._fetch(statement)
        while True:
            pages.receive(len(rows), rows[-1] if rows else None)
            if (statement := pages.next_statement()) is None:
                for row in rows:
                    yield self._load_tuple(row)
                return
            tuples, rows = await self._db.retrying(
                partial(self._load_while_fetching, rows, statement)
            )
            for item in tuples:
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` (and its new channel values) in one statement."""
        batch, next_config = self._put_statement(
            config, checkpoint, metadata, new_versions
        )
        await self._execute_batch(batch)
        return next_config

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes a task made against the checkpoint ``config`` names."""
        batch = self._put_writes_statement(config, writes, task_id, task_path)
        if batch is not None:
            await self._execute_batch(batch)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of ``thread_id``, atomically."""
        await self._execute(self._delete_thread_statement(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is listed.

        See :meth:`PostgresSaver.delete_for_runs`.
        """
        # The threads first (a query that may visit every Citus shard), then
        # one statement per thread, all in one transaction.
        query = self._threads_of_runs_statement(run_ids)
        if query is not None:
            rows = await self._fetch(query)
            await self._execute_all(self._delete_for_runs_statements(query, rows))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread to another thread id.

        See :meth:`PostgresSaver.copy_thread`.
        """
        await self._execute(
            self._copy_thread_statement(source_thread_id, target_thread_id)
        )

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walk the ancestors of a checkpoint for ``channels``, in one query."""
        if not channels:
            return {}
        rows = await self._fetch(self._delta_history_statement(config, channels))
        return self._load_delta_history(rows, channels)

    # -- sync API, for callers on other threads ----------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run_sync(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        items = self.alist(config, filter=filter, before=before, limit=limit)
        while True:
            try:
                yield self._run_sync(_next_item(items))
            except StopAsyncIteration:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run_sync(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        return self._run_sync(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        return self._run_sync(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        return self._run_sync(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        return self._run_sync(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep: int | None = None,
    ) -> None:
        return self._run_sync(self.aprune(thread_ids, strategy=strategy, keep=keep))

    def sweep(self) -> SweepResult:
        return self._run_sync(self.asweep())

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._run_sync(
            self.aget_delta_channel_history(config=config, channels=channels)
        )

    # -- helpers -----------------------------------------------------------

    def _remember_loop(self) -> None:
        self.loop = followed_loop(self.loop)

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the saver's loop and wait for it from this thread."""
        return run_on_loop(self.loop, coro, _CLIENT)


_CLIENT = AsyncClient("AsyncPostgresSaver", "PostgresSaver", "aget_tuple, alist, aput")


async def _next_item(items: AsyncIterator[T]) -> T:
    return await items.__anext__()
