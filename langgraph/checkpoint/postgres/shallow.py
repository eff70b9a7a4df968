"""Deprecated shallow savers: the latest checkpoint of each thread, no history.

``ShallowPostgresSaver`` and ``AsyncShallowPostgresSaver`` are here so that
code written for ``langgraph-checkpoint-postgres`` keeps working, on the
databases it wrote. New code should use
:class:`~langgraph.checkpoint.postgres.PostgresSaver` and run graphs with
``durability="exit"``.

>>> from langgraph.checkpoint.postgres import ShallowPostgresSaver
>>> with ShallowPostgresSaver.from_conn_string(DB_URI) as saver:  # doctest: +SKIP
...     saver.setup()
...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncPipeline, Capabilities, Pipeline
from psycopg.rows import TupleRow

from langgraph.checkpoint.postgres._pg import (
    access,
    access_async,
    opening,
    opening_async,
)
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.loop_bridge import (
    AsyncClient,
    followed_loop,
    run_on_loop,
)
from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._shallow import (
    SHALLOW_MIGRATIONS,
    BaseShallowSaver,
    warn_deprecated,
)
from langgraph.checkpoint.postgres._writes import Batch

__all__ = ["AsyncShallowPostgresSaver", "ShallowPostgresSaver"]

T = TypeVar("T")


class ShallowPostgresSaver(BaseShallowSaver):
    """Deprecated: a saver that keeps only the latest checkpoint of each thread.

    Each ``put`` replaces the stored checkpoint of its (thread, namespace), so
    there is no history to list or travel back to; ``get_tuple`` returns the
    latest checkpoint whatever ``checkpoint_id`` the config names, and
    ``list`` yields at most one checkpoint per namespace. ``delete_thread``,
    ``copy_thread``, ``prune`` and ``delete_for_runs`` are not implemented
    (``NotImplementedError``), as in ``langgraph-checkpoint-postgres``.

    Its tables are that package's shallow layout, which shares its table
    names with :class:`~langgraph.checkpoint.postgres.PostgresSaver`'s but not
    their columns: give each kind of saver its own database or ``schema=``.
    Connections, pools, pipelines, ``schema`` and ``timeout`` work as for
    ``PostgresSaver``. Creating one emits a ``DeprecationWarning``.

    Example::

        from langgraph.checkpoint.postgres import ShallowPostgresSaver

        with ShallowPostgresSaver.from_conn_string(DB_URI) as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "1"}})

    The replacement keeps one checkpoint per run rather than per step::

        with PostgresSaver.from_conn_string(DB_URI) as saver:
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, config, durability="exit")
    """

    lock: threading.Lock

    def __init__(
        self,
        conn: opening.Conn,
        pipe: Pipeline | None = None,
        serde: SerializerProtocol | None = None,
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        warn_deprecated("ShallowPostgresSaver", "PostgresSaver", "graph.invoke")
        super().__init__(serde=serde, schema=schema, timeout=timeout)
        self.lock = threading.Lock()
        self._db = access.Access(
            conn, pipe, self.lock, owner="saver", timeout=self.timeout
        )
        self.conn = conn
        self.pipe = pipe
        self.supports_pipeline = Capabilities().has_pipeline()

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
    ) -> Iterator[ShallowPostgresSaver]:
        """Open a connection (or, with ``pool_config``, a pool) to
        ``conn_string`` and yield a saver that uses it until the block ends."""
        with opening.connect(
            conn_string, pipeline=pipeline, pool_config=pool_config
        ) as opened:
            yield opened.adopt(
                cls(
                    opened.conn,
                    opened.pipe,
                    serde=serde,
                    schema=schema,
                    timeout=timeout,
                )
            )

    # -- I/O ---------------------------------------------------------------

    def _read(self, statement: Statement) -> list[TupleRow]:
        with self._db.cursor("read", self.timeout) as cur:
            cur.execute(statement.sql, statement.params)
            return cur.fetchall()

    def _write(self, batch: Batch) -> None:
        first, *more = batch.statements()
        with self._db.cursor("write", self.timeout) as cur:
            if not more:
                cur.execute(first.sql, first.params, prepare=batch.prepare)
            else:  # thousands of channels: several statements, one transaction
                with cur.connection.transaction():
                    for statement in (first, *more):
                        cur.execute(statement.sql, statement.params, prepare=False)
            self._db.sync()

    # Every statement is safe to repeat (a read, or a put that converges on
    # the same rows), so a call whose pooled connection broke runs again.

    def _fetch(self, statement: Statement) -> list[TupleRow]:
        return self._db.retrying(partial(self._read, statement))

    def _store(self, batch: Batch) -> None:
        self._db.retrying(partial(self._write, batch))

    # -- API ---------------------------------------------------------------

    def setup(self) -> None:
        """Create the shallow tables, or bring them to their latest version.

        Safe on every start and from several processes at once. Refuses
        (``IncompatibleSchemaError``) tables that ``PostgresSaver`` created.
        """
        self._db.migrate(SHALLOW_MIGRATIONS, self.schema)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the latest checkpoint of the config's thread and namespace."""
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
        """Yield the stored checkpoints that match, newest first: at most one
        per (thread, namespace). Arguments as for ``PostgresSaver.list``."""
        statement = self._list_statement(
            config, filter=filter, before=before, limit=limit
        )
        for row in self._fetch(statement):
            yield self._load_tuple(row)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` in place of its namespace's previous one.

        Writes saved against older checkpoints than the one ``config`` names
        are deleted. Returns the config naming the stored checkpoint.
        """
        batch, next_config = self._put_statement(
            config, checkpoint, metadata, new_versions
        )
        self._store(batch)
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
            self._store(batch)


class AsyncShallowPostgresSaver(BaseShallowSaver):
    """Deprecated: the asyncio twin of :class:`ShallowPostgresSaver`.

    Keeps only the latest checkpoint of each thread, in the same tables;
    takes an ``AsyncConnection``, an ``AsyncConnectionPool`` or a connection
    and its ``AsyncPipeline``. The sync methods (``get_tuple``, ``list``,
    ``put``, ``put_writes``) work from threads other than the one running
    the saver's event loop. Creating one emits a ``DeprecationWarning``.

    Example::

        from langgraph.checkpoint.postgres.aio import AsyncShallowPostgresSaver

        async with AsyncShallowPostgresSaver.from_conn_string(DB_URI) as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": "1"}})
    """

    lock: asyncio.Lock

    def __init__(
        self,
        conn: opening_async.Conn,
        pipe: AsyncPipeline | None = None,
        serde: SerializerProtocol | None = None,
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        warn_deprecated(
            "AsyncShallowPostgresSaver", "AsyncPostgresSaver", "await graph.ainvoke"
        )
        super().__init__(serde=serde, schema=schema, timeout=timeout)
        self.lock = asyncio.Lock()
        self._db = access_async.Access(
            conn, pipe, self.lock, owner="saver", timeout=self.timeout
        )
        self.conn = conn
        self.pipe = pipe
        self.supports_pipeline = Capabilities().has_pipeline()
        # Created outside a loop, the saver adopts the loop of its first call
        # (the existing package refuses to be created there).
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
    ) -> AsyncIterator[AsyncShallowPostgresSaver]:
        """Open a connection (or, with ``pool_config``, a pool) to
        ``conn_string`` and yield a saver that uses it until the block ends."""
        async with opening_async.connect(
            conn_string, pipeline=pipeline, pool_config=pool_config
        ) as opened:
            yield opened.adopt(
                cls(
                    opened.conn,
                    opened.pipe,
                    serde=serde,
                    schema=schema,
                    timeout=timeout,
                )
            )

    # -- I/O (see ShallowPostgresSaver) ------------------------------------

    def _remember_loop(self) -> None:
        self.loop = followed_loop(self.loop)

    def _cursor(self, role: Role) -> access_async.CallCursor:
        self._remember_loop()
        return self._db.cursor(role, self.timeout)

    async def _read(self, statement: Statement) -> list[TupleRow]:
        async with self._cursor("read") as cur:
            await cur.execute(statement.sql, statement.params)
            return await cur.fetchall()

    async def _write(self, batch: Batch) -> None:
        first, *more = batch.statements()
        async with self._cursor("write") as cur:
            if not more:
                await cur.execute(first.sql, first.params, prepare=batch.prepare)
            else:
                async with cur.connection.transaction():
                    for statement in (first, *more):
                        await cur.execute(
                            statement.sql, statement.params, prepare=False
                        )
            await self._db.sync()

    async def _fetch(self, statement: Statement) -> list[TupleRow]:
        return await self._db.retrying(partial(self._read, statement))

    async def _store(self, batch: Batch) -> None:
        await self._db.retrying(partial(self._write, batch))

    # -- async API ---------------------------------------------------------

    async def setup(self) -> None:
        """Create the shallow tables (see :meth:`ShallowPostgresSaver.setup`)."""
        self._remember_loop()
        await self._db.migrate(SHALLOW_MIGRATIONS, self.schema)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the latest checkpoint of the config's thread and namespace."""
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
        """Yield the stored checkpoints that match, newest first (see
        :meth:`ShallowPostgresSaver.list`)."""
        statement = self._list_statement(
            config, filter=filter, before=before, limit=limit
        )
        for row in await self._fetch(statement):
            yield self._load_tuple(row)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` in place of its namespace's previous one."""
        batch, next_config = self._put_statement(
            config, checkpoint, metadata, new_versions
        )
        await self._store(batch)
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
            await self._store(batch)

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
        statement = self._list_statement(
            config, filter=filter, before=before, limit=limit
        )
        for row in self._run_sync(self._fetch(statement)):
            yield self._load_tuple(row)

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

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the saver's loop and wait for it from this thread."""
        return run_on_loop(self.loop, coro, _ASYNC_SHALLOW)


_ASYNC_SHALLOW = AsyncClient(
    "AsyncShallowPostgresSaver", "ShallowPostgresSaver", "aget_tuple, alist, aput"
)
