"""``AsyncPostgresStore``: the asyncio shell over the store's core.

>>> from langgraph.store.postgres.aio import AsyncPostgresStore
>>> async with AsyncPostgresStore.from_conn_string(DB_URI) as store:  # doctest: +SKIP
...     await store.setup()
...     graph = builder.compile(store=store)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

from langgraph.store.base import BaseStore, Op, Result, TTLConfig
from psycopg import AsyncConnection, AsyncPipeline, Capabilities
from psycopg.pq import TransactionStatus

from langgraph.checkpoint.postgres._pg.access_async import Access, new_cursor
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
from langgraph.store.postgres._config import PostgresIndexConfig, sweep_interval
from langgraph.store.postgres._core import (
    NOT_SET_UP,
    PGVECTOR_MISSING,
    SWEEP_BATCH,
    SWEEPING,
    BasePostgresStore,
    not_set_up,
    pgvector_missing,
)
from langgraph.store.postgres._plan import Planned

__all__ = ["AsyncPostgresStore"]

logger = logging.getLogger("langgraph.store.postgres")

T = TypeVar("T")


_CLIENT = AsyncClient("AsyncPostgresStore", "PostgresStore", "aget, aput, asearch")


class AsyncPostgresStore(BaseStore, BasePostgresStore[Conn]):
    """LangGraph's long-term memory store in PostgreSQL, for asyncio.

    Give it a psycopg ``AsyncConnection`` or ``AsyncConnectionPool``; build it
    inside a running event loop. Everything else is as
    :class:`~langgraph.store.postgres.PostgresStore`. Its sync methods
    (``get``, ``put``, ``search``, ...) work from other threads while the
    store's loop runs; on the loop's own thread, or once that loop has
    stopped, they raise at once instead of waiting forever.

    Example::

        from langgraph.store.postgres import AsyncPostgresStore

        async with AsyncPostgresStore.from_conn_string(DB_URI) as store:
            await store.setup()
            await store.aput(("users", "alice"), "prefs", {"theme": "dark"})
            item = await store.aget(("users", "alice"), "prefs")
    """

    supports_ttl: bool = True

    def __init__(
        self,
        conn: Conn,
        *,
        pipe: AsyncPipeline | None = None,
        deserializer: Callable[[Any], dict[str, Any]] | None = None,
        index: PostgresIndexConfig | None = None,
        ttl: TTLConfig | None = None,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._configure(
            index=index,
            ttl=ttl,
            schema=schema,
            timeout=timeout,
            deserializer=deserializer,
        )
        self.conn = conn
        self.pipe = pipe
        self.lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        self.supports_pipeline = Capabilities().has_pipeline()
        self._db = Access(conn, pipe, self.lock, owner="store", timeout=self.timeout)
        self._ttl_sweeper: SweeperTask[int] | None = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        pool_config: PoolConfig | None = None,
        index: PostgresIndexConfig | None = None,
        ttl: TTLConfig | None = None,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[AsyncPostgresStore]:
        """Open a connection to ``conn_string`` (a pool with ``pool_config``)
        and yield a store that uses it; closed when the block ends."""
        async with connect(
            conn_string, pipeline=pipeline, pool_config=pool_config
        ) as opened:
            # The store owns what it opened: it reopens a lost connection.
            yield opened.adopt(
                cls(
                    opened.conn,
                    pipe=opened.pipe,
                    index=index,
                    ttl=ttl,
                    schema=schema,
                    timeout=timeout,
                )
            )

    # -- the BaseStore API ---------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in one transaction; reads see the store as it was
        before the batch's writes."""
        self.loop = followed_loop(self.loop)
        plan = self._plan(ops)
        documents: list[Any] = []
        queries: list[Any] = []
        if self.embeddings is not None:
            if plan.documents:
                documents = await self.embeddings.aembed_documents(
                    [d.text for d in plan.documents]
                )
            queries = list(
                await asyncio.gather(
                    *(self.embeddings.aembed_query(q) for q in plan.queries)
                )
            )
        if self._needs_pgvector_version(plan):
            self._remember_pgvector(
                await self._fetch(self._pgvector_version_statement())
            )
        planned = plan.statements(documents, queries)
        if not planned:
            return plan.results([], [], self._deserializer)
        try:
            rows = await self._db.retrying(partial(self._run, planned))
            again = plan.exact_searches(planned, rows)
            if again:
                planned += again
                rows += await self._db.retrying(partial(self._run, again))
        except NOT_SET_UP as exc:
            raise not_set_up(exc) from exc
        return plan.results(planned, rows, self._deserializer)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`abatch`, from a thread other than the store's loop."""
        return self._run_sync(self.abatch(ops))

    # -- I/O -------------------------------------------------------------------

    async def _run(self, planned: list[Planned]) -> list[list[Any]]:
        # See PostgresStore._run.
        if len(planned) == 1:
            statement = planned[0].statement
            role: Role = "write" if planned[0].handler == "none" else "read"
            async with self._db.cursor(role, self.timeout) as cur:
                await cur.execute(statement.sql, statement.params)
                # In a pipeline, a result (and its description) arrives only
                # when fetched: whether to fetch is the plan's to say.
                rows = await cur.fetchall() if planned[0].handler != "none" else []
                await self._db.sync()
                return [rows]
        async with self._db.connection(self.timeout) as conn:
            cursors = await self._execute_all(conn, [p.statement for p in planned])
            await self._db.sync()
            try:
                return [
                    await cur.fetchall() if entry.handler != "none" else []
                    for cur, entry in zip(cursors, planned)
                ]
            finally:
                for cur in cursors:
                    await cur.close()

    async def _execute_all(
        self, conn: AsyncConnection[Any], statements: list[Statement]
    ) -> list[Any]:
        cursors = [new_cursor(conn) for _ in statements]
        if self.supports_pipeline and self._implicit_transaction(conn):
            # See PostgresStore._execute_all.
            async with conn.pipeline():
                for cur, statement in zip(cursors, statements):
                    await cur.execute(statement.sql, statement.params)
        elif self.supports_pipeline:
            async with conn.pipeline(), conn.transaction():
                for cur, statement in zip(cursors, statements):
                    await cur.execute(statement.sql, statement.params)
        else:
            async with conn.transaction():
                for cur, statement in zip(cursors, statements):
                    await cur.execute(statement.sql, statement.params)
        return cursors

    def _implicit_transaction(self, conn: AsyncConnection[Any]) -> bool:
        """See ``PostgresStore._implicit_transaction``."""
        return (
            self.pipe is None
            and conn.autocommit
            and conn.info.transaction_status == TransactionStatus.IDLE
        )

    async def _fetch(self, statement: Statement) -> list[Any]:
        async def run() -> list[Any]:
            async with self._db.cursor("read", self.timeout) as cur:
                await cur.execute(statement.sql, statement.params)
                return await cur.fetchall()

        return await self._db.retrying(run)

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the store's loop and wait for it from this thread."""
        return run_on_loop(self.loop, coro, _CLIENT)

    # -- setup -----------------------------------------------------------------

    async def setup(self) -> None:
        """Create or update the store's tables; see ``PostgresStore.setup``."""
        try:
            # All histories are checked for a newer version before any is
            # migrated: a refusal leaves the database as it was.
            await self._db.migrate(self._migrations(), self.schema)
            ready = self._ivfflat_statement()
            if ready is not None and (await self._fetch(ready))[0][0]:
                await self._db.migrate(self._ivfflat_migrations(), self.schema)
        except PGVECTOR_MISSING as exc:
            raise pgvector_missing(exc) from exc
        if self._index is not None:
            self._check_embedding_type(
                await self._fetch(self._embedding_type_statement())
            )

    # -- TTL ---------------------------------------------------------------------

    async def sweep_ttl(self) -> int:
        """Delete the expired items (and their vectors); return how many.
        See ``PostgresStore.sweep_ttl``."""
        total = 0
        while True:
            deleted = await self._db.retrying(self._sweep_once)
            total += deleted
            if deleted < SWEEP_BATCH:
                return total

    async def _sweep_once(self) -> int:
        statement = self._sweep_statement()
        async with self._db.cursor("write", self.timeout) as cur:
            await cur.execute(statement.sql, statement.params)
            await self._db.sync()
            return cur.rowcount

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: int | None = None
    ) -> asyncio.Task[None]:
        """Sweep expired items every ``sweep_interval_minutes`` (the ttl
        config's, else 5) in a task, until :meth:`stop_ttl_sweeper`. A failed
        sweep is logged and tried again at the next interval."""
        if not self.ttl_config:
            return asyncio.create_task(asyncio.sleep(0))
        interval = sweep_interval(self.ttl_config, sweep_interval_minutes)
        if self._ttl_sweeper is None or not self._ttl_sweeper.running:
            self._ttl_sweeper = SweeperTask(self.sweep_ttl, interval * 60, SWEEPING)
        return self._ttl_sweeper.task

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper task; return whether it stopped within
        ``timeout`` seconds (``None``: wait until it has)."""
        if self._ttl_sweeper is None or not await self._ttl_sweeper.stop(timeout):
            return self._ttl_sweeper is None
        self._ttl_sweeper = None
        return True
