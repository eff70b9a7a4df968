"""``PostgresStore``: the sync shell over the store's core.

It borrows a connection (from the pool, or in turn on the shared one), runs
the statements :class:`~._batch.BatchPlan` prepared in one transaction and
one round trip, and hands the rows back. Embedding happens before a
connection is borrowed, so a slow embedding model never holds one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from langgraph.store.base import BaseStore, Op, Result, TTLConfig
from psycopg import Capabilities, Connection, Pipeline
from psycopg.pq import TransactionStatus

from langgraph.checkpoint.postgres._pg.access import Access, new_cursor
from langgraph.checkpoint.postgres._pg.cursors import Role
from langgraph.checkpoint.postgres._pg.opening import Conn, connect
from langgraph.checkpoint.postgres._pg.options import PoolConfig
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import SweeperThread
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

logger = logging.getLogger("langgraph.store.postgres")


class PostgresStore(BaseStore, BasePostgresStore[Conn]):
    """LangGraph's long-term memory store in PostgreSQL, with semantic search
    through pgvector and expiring items.

    Give it a psycopg ``Connection`` (shared by all calls, behind a lock) or a
    ``ConnectionPool`` (each call borrows its own). Call :meth:`setup` once
    per database (safe on every start). ``index`` enables semantic search
    (see :class:`~langgraph.store.postgres.base.PostgresIndexConfig`); ``ttl``
    sets default expiries (``{"default_ttl": minutes, "refresh_on_read":
    True, "omit_expired": False, "sweep_interval_minutes": 5}``). ``schema``
    keeps the tables in that Postgres schema; ``timeout`` bounds each call.

    Example::

        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string("postgresql://localhost/db") as store:
            store.setup()
            store.put(("users", "alice"), "prefs", {"theme": "dark"})
            store.get(("users", "alice"), "prefs").value  # {'theme': 'dark'}
    """

    supports_ttl: bool = True

    def __init__(
        self,
        conn: Conn,
        *,
        pipe: Pipeline | None = None,
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
        self.lock = threading.Lock()
        self.supports_pipeline = Capabilities().has_pipeline()
        self._db = Access(conn, pipe, self.lock, owner="store", timeout=self.timeout)
        self._ttl_sweeper: SweeperThread[int] | None = None

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        pool_config: PoolConfig | None = None,
        index: PostgresIndexConfig | None = None,
        ttl: TTLConfig | None = None,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[PostgresStore]:
        """Open a connection to ``conn_string`` (a pool with ``pool_config``)
        and yield a store that uses it; closed when the block ends."""
        with connect(conn_string, pipeline=pipeline, pool_config=pool_config) as opened:
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

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in one transaction; reads see the store as it was
        before the batch's writes."""
        plan = self._plan(ops)
        documents: list[Any] = []
        queries: list[Any] = []
        if self.embeddings is not None:
            if plan.documents:
                documents = self.embeddings.embed_documents(
                    [d.text for d in plan.documents]
                )
            queries = [self.embeddings.embed_query(q) for q in plan.queries]
        if self._needs_pgvector_version(plan):
            self._remember_pgvector(self._fetch(self._pgvector_version_statement()))
        planned = plan.statements(documents, queries)
        if not planned:
            return plan.results([], [], self._deserializer)
        try:
            rows = self._db.retrying(partial(self._run, planned))
            again = plan.exact_searches(planned, rows)
            if again:
                planned += again
                rows += self._db.retrying(partial(self._run, again))
        except NOT_SET_UP as exc:
            raise not_set_up(exc) from exc
        return plan.results(planned, rows, self._deserializer)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` on a worker thread, so the event loop runs on."""
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, ops)

    # -- I/O -------------------------------------------------------------------

    def _run(self, planned: list[Planned]) -> list[list[Any]]:
        """Run the statements in one transaction and one round trip; return
        the rows of each (empty for those that return none)."""
        if len(planned) == 1:
            statement = planned[0].statement
            role: Role = "write" if planned[0].handler == "none" else "read"
            with self._db.cursor(role, self.timeout) as cur:
                cur.execute(statement.sql, statement.params)
                # In a pipeline, a result (and its description) arrives only
                # when fetched: whether to fetch is the plan's to say.
                rows = cur.fetchall() if planned[0].handler != "none" else []
                self._db.sync()
                return [rows]
        with self._db.connection(self.timeout) as conn:
            cursors = self._execute_all(conn, [p.statement for p in planned])
            self._db.sync()
            try:
                return [
                    cur.fetchall() if entry.handler != "none" else []
                    for cur, entry in zip(cursors, planned)
                ]
            finally:
                for cur in cursors:
                    cur.close()

    def _execute_all(
        self, conn: Connection[Any], statements: list[Statement]
    ) -> list[Any]:
        cursors = [new_cursor(conn) for _ in statements]
        if self.supports_pipeline and self._implicit_transaction(conn):
            # Statements up to the pipeline's one Sync are one transaction of
            # the server's: all or nothing, and set_config(..., true) lasts
            # until its end. psycopg's transaction() in a pipeline nests two
            # more pipelines around its BEGIN and COMMIT, whose exits each
            # wait for a Sync: two more round trips (a semantic search, three
            # statements, ran a fifth slower).
            with conn.pipeline():
                for cur, statement in zip(cursors, statements):
                    cur.execute(statement.sql, statement.params)
        elif self.supports_pipeline:
            with conn.pipeline(), conn.transaction():
                for cur, statement in zip(cursors, statements):
                    cur.execute(statement.sql, statement.params)
        else:
            with conn.transaction():
                for cur, statement in zip(cursors, statements):
                    cur.execute(statement.sql, statement.params)
        return cursors

    def _implicit_transaction(self, conn: Connection[Any]) -> bool:
        """Whether a pipeline of ``conn`` runs in a transaction of its own:
        an autocommit connection, outside any transaction and pipeline."""
        return (
            self.pipe is None
            and conn.autocommit
            and conn.info.transaction_status == TransactionStatus.IDLE
        )

    def _fetch(self, statement: Statement) -> list[Any]:
        def run() -> list[Any]:
            with self._db.cursor("read", self.timeout) as cur:
                cur.execute(statement.sql, statement.params)
                return cur.fetchall()

        return self._db.retrying(run)

    # -- setup -----------------------------------------------------------------

    def setup(self) -> None:
        """Create the store's tables (and, with ``index=``, the pgvector
        extension, the vectors table and its index), or bring them up to date.

        Safe to call on every start, from several processes at once, and
        inside a transaction of the caller's. A database written by
        ``langgraph-checkpoint-postgres`` is recognised and only gets what it
        lacks; a database newer than this package is refused. An IVFFlat
        index is built once the table holds data to cluster (10 vectors per
        list): until then searches are exact, and a later ``setup()`` (the
        next start) builds it.
        """
        try:
            # All histories are checked for a newer version before any is
            # migrated: a refusal leaves the database as it was.
            self._db.migrate(self._migrations(), self.schema)
            ready = self._ivfflat_statement()
            if ready is not None and (self._fetch(ready))[0][0]:
                self._db.migrate(self._ivfflat_migrations(), self.schema)
        except PGVECTOR_MISSING as exc:
            raise pgvector_missing(exc) from exc
        if self._index is not None:
            self._check_embedding_type(self._fetch(self._embedding_type_statement()))

    # -- TTL ---------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete the expired items (and their vectors); return how many.

        Deletes in transactions of at most 1000 items, skipping items that
        another transaction holds (a concurrent sweeper or write).
        """
        total = 0
        while True:
            deleted = self._db.retrying(partial(self._sweep_once))
            total += deleted
            if deleted < SWEEP_BATCH:
                return total

    def _sweep_once(self) -> int:
        statement = self._sweep_statement()
        with self._db.cursor("write", self.timeout) as cur:
            cur.execute(statement.sql, statement.params)
            self._db.sync()
            return cur.rowcount

    def start_ttl_sweeper(
        self, sweep_interval_minutes: int | None = None
    ) -> concurrent.futures.Future[None]:
        """Sweep expired items every ``sweep_interval_minutes`` (the ttl
        config's, else 5) on a daemon thread, until :meth:`stop_ttl_sweeper`.

        Returns a future that completes when the sweeper stops; cancelling it
        stops the sweeper. Without a ttl config nothing expires: the future
        is already done. A failed sweep is logged and tried again at the next
        interval.
        """
        if not self.ttl_config:
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            future.set_result(None)
            return future
        interval = sweep_interval(self.ttl_config, sweep_interval_minutes)
        if self._ttl_sweeper is None or not self._ttl_sweeper.running:
            self._ttl_sweeper = SweeperThread(self.sweep_ttl, interval * 60, SWEEPING)
        return self._ttl_sweeper.future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; return whether it stopped within
        ``timeout`` seconds (``None``: wait until it has)."""
        if self._ttl_sweeper is None or not self._ttl_sweeper.stop(timeout):
            return self._ttl_sweeper is None
        self._ttl_sweeper = None
        return True

    def __del__(self) -> None:
        if getattr(self, "_ttl_sweeper", None) is not None:
            self.stop_ttl_sweeper(timeout=0.1)
