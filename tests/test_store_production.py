"""The store in production: what the savers' production tests prove, for the store.

A batch of writes is one transaction; everything works through PgBouncer in
transaction mode; ``setup()`` is safe under concurrent callers, inside a
caller's transaction and on a connection without autocommit, and refuses a
database migrated by a newer release; named schemas are isolated; a pooled
connection the server dropped is replaced; ``timeout=`` bounds a blocked call;
hostile input is refused before any I/O; one batch never holds two
connections of a pool; a cancelled async call leaves the store usable; and the
async store's sync methods never wait for a loop that cannot answer.

Each scenario is written once, as a coroutine against :class:`Api`, and runs
for sync stores (called directly) and async stores (awaited) alike; ``a...``
kinds are async. Everything runs against a real server; every call that could
hang is bounded (a thread joined with a timeout, ``asyncio.wait_for``), so a
regression fails its test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
import pytest
from langgraph.store.base import (
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from psycopg import AsyncConnection, Connection, pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres._pg.errors import (
    IncompatibleSchemaError as PgIncompatibleSchemaError,
)
from langgraph.checkpoint.postgres.base import (
    CallTimeoutError,
    ConnectionLostError,
    IncompatibleSchemaError,
)
from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from langgraph.store.postgres._migrations import EXT_MIGRATIONS, STORE_MIGRATIONS
from tests.conftest import Databases
from tests.dbcheck import refuse_inserts
from tests.loop_thread import GUARD, LoopThread, client_on_loop
from tests.pgbouncer import (
    POOL_SIZE,
    PgBouncer,
    pgbouncer_or_skip,
)
from tests.stores import (
    ASYNC_STORE_KINDS,
    SYNC_STORE_KINDS,
    async_store,
    require_pgvector,
    sync_store,
)

T = TypeVar("T")

RECOMMENDED: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}

ALL_KINDS = SYNC_STORE_KINDS + ASYNC_STORE_KINDS
POOL_KINDS = ["pool", "pool-defaults", "apool", "apool-defaults"]

#: The store's tables, in the order they are dumped.
STORE_TABLES = (
    "store",
    "store_vectors",
    "store_migrations",
    "vector_migrations",
    "store_ext_migrations",
)
STORE_VERSIONS = list(range(STORE_MIGRATIONS.latest + 1))
EXT_VERSIONS = list(range(EXT_MIGRATIONS.latest + 1))

#: How many threads (sync) or tasks (async) race to set up an empty database.
RACERS = 16


# -- a sync or async store behind one awaitable interface --------------------------


class Api:
    """Calls a :class:`PostgresStore` directly, or an async store's ``a*``
    methods (``setup`` and ``sweep_ttl`` are coroutines there already)."""

    _PREFIXED = {"batch", "put", "get", "search", "list_namespaces", "delete"}

    def __init__(self, store: PostgresStore | AsyncPostgresStore) -> None:
        self.store = store
        self.is_async = isinstance(store, AsyncPostgresStore)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async and name in self._PREFIXED:
            name = "a" + name
        result = getattr(self.store, name)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    async def setup(self) -> None:
        await self._call("setup")

    async def sweep_ttl(self) -> int:
        return await self._call("sweep_ttl")

    async def batch(self, ops: list[Any]) -> list[Any]:
        return await self._call("batch", ops)

    async def put(self, *args: Any, **kwargs: Any) -> None:
        await self._call("put", *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get", *args, **kwargs)

    async def search(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._call("search", *args, **kwargs)

    async def list_namespaces(self, **kwargs: Any) -> list[tuple[str, ...]]:
        return await self._call("list_namespaces", **kwargs)

    async def delete(self, *args: Any) -> None:
        await self._call("delete", *args)


@asynccontextmanager
async def open_api(kind: str, uri: str, **options: Any) -> AsyncIterator[Api]:
    """An :class:`Api` over a store of ``kind`` on ``uri`` (see tests/stores.py)."""
    if kind in SYNC_STORE_KINDS:
        with sync_store(kind, uri, **options) as store:
            yield Api(store)
    else:
        async with async_store(kind, uri, **options) as astore:
            yield Api(astore)


@pytest.fixture(params=ALL_KINDS)
async def api(request: pytest.FixtureRequest, db_uri: str) -> AsyncIterator[Api]:
    """A store of every connection kind, sync and async, on this test's database."""
    async with open_api(request.param, db_uri) as a:
        yield a


# -- looking at the database from outside ------------------------------------------


def _dbname(uri: str) -> str:
    return str(conninfo_to_dict(uri)["dbname"])


def _observer(uri: str) -> psycopg.Connection[Any]:
    """An autocommit connection that gives up on a lock instead of hanging."""
    return psycopg.connect(
        uri, autocommit=True, options="-c lock_timeout=10s -c statement_timeout=60s"
    )


def _present(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        (schema, list(STORE_TABLES)),
    ).fetchall()
    present = {r[0] for r in rows}
    return [t for t in STORE_TABLES if t in present]


def _dump(uri: str, schema: str = "public") -> dict[str, list[str]]:
    """Every row of the store's tables in ``schema``, as text."""
    with _observer(uri) as conn:
        return {
            table: [
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(
                        sql.Identifier(schema, table)
                    )
                )
            ]
            for table in _present(conn, schema)
        }


def _layout(uri: str, schema: str = "public") -> dict[str, Any]:
    """Everything setup() could change in ``schema``: columns, indexes, rows."""
    with _observer(uri) as conn:
        tables = _present(conn, schema)
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default
            FROM information_schema.columns
            WHERE table_schema = %s AND table_name = ANY(%s)
            ORDER BY table_name, ordinal_position""",
            (schema, tables),
        ).fetchall()
        indexes = conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = %s AND tablename = ANY(%s) ORDER BY 1""",
            (schema, tables),
        ).fetchall()
        extensions = conn.execute(
            "SELECT extname, extversion FROM pg_extension ORDER BY 1"
        ).fetchall()
    return {
        "columns": columns,
        "indexes": indexes,
        "extensions": extensions,
        "rows": _dump(uri, schema),
    }


def _versions(uri: str, table: str, schema: str = "public") -> list[int] | None:
    """The versions recorded in ``table``, or ``None`` if it does not exist."""
    with _observer(uri) as conn:
        if table not in _present(conn, schema):
            return None
        query = sql.SQL("SELECT v FROM {} ORDER BY v").format(
            sql.Identifier(schema, table)
        )
        return [r[0] for r in conn.execute(query)]


def _tables_in(uri: str, schema: str) -> list[str]:
    with _observer(uri) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


def _assert_store_migrated(uri: str, schema: str = "public") -> None:
    assert _versions(uri, "store_migrations", schema) == STORE_VERSIONS
    assert _versions(uri, "store_ext_migrations", schema) == EXT_VERSIONS
    with _observer(uri) as conn:
        indexes = dict(
            conn.execute(
                """SELECT i.relname, x.indisvalid FROM pg_index x
                JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = to_regclass(%s)""",
                (sql.Identifier(schema, "store").as_string(conn),),
            ).fetchall()
        )
    assert {"store_prefix_idx", "idx_store_expires_at"} <= set(indexes), indexes
    assert all(indexes.values()), f"invalid indexes left behind: {indexes}"


def _advisory_locks_of(uri: str, pid: int) -> int:
    with _observer(uri) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
            (pid,),
        ).fetchone()
    return int(count)


def _assert_connection_left_clean(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    uri: str,
    *,
    autocommit: bool,
) -> None:
    """``conn`` is as the caller gave it: same mode, no transaction, no lock."""
    assert conn.autocommit is autocommit
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    # A lock setup() kept would stall every other process's setup() forever.
    assert _advisory_locks_of(uri, conn.info.backend_pid) == 0


def _terminate_backends(server_uri: str, db_uri: str) -> int:
    """Terminate every backend connected to the database of ``db_uri``."""
    with psycopg.connect(server_uri, autocommit=True) as admin:
        pids = [
            r[0]
            for r in admin.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (_dbname(db_uri),),
            ).fetchall()
        ]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    return len(pids)


_LOCK_WAITERS_SQL = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


def _lock_waiters(uri: str) -> list[int]:
    with _observer(uri) as conn:
        return [r[0] for r in conn.execute(_LOCK_WAITERS_SQL)]


def _wait_for_lock_waiter(uri: str) -> list[int]:
    """Wait until a session of ``uri``'s database waits for a lock; their pids."""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        waiting = _lock_waiters(uri)
        if waiting:
            return waiting
        time.sleep(0.01)
    raise AssertionError("no call ever waited on the lock")


def _wait_until_gone(uri: str, pids: list[int]) -> None:
    """Wait until the backends ``pids`` have ended (a call abandoned on a lock)."""
    deadline = time.monotonic() + GUARD
    with _observer(uri) as conn:
        while time.monotonic() < deadline:
            (left,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone()
            if not left:
                return
            time.sleep(0.01)
    raise AssertionError(f"backends {pids} still there after {GUARD} s")


@contextmanager
def _row_locked(uri: str, namespace: tuple[str, ...], key: str) -> Iterator[None]:
    """Hold the row lock of an item (``SELECT ... FOR UPDATE``) for the block."""
    with psycopg.connect(uri) as locker:
        row = locker.execute(
            "SELECT 1 FROM store WHERE prefix = %s AND key = %s FOR UPDATE",
            (".".join(namespace), key),
        ).fetchone()
        assert row is not None, "nothing to lock: put the item first"
        try:
            yield
        finally:
            locker.rollback()


def _in_thread(call: Callable[[], T], timeout: float = GUARD) -> T:
    """``call()`` in a daemon thread; its result or error, or fail if it hangs."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the call still waits after {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _keys(items: list[Any]) -> list[tuple[tuple[str, ...], str]]:
    return sorted((item.namespace, item.key) for item in items)


# -- one transaction per batch -----------------------------------------------------

DOCS = ("docs",)


async def test_a_batch_whose_later_write_fails_in_the_database_writes_nothing(
    api: Api, db_uri: str
) -> None:
    await api.put(DOCS, "kept", {"v": 1})
    await api.put(DOCS, "doomed", {"v": 1})
    refuse_inserts(db_uri, "store", "poison refused", "NEW.key = 'poison'")
    before = _dump(db_uri)
    ops: list[Any] = [
        PutOp(DOCS, "new", {"v": 2}),
        PutOp(DOCS, "kept", {"v": 2}),
        PutOp(DOCS, "doomed", None),  # a delete: a statement of its own
        GetOp(DOCS, "kept"),
        SearchOp(DOCS, limit=10),
        ListNamespacesOp(),
        PutOp(("other",), "poison", {"v": 3}),  # refused by the server
    ]
    with pytest.raises(psycopg.Error, match="poison refused"):
        await api.batch(ops)
    assert _dump(db_uri) == before
    # Upserts only (one statement): the same.
    with pytest.raises(psycopg.Error, match="poison refused"):
        await api.batch([PutOp(DOCS, "new", {"v": 2}), PutOp(DOCS, "poison", {})])
    assert _dump(db_uri) == before
    # The failure left the store (its connection, pipeline, pool) usable: the
    # batch without the refused put runs whole, its reads seeing the store as
    # it was before its writes.
    results = await api.batch(ops[:-1])
    assert results[:3] == [None, None, None]
    assert results[3].value == {"v": 1}
    assert _keys(results[4]) == [(DOCS, "doomed"), (DOCS, "kept")]
    assert results[5] == [DOCS]
    assert {i.key: i.value for i in await api.search(DOCS)} == {
        "new": {"v": 2},
        "kept": {"v": 2},
    }


# -- PgBouncer in transaction mode -------------------------------------------------

#: What a user behind a transaction pooler passes: no prepared statements, with
#: the documented settings or psycopg's defaults (no autocommit, tuple rows).
BOUNCER_SETTINGS: dict[str, dict[str, Any]] = {
    "recommended": {
        "autocommit": True,
        "prepare_threshold": None,
        "row_factory": dict_row,
    },
    "defaults": {"prepare_threshold": None},
}
BOUNCER_KINDS = ["conn", "pool", "pool-defaults", "aconn", "apool", "apool-defaults"]
#: Client connections of the pools in the concurrency tests: five times the
#: server connections PgBouncer has for the database.
CLIENT_POOL_SIZE = 10


@pytest.fixture(scope="module")
def pgbouncer(server_uri: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test server (skips
    without the binary unless REQUIRE_PGBOUNCER=1, as tests/test_poolers.py)."""
    with pgbouncer_or_skip(server_uri) as bouncer:
        yield bouncer


@asynccontextmanager
async def bounced_api(kind: str, uri: str) -> AsyncIterator[Api]:
    """A store of ``kind`` on ``uri`` (through PgBouncer), never preparing."""
    settings = BOUNCER_SETTINGS["defaults" if "defaults" in kind else "recommended"]
    if kind == "conn":
        with Connection.connect(uri, **settings) as conn:
            yield Api(PostgresStore(conn))
    elif kind in ("pool", "pool-defaults"):
        with ConnectionPool(uri, min_size=1, max_size=4, kwargs=settings) as pool:
            yield Api(PostgresStore(pool))
    elif kind == "aconn":
        async with await AsyncConnection.connect(uri, **settings) as aconn:
            yield Api(AsyncPostgresStore(aconn))
    elif kind in ("apool", "apool-defaults"):
        async with AsyncConnectionPool(
            uri, min_size=1, max_size=4, kwargs=settings, open=False
        ) as apool:
            yield Api(AsyncPostgresStore(apool))
    else:
        raise ValueError(f"unknown kind {kind!r}")


async def _exercise(api: Api, rounds: int = 3) -> None:
    """Puts, gets, searches, list_namespaces and deletes, each checked; several
    rounds, so consecutive transactions land on different server sessions."""
    users = [("users", f"u{i}", "prefs") for i in range(3)]
    for r in range(rounds):
        await api.batch(
            [
                PutOp(ns, f"k{j}", {"i": i, "j": j, "round": r, "text": f"item {j}"})
                for i, ns in enumerate(users)
                for j in range(4)
            ]
        )
        item = await api.get(users[1], "k2")
        assert item is not None and item.value["round"] == r
        assert (item.namespace, item.key) == (users[1], "k2")
        found = await api.search(("users",), filter={"j": 3}, limit=10)
        assert _keys(found) == [(ns, "k3") for ns in users]
        found = await api.search(("users", "u2"), filter={"i": {"$gte": 2}})
        assert len(found) == 4
        assert await api.list_namespaces(prefix=("users",)) == users
        assert await api.list_namespaces(max_depth=2) == [
            ("users", f"u{i}") for i in range(3)
        ]
        await api.delete(users[0], "k0")
        assert await api.get(users[0], "k0") is None
        results = await api.batch(
            [
                GetOp(users[0], "k1"),
                SearchOp(("users", "u0"), limit=10),
                ListNamespacesOp(
                    match_conditions=(MatchCondition("suffix", ("prefs",)),)
                ),
                PutOp(users[0], "k0", {"back": r}),
            ]
        )
        assert results[0].value["j"] == 1
        assert sorted(i.key for i in results[1]) == ["k1", "k2", "k3"]
        assert results[2] == users
        assert (await api.get(users[0], "k0")).value == {"back": r}


@pytest.mark.parametrize("kind", BOUNCER_KINDS)
async def test_store_through_pgbouncer(
    databases: Databases, pgbouncer: PgBouncer, kind: str
) -> None:
    direct = databases.create(migrated=False)
    async with bounced_api(kind, pgbouncer.uri(direct)) as api:
        await api.setup()  # on an empty database, through the pooler
        await api.setup()  # and again: nothing left to do
        await _exercise(api)
    _assert_store_migrated(direct)


@pytest.mark.parametrize("settings", BOUNCER_SETTINGS)
def test_setup_through_pgbouncer_from_many_threads(
    databases: Databases, pgbouncer: PgBouncer, settings: str
) -> None:
    direct = databases.create(migrated=False)
    uri = pgbouncer.uri(direct)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    # Eight stores, each on its own connection, race to migrate while
    # PgBouncer has two server connections: the advisory lock that
    # serialises them is transaction-scoped, so it holds across the pooler.
    def run() -> None:
        try:
            with Connection.connect(uri, **BOUNCER_SETTINGS[settings]) as conn:
                start.wait(GUARD)
                PostgresStore(conn).setup()
                conn.commit()  # a no-op with autocommit
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "setup() hung"
    assert errors == []
    _assert_store_migrated(direct)


@pytest.mark.parametrize("settings", BOUNCER_SETTINGS)
async def test_async_setup_through_pgbouncer(
    databases: Databases, pgbouncer: PgBouncer, settings: str
) -> None:
    direct = databases.create(migrated=False)
    async with AsyncConnectionPool(
        pgbouncer.uri(direct),
        min_size=4,
        max_size=4,
        kwargs=BOUNCER_SETTINGS[settings],
        open=False,
    ) as pool:
        store = AsyncPostgresStore(pool)
        await asyncio.wait_for(asyncio.gather(*(store.setup() for _ in range(4))), 60)
        await store.setup()
        await _exercise(Api(store), rounds=1)
    _assert_store_migrated(direct)


def _server_connections(server_uri: str, direct_uri: str) -> int:
    """Backends the server has for the database of ``direct_uri``."""
    with psycopg.connect(server_uri, autocommit=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
            (_dbname(direct_uri),),
        ).fetchone()
    return int(count)


#: Concurrent users in the concurrency tests, each in a namespace of its own.
USERS = 40


async def _user_session(api: Api, n: int) -> dict[str, Any]:
    """What one user does and sees: writes, reads back, searches, deletes."""
    ns = ("tenant", f"user-{n}")
    await api.batch([PutOp(ns, f"m{j}", {"n": n, "j": j}) for j in range(5)])
    got = await api.batch([GetOp(ns, f"m{j}") for j in range(5)])
    found = await api.search(ns, filter={"j": {"$gte": 3}})
    await api.delete(ns, "m0")
    return {
        "got": [item.value for item in got],
        "found": sorted(item.key for item in found),
        "left": sorted(item.key for item in await api.search(ns, limit=10)),
    }


def _check_sessions(observed: list[dict[str, Any]]) -> None:
    for n, seen in enumerate(observed):
        assert seen == {
            "got": [{"n": n, "j": j} for j in range(5)],
            "found": ["m3", "m4"],
            "left": ["m1", "m2", "m3", "m4"],
        }, n


@pytest.mark.parametrize("settings", BOUNCER_SETTINGS)
def test_concurrent_store_calls_through_pgbouncer(
    databases: Databases, pgbouncer: PgBouncer, server_uri: str, settings: str
) -> None:
    direct = databases.create()
    with ConnectionPool(
        pgbouncer.uri(direct),
        min_size=CLIENT_POOL_SIZE,
        max_size=CLIENT_POOL_SIZE,
        kwargs=BOUNCER_SETTINGS[settings],
    ) as pool:
        pool.wait()
        api = Api(PostgresStore(pool))
        with ThreadPoolExecutor(max_workers=USERS) as executor:
            observed = list(
                executor.map(lambda n: asyncio.run(_user_session(api, n)), range(USERS))
            )
        # Ten client connections shared the pooler's two server connections.
        assert pool.get_stats()["pool_size"] == CLIENT_POOL_SIZE
        assert 1 <= _server_connections(server_uri, direct) <= POOL_SIZE
    _check_sessions(observed)


@pytest.mark.parametrize("settings", BOUNCER_SETTINGS)
async def test_concurrent_async_store_calls_through_pgbouncer(
    databases: Databases, pgbouncer: PgBouncer, server_uri: str, settings: str
) -> None:
    direct = databases.create()
    async with AsyncConnectionPool(
        pgbouncer.uri(direct),
        min_size=CLIENT_POOL_SIZE,
        max_size=CLIENT_POOL_SIZE,
        kwargs=BOUNCER_SETTINGS[settings],
        open=False,
    ) as pool:
        await pool.wait()
        api = Api(AsyncPostgresStore(pool))
        observed = await asyncio.wait_for(
            asyncio.gather(*(_user_session(api, n) for n in range(USERS))), 60
        )
        assert pool.get_stats()["pool_size"] == CLIENT_POOL_SIZE
        assert 1 <= _server_connections(server_uri, direct) <= POOL_SIZE
    _check_sessions(list(observed))


# -- setup() -----------------------------------------------------------------------


async def _assert_round_trip(api: Api) -> None:
    await api.put(("round", "trip"), "k", {"text": "hello", "n": [1, 2]})
    item = await api.get(("round", "trip"), "k")
    assert item is not None and item.value == {"text": "hello", "n": [1, 2]}
    assert [i.key for i in await api.search(("round",), filter={"n": [1, 2]})] == ["k"]
    assert await api.list_namespaces(prefix=("round",)) == [("round", "trip")]


def test_setup_from_16_threads_at_once_on_an_empty_database(
    empty_db_uri: str,
) -> None:
    start = threading.Barrier(RACERS)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with PostgresStore.from_conn_string(empty_db_uri) as store:
                start.wait(GUARD)
                store.setup()
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            start.abort()
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "setup() hung"
    assert not errors, f"{len(errors)} of {RACERS} setup() calls failed: {errors}"
    _assert_store_migrated(empty_db_uri)
    with PostgresStore.from_conn_string(empty_db_uri) as store:
        asyncio.run(_assert_round_trip(Api(store)))


async def test_async_setup_from_16_tasks_at_once_on_an_empty_database(
    empty_db_uri: str,
) -> None:
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(
                AsyncPostgresStore.from_conn_string(empty_db_uri)
            )
            for _ in range(RACERS)
        ]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(s.setup() for s in stores), return_exceptions=True), 120
        )
        errors = [o for o in outcomes if o is not None]
        assert not errors, f"{len(errors)} of {RACERS} setup() calls failed: {errors}"
        _assert_store_migrated(empty_db_uri)
        await _assert_round_trip(Api(stores[-1]))


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_setup_inside_a_callers_open_transaction(
    empty_db_uri: str, outcome: str
) -> None:
    with psycopg.connect(empty_db_uri) as conn:  # psycopg's defaults
        conn.execute("SELECT 1")  # the caller's transaction is now open
        store = PostgresStore(conn)
        store.setup()
        store.put(("in", "tx"), "k", {"v": 1})
        assert store.get(("in", "tx"), "k").value == {"v": 1}
        # Nothing is committed behind the caller's back.
        assert _tables_in(empty_db_uri, "public") == []
        assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
        if outcome == "commit":
            conn.commit()
        else:
            conn.rollback()
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
    if outcome == "rollback":
        assert _tables_in(empty_db_uri, "public") == []
        return
    _assert_store_migrated(empty_db_uri)
    with PostgresStore.from_conn_string(empty_db_uri) as fresh:
        assert fresh.get(("in", "tx"), "k").value == {"v": 1}


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_async_setup_inside_a_callers_open_transaction(
    empty_db_uri: str, outcome: str
) -> None:
    async with await AsyncConnection.connect(empty_db_uri) as conn:
        await conn.execute("SELECT 1")
        store = AsyncPostgresStore(conn)
        await store.setup()
        await store.aput(("in", "tx"), "k", {"v": 1})
        assert (await store.aget(("in", "tx"), "k")).value == {"v": 1}
        assert _tables_in(empty_db_uri, "public") == []
        assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
        if outcome == "commit":
            await conn.commit()
        else:
            await conn.rollback()
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
    if outcome == "rollback":
        assert _tables_in(empty_db_uri, "public") == []
        return
    _assert_store_migrated(empty_db_uri)
    async with AsyncPostgresStore.from_conn_string(empty_db_uri) as fresh:
        assert (await fresh.aget(("in", "tx"), "k")).value == {"v": 1}


def test_setup_inside_an_explicit_transaction_block(empty_db_uri: str) -> None:
    # With autocommit on, the caller's `with conn.transaction()` is the
    # transaction: setup() joins it and leaves with it.
    with psycopg.connect(empty_db_uri, **RECOMMENDED) as conn:
        store = PostgresStore(conn)
        with conn.transaction():
            store.setup()
            assert _tables_in(empty_db_uri, "public") == []
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=True)
    _assert_store_migrated(empty_db_uri)


def test_setup_on_a_connection_without_autocommit_commits_by_itself(
    empty_db_uri: str,
) -> None:
    with psycopg.connect(empty_db_uri) as conn:  # autocommit=False, tuple rows
        store = PostgresStore(conn)
        store.setup()
        # Visible to everyone else with no conn.commit() from the caller.
        _assert_store_migrated(empty_db_uri)
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
        # Another process's setup() is not held up by this open connection.
        other_uri = psycopg.conninfo.make_conninfo(
            empty_db_uri, options="-c lock_timeout=5s"
        )
        with PostgresStore.from_conn_string(other_uri) as other:
            other.setup()
        # The store still works, and its writes are committed by itself too.
        asyncio.run(_assert_round_trip(Api(store)))
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
    with PostgresStore.from_conn_string(empty_db_uri) as fresh:
        assert fresh.get(("round", "trip"), "k") is not None


async def test_async_setup_on_a_connection_without_autocommit_commits_by_itself(
    empty_db_uri: str,
) -> None:
    async with await AsyncConnection.connect(empty_db_uri) as conn:
        store = AsyncPostgresStore(conn)
        await store.setup()
        _assert_store_migrated(empty_db_uri)
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
        await _assert_round_trip(Api(store))
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
    async with AsyncPostgresStore.from_conn_string(empty_db_uri) as fresh:
        assert await fresh.aget(("round", "trip"), "k") is not None


# -- a database migrated by a newer release ----------------------------------------


def test_incompatible_schema_error_is_exported_where_the_savers_is() -> None:
    assert IncompatibleSchemaError is PgIncompatibleSchemaError


NEWER = {
    "store_migrations": STORE_MIGRATIONS.latest + 5,
    "store_ext_migrations": EXT_MIGRATIONS.latest + 5,
}


def _newer_database(uri: str, table: str) -> int:
    """Record in ``table`` of the set-up database ``uri`` a version newer than
    ours, with an item stored; return that version."""
    newer = NEWER[table]
    with _observer(uri) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {} (v) VALUES (%s)").format(sql.Identifier(table)),
            (newer,),
        )
        conn.execute(
            "INSERT INTO store (prefix, key, value) VALUES ('a.b', 'k', '{\"v\": 1}')"
        )
    return newer


@pytest.mark.parametrize("table", NEWER)
@pytest.mark.parametrize("kind", ["conn", "pool-defaults", "aconn", "apool"])
async def test_setup_refuses_a_newer_database_and_leaves_it_alone(
    db_uri: str, table: str, kind: str
) -> None:
    newer = _newer_database(db_uri, table)
    before = _layout(db_uri)
    async with open_api(kind, db_uri) as api:
        with pytest.raises(IncompatibleSchemaError) as info:
            await api.setup()
        assert str(newer) in str(info.value)
        assert "upgrade the package" in str(info.value)
        assert _layout(db_uri) == before
        # Nothing was held on to: another process is refused too, not left
        # waiting on the setup lock.
        other_uri = psycopg.conninfo.make_conninfo(db_uri, options="-c lock_timeout=5s")
        with PostgresStore.from_conn_string(other_uri) as other:
            with pytest.raises(IncompatibleSchemaError):
                other.setup()
        # The refusal left the store's connection usable.
        assert (await api.get(("a", "b"), "k")).value == {"v": 1}
    assert _layout(db_uri) == before


@pytest.mark.parametrize("kind", ["conn", "aconn"])
async def test_a_newer_history_is_refused_before_any_other_is_migrated(
    db_uri: str, kind: str
) -> None:
    """store_migrations behind (at 1) and store_ext_migrations newer: setup()
    refuses without first bringing store_migrations up to date."""
    with _observer(db_uri) as conn:
        conn.execute("DELETE FROM store_migrations WHERE v > 1")
        conn.execute(
            "INSERT INTO store_ext_migrations (v) VALUES (%s)",
            (NEWER["store_ext_migrations"],),
        )
    before = _layout(db_uri)
    async with open_api(kind, db_uri) as api:
        with pytest.raises(IncompatibleSchemaError):
            await api.setup()
    assert _layout(db_uri) == before
    with _observer(db_uri) as conn:
        versions = [v for (v,) in conn.execute("SELECT v FROM store_migrations")]
    assert sorted(versions) == [0, 1]


async def test_setup_refuses_a_newer_database_on_a_callers_connection(
    db_uri: str,
) -> None:
    newer = _newer_database(db_uri, "store_migrations")
    before = _layout(db_uri)
    async with await AsyncConnection.connect(db_uri, **RECOMMENDED) as aconn:
        with pytest.raises(IncompatibleSchemaError, match=str(newer)):
            await AsyncPostgresStore(aconn).setup()
        _assert_connection_left_clean(aconn, db_uri, autocommit=True)
    with psycopg.connect(db_uri) as conn:
        with pytest.raises(IncompatibleSchemaError, match=str(newer)):
            PostgresStore(conn).setup()
        _assert_connection_left_clean(conn, db_uri, autocommit=False)
    assert _layout(db_uri) == before


# -- named schemas -----------------------------------------------------------------

STORE_TABLES_CREATED = ["store", "store_ext_migrations", "store_migrations"]


async def _tenant_scenario(a: Api, b: Api, default: Api) -> None:
    """Stores of two schemas and the default one, with equal namespaces and
    keys, never see each other's items."""
    ns = ("users", "alice")
    for api, who in ((a, "a"), (b, "b"), (default, "public")):
        await api.put(ns, "prefs", {"who": who})
        await api.put(("only", who), "k", {"who": who})

    async def seen(api: Api) -> Any:
        item = await api.get(ns, "prefs")
        return (
            item and item.value["who"],
            [i.value["who"] for i in await api.search(("users",))],
            await api.list_namespaces(prefix=("only",)),
        )

    assert await seen(a) == ("a", ["a"], [("only", "a")])
    assert await seen(b) == ("b", ["b"], [("only", "b")])
    assert await seen(default) == ("public", ["public"], [("only", "public")])
    await b.delete(ns, "prefs")
    assert [(await seen(x))[0] for x in (a, b, default)] == ["a", None, "public"]


def test_two_schemas_over_one_pool_are_isolated(db_uri: str) -> None:
    with ConnectionPool(db_uri, min_size=1, max_size=4, kwargs=RECOMMENDED) as pool:
        a = PostgresStore(pool, schema="tenant_a")
        b = PostgresStore(pool, schema="tenant_b")
        default = PostgresStore(pool)
        for store in (a, b):
            store.setup()
        asyncio.run(_tenant_scenario(Api(a), Api(b), Api(default)))
    for schema in ("tenant_a", "tenant_b"):
        assert _tables_in(db_uri, schema) == STORE_TABLES_CREATED
        _assert_store_migrated(db_uri, schema)


async def test_async_two_schemas_over_one_pool_are_isolated(db_uri: str) -> None:
    async with AsyncConnectionPool(
        db_uri, min_size=1, max_size=4, kwargs=RECOMMENDED, open=False
    ) as pool:
        a = AsyncPostgresStore(pool, schema="tenant_a")
        b = AsyncPostgresStore(pool, schema="tenant_b")
        default = AsyncPostgresStore(pool)
        await asyncio.gather(a.setup(), b.setup())
        await _tenant_scenario(Api(a), Api(b), Api(default))
    for schema in ("tenant_a", "tenant_b"):
        assert _tables_in(db_uri, schema) == STORE_TABLES_CREATED


HOSTILE_SCHEMAS = {
    "quotes-and-sql": 'Tenant "B"; DROP TABLE store; --',
    "single-quote": "it's",
    "spaces": "my tenant ",
    "dollar": "$store",
    "unicode": "Ünïcödé ✓",
}


@pytest.mark.parametrize("name", HOSTILE_SCHEMAS)
@pytest.mark.parametrize("kind", ["pool", "apipeline"])
async def test_hostile_schema_names_hold_the_tables(
    empty_db_uri: str, name: str, kind: str
) -> None:
    schema = HOSTILE_SCHEMAS[name]
    async with open_api(kind, empty_db_uri, schema=schema) as api:
        await api.setup()
        await api.setup()
        await _assert_round_trip(api)
        await api.delete(("round", "trip"), "k")
        assert await api.get(("round", "trip"), "k") is None
        assert await api.sweep_ttl() == 0
    assert _tables_in(empty_db_uri, schema) == STORE_TABLES_CREATED
    assert _tables_in(empty_db_uri, "public") == []
    _assert_store_migrated(empty_db_uri, schema)


def test_named_schema_does_not_depend_on_search_path(empty_db_uri: str) -> None:
    # A search_path naming another schema first must not redirect anything.
    with _observer(empty_db_uri) as admin:
        admin.execute("CREATE SCHEMA decoy")
    kwargs = {**RECOMMENDED, "options": "-c search_path=decoy"}
    with ConnectionPool(empty_db_uri, min_size=1, max_size=2, kwargs=kwargs) as pool:
        store = PostgresStore(pool, schema="tenant_a")
        store.setup()
        asyncio.run(_assert_round_trip(Api(store)))
    assert _tables_in(empty_db_uri, "decoy") == []
    assert _tables_in(empty_db_uri, "tenant_a") == STORE_TABLES_CREATED


# -- dead pooled connections -------------------------------------------------------

SEED_NS = ("seed", "ns")
SEED_VALUE = {"v": 1, "text": "seeded"}


def _expire_one(uri: str, key: str) -> None:
    """Insert an item that expired a minute ago (over a connection of its own)."""
    with _observer(uri) as conn:
        conn.execute(
            """INSERT INTO store (prefix, key, value, expires_at, ttl_minutes)
            VALUES ('expired', %s, '{}', now() - interval '1 minute', 1)""",
            (key,),
        )


def _store_operations(api: Api, uri: str) -> dict[str, Callable[[], Awaitable[None]]]:
    """Every kind of store call, each checking its own effect."""

    async def put() -> None:
        await api.put(("ops",), "fresh", {"v": 2})
        assert (await api.get(("ops",), "fresh")).value == {"v": 2}

    async def get() -> None:
        assert (await api.get(SEED_NS, "seed")).value == SEED_VALUE

    async def search() -> None:
        found = await api.search(("seed",), filter={"v": 1})
        assert [(i.namespace, i.key) for i in found] == [(SEED_NS, "seed")]

    async def list_namespaces() -> None:
        assert await api.list_namespaces(prefix=("seed",)) == [SEED_NS]

    async def delete() -> None:
        await api.delete(SEED_NS, "doomed")
        assert await api.get(SEED_NS, "doomed") is None

    async def batch() -> None:
        results = await api.batch(
            [
                PutOp(("ops",), "b", {"v": 3}),
                GetOp(SEED_NS, "seed"),
                SearchOp(("seed",), limit=5),
                ListNamespacesOp(
                    match_conditions=(MatchCondition("prefix", ("seed",)),)
                ),
            ]
        )
        assert results[1].value == SEED_VALUE
        assert (SEED_NS, "seed") in _keys(results[2])
        assert results[3] == [SEED_NS]
        assert (await api.get(("ops",), "b")).value == {"v": 3}

    count = iter(range(100))

    async def sweep_ttl() -> None:
        key = f"e{next(count)}"
        _expire_one(uri, key)
        assert await api.sweep_ttl() == 1
        assert await api.get(("expired",), key) is None

    return {
        "setup": api.setup,
        "put": put,
        "get": get,
        "search": search,
        "list_namespaces": list_namespaces,
        "delete": delete,
        "batch": batch,
        "sweep_ttl": sweep_ttl,
    }


OPERATIONS = [
    "setup",
    "put",
    "get",
    "search",
    "list_namespaces",
    "delete",
    "batch",
    "sweep_ttl",
]


async def _survives_terminated_backends(
    api: Api, server_uri: str, db_uri: str, operation: str
) -> None:
    await api.put(SEED_NS, "seed", SEED_VALUE)
    call = _store_operations(api, db_uri)[operation]
    for expected in (3, 1):
        await api.put(SEED_NS, "doomed", {"v": 0})
        killed = await asyncio.to_thread(_terminate_backends, server_uri, db_uri)
        assert killed >= expected
        await call()  # succeeds on a fresh connection


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_pooled_store_survives_terminated_backends(
    server_uri: str, db_uri: str, operation: str
) -> None:
    with ConnectionPool(db_uri, min_size=3, max_size=3, kwargs=RECOMMENDED) as pool:
        pool.wait()
        api = Api(PostgresStore(pool))
        await _survives_terminated_backends(api, server_uri, db_uri, operation)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_async_pooled_store_survives_terminated_backends(
    server_uri: str, db_uri: str, operation: str
) -> None:
    async with AsyncConnectionPool(
        db_uri, min_size=3, max_size=3, kwargs=RECOMMENDED, open=False
    ) as pool:
        await pool.wait()
        api = Api(AsyncPostgresStore(pool))
        await _survives_terminated_backends(api, server_uri, db_uri, operation)


@pytest.mark.parametrize("kind", ["conn", "aconn"])
async def test_single_connection_loss_says_how_to_recover(
    server_uri: str, db_uri: str, kind: str
) -> None:
    async with open_api(kind, db_uri) as api:
        await api.put(SEED_NS, "seed", SEED_VALUE)
        await asyncio.to_thread(_terminate_backends, server_uri, db_uri)
        for _ in range(2):  # later calls say the same, not a driver error
            with pytest.raises(ConnectionLostError, match="pool") as info:
                await api.get(SEED_NS, "seed")
            assert "lost" in str(info.value)


# -- timeout= ----------------------------------------------------------------------

LOCKED = ("locked", "ns")


async def _times_out_on_a_row_lock(api: Api, db_uri: str) -> None:
    """A put blocked by another session's row lock raises CallTimeoutError
    after about the store's timeout of 1 s, and never lands: the server
    cancels the abandoned statement, so when the lock goes the item still
    holds what it held."""
    with psycopg.connect(db_uri) as conn:
        before = conn.execute(
            "SELECT value FROM store WHERE prefix = %s AND key = 'k'",
            (".".join(LOCKED),),
        ).fetchone()
    with _row_locked(db_uri, LOCKED, "k"):
        started = time.monotonic()
        with pytest.raises(CallTimeoutError, match="timeout of 1 s.*cancelled") as info:
            await api.put(LOCKED, "k", {"v": 2})
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 10, elapsed
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, psycopg.OperationalError)
        # Whatever of the abandoned statement the server still runs.
        abandoned = _lock_waiters(db_uri)
    _wait_until_gone(db_uri, abandoned)
    with psycopg.connect(db_uri) as conn:
        after = conn.execute(
            "SELECT value FROM store WHERE prefix = %s AND key = 'k'",
            (".".join(LOCKED),),
        ).fetchone()
    assert after == before, "a put that timed out was written after all"


@pytest.mark.parametrize("kind", POOL_KINDS)
async def test_a_call_blocked_by_a_lock_times_out_and_the_store_works_on(
    db_uri: str, kind: str
) -> None:
    async with open_api(kind, db_uri, timeout=1.0) as api:
        await api.put(LOCKED, "k", {"v": 1})
        await api.put(LOCKED, "other", {"v": 1})
        with _row_locked(db_uri, LOCKED, "k"):
            # Calls that do not need the locked row are not held up.
            await api.put(LOCKED, "other", {"v": 2})
            assert (await api.get(LOCKED, "k")).value == {"v": 1}
            assert len(await api.search(LOCKED)) == 2
        await _times_out_on_a_row_lock(api, db_uri)
        # The pool replaced the severed connection: the store works on.
        await api.put(LOCKED, "k", {"v": 3})
        assert (await api.get(LOCKED, "k")).value == {"v": 3}
        assert (await api.get(LOCKED, "other")).value == {"v": 2}
        assert await api.list_namespaces() == [LOCKED]


@pytest.mark.parametrize("kind", ["conn", "aconn"])
async def test_a_timeout_on_a_single_connection_keeps_the_connection(
    db_uri: str, kind: str
) -> None:
    """The server cancels the call that timed out, so a store on a single
    connection keeps its connection and works on."""
    async with open_api(kind, db_uri, timeout=1.0) as api:
        await api.put(LOCKED, "k", {"v": 1})
        await _times_out_on_a_row_lock(api, db_uri)
        assert (await api.get(LOCKED, "k")).value == {"v": 1}
        await api.put(LOCKED, "k", {"v": 3})
        assert (await api.get(LOCKED, "k")).value == {"v": 3}


def test_calls_within_the_timeout_are_unaffected(db_uri: str) -> None:
    with PostgresStore.from_conn_string(db_uri, timeout=0.2) as store:
        for i in range(100):
            store.put(("t", str(i % 5)), f"k{i}", {"i": i})
        time.sleep(0.4)  # past every deadline armed so far: none may fire late
        assert len(store.search(("t",), limit=1000)) == 100


# -- hostile input: refused before any I/O -----------------------------------------

NAN, INF = float("nan"), float("inf")

Attempt = Callable[[Api], Awaitable[Any]]

#: Each refusal: the call, and words its message must hold.
REFUSALS: dict[str, tuple[Attempt, tuple[str, ...]]] = {
    # NUL characters
    "nul-put-namespace": (lambda a: a.put(("a\x00b",), "k", {}), ("NUL",)),
    "nul-get-namespace": (lambda a: a.get(("ok", "\x00"), "k"), ("NUL",)),
    "nul-search-prefix": (lambda a: a.search(("a\x00",)), ("NUL",)),
    "nul-list-prefix": (
        lambda a: a.list_namespaces(prefix=("x\x00",)),
        ("NUL",),
    ),
    "nul-put-key": (lambda a: a.put(("a",), "k\x00", {}), ("NUL", "key")),
    "nul-get-key": (lambda a: a.get(("a",), "\x00"), ("NUL", "key")),
    "nul-delete-key": (lambda a: a.delete(("a",), "k\x00"), ("NUL", "key")),
    "nul-value": (lambda a: a.put(("a",), "k", {"t": "x\x00y"}), ("NUL", "value")),
    "nul-nested-value": (
        lambda a: a.put(("a",), "k", {"t": [{"deep": ["\x00"]}]}),
        ("NUL", "value"),
    ),
    "nul-value-key": (lambda a: a.put(("a",), "k", {"t\x00": 1}), ("NUL", "key")),
    "nul-nested-value-key": (
        lambda a: a.put(("a",), "k", {"t": {"\x00": 1}}),
        ("NUL", "key"),
    ),
    "nul-filter-value": (
        lambda a: a.search(("a",), filter={"t": "x\x00"}),
        ("NUL", "filter"),
    ),
    "nul-filter-operand": (
        lambda a: a.search(("a",), filter={"t": {"$gt": "\x00"}}),
        ("NUL", "filter"),
    ),
    "nul-filter-key": (
        lambda a: a.search(("a",), filter={"t\x00": 1}),
        ("NUL", "filter"),
    ),
    "nul-nested-filter-value": (
        lambda a: a.search(("a",), filter={"t": {"in": ["\x00"]}}),
        ("NUL", "filter"),
    ),
    # NaN and infinities
    "nan-value": (lambda a: a.put(("a",), "k", {"x": NAN}), ("nan", "value")),
    "inf-value": (lambda a: a.put(("a",), "k", {"x": [1.0, INF]}), ("inf", "value")),
    "-inf-nested-value": (
        lambda a: a.put(("a",), "k", {"x": {"y": -INF}}),
        ("-inf", "value"),
    ),
    "nan-filter": (lambda a: a.search(("a",), filter={"x": NAN}), ("nan", "filter")),
    "inf-filter-comparison": (
        lambda a: a.search(("a",), filter={"x": {"$gt": INF}}),
        ("inf", "filter"),
    ),
    "nan-filter-eq": (
        lambda a: a.search(("a",), filter={"x": {"$eq": NAN}}),
        ("nan", "filter"),
    ),
    # namespace labels
    "dot-label": (lambda a: a.put(("a.b",), "k", {}), ("period",)),
    "dot-label-get": (lambda a: a.get(("a", "."), "k"), ("period",)),
    "dot-label-search": (lambda a: a.search(("a.",)), ("period",)),
    "empty-label": (lambda a: a.put(("a", ""), "k", {}), ("empty",)),
    "empty-label-get": (lambda a: a.get(("",), "k"), ("empty",)),
    "non-str-label": (lambda a: a.put(("a", 1), "k", {}), ("strings", "int")),
    "non-str-label-search": (lambda a: a.search(("a", None)), ("strings",)),
    "root-langgraph": (lambda a: a.put(("langgraph", "x"), "k", {}), ("langgraph",)),
    "empty-namespace-put": (lambda a: a.put((), "k", {}), ("empty",)),
    "empty-namespace-batch": (
        lambda a: a.batch([PutOp((), "k", {})]),
        ("namespace", "at least one label"),
    ),
    "root-langgraph-batch": (
        lambda a: a.batch([PutOp(("langgraph",), "k", {})]),
        ("langgraph", "reserved"),
    ),
    "dot-label-batch-match": (
        lambda a: a.batch(
            [ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a.b",)),))]
        ),
        ("period",),
    ),
    # paging
    "negative-search-limit": (lambda a: a.search(("a",), limit=-1), ("limit",)),
    "negative-search-offset": (lambda a: a.search(("a",), offset=-1), ("offset",)),
    "negative-list-limit": (lambda a: a.list_namespaces(limit=-1), ("limit",)),
    "negative-list-offset": (lambda a: a.list_namespaces(offset=-5), ("offset",)),
    # TTLs
    "negative-ttl": (lambda a: a.put(("a",), "k", {}, ttl=-1), ("ttl",)),
    "nan-ttl": (lambda a: a.put(("a",), "k", {}, ttl=NAN), ("ttl",)),
    "inf-ttl": (lambda a: a.put(("a",), "k", {}, ttl=INF), ("ttl",)),
    # finite, but past what the table holds (ttl_minutes is an integer)
    "huge-ttl": (lambda a: a.put(("a",), "k", {}, ttl=1e12), ("ttl", "at most")),
    "batch-nan-ttl": (
        lambda a: a.batch([PutOp(("a",), "k", {}, ttl=NAN)]),
        ("ttl",),
    ),
    # a refused op at the end of a batch: none of the batch is written
    "last-op-of-a-batch": (
        lambda a: a.batch(
            [
                PutOp(("batch",), "first", {"v": 1}),
                PutOp(("batch",), "second", {"v": 2}),
                PutOp(("batch",), "bad", {"v": NAN}),
            ]
        ),
        ("nan",),
    ),
}


@contextmanager
def _closed_sync_store(uri: str) -> Iterator[PostgresStore]:
    conn = psycopg.connect(uri, **RECOMMENDED)
    conn.close()
    yield PostgresStore(conn)


@asynccontextmanager
async def _closed_async_store(uri: str) -> AsyncIterator[AsyncPostgresStore]:
    conn = await AsyncConnection.connect(uri, **RECOMMENDED)
    await conn.close()
    yield AsyncPostgresStore(conn)


def _assert_names(error: BaseException, words: tuple[str, ...]) -> None:
    for word in words:
        assert word in str(error), (word, str(error))


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_hostile_input_is_refused_before_any_io(
    server_uri: str, case: str, is_async: bool
) -> None:
    # The store's connection is closed: any I/O would fail with "closed", so
    # an error naming the problem proves nothing reached the database.
    attempt, words = REFUSALS[case]
    async with AsyncExitStack() as stack:
        if is_async:
            store: Any = await stack.enter_async_context(
                _closed_async_store(server_uri)
            )
        else:
            store = stack.enter_context(_closed_sync_store(server_uri))
        api = Api(store)
        with pytest.raises(ValueError) as info:
            await attempt(api)
        _assert_names(info.value, words)
        # The control: a valid call on the same store does reach for the
        # connection, and says it is closed.
        with pytest.raises(RuntimeError, match="connection is closed"):
            await api.put(("a",), "k", {"v": 1})


@pytest.fixture(scope="module")
def shared_db_uri(server_uri: str, template_db: str) -> Iterator[str]:
    """One set-up database for the refusals, which change nothing (each
    test checks that it did not)."""
    databases = Databases(server_uri, template_db)
    try:
        yield databases.create()
    finally:
        databases.drop_all()


@pytest.fixture(params=ALL_KINDS)
async def shared_api(
    request: pytest.FixtureRequest, shared_db_uri: str
) -> AsyncIterator[Api]:
    async with open_api(request.param, shared_db_uri) as a:
        yield a


@pytest.mark.parametrize("case", REFUSALS)
async def test_hostile_input_is_refused_and_changes_nothing(
    shared_api: Api, shared_db_uri: str, case: str
) -> None:
    api, db_uri = shared_api, shared_db_uri
    attempt, words = REFUSALS[case]
    await api.put(SEED_NS, "seed", SEED_VALUE)
    before = _dump(db_uri)
    with pytest.raises(ValueError) as info:
        await attempt(api)
    _assert_names(info.value, words)
    assert _dump(db_uri) == before
    # The refusal left the store (its connection, pipeline, pool) usable.
    assert (await api.get(SEED_NS, "seed")).value == SEED_VALUE


async def test_the_longest_ttl_is_stored(api: Api) -> None:
    await api.put(("a",), "k", {"v": 1}, ttl=2**31 - 1)
    assert (await api.get(("a",), "k", refresh_ttl=True)).value == {"v": 1}
    assert await api.sweep_ttl() == 0


# -- no pool connection held twice by one batch ------------------------------------

#: A pool's wait for a connection: short, so that a batch waiting for a second
#: connection of a pool of one fails fast instead of looking hung.
POOL_WAIT = 2.0


def _mixed_batch(n: int) -> list[Any]:
    ns = ("one", str(n))
    return [
        PutOp(ns, "a", {"text": "apples and pears", "n": n}),
        PutOp(ns, "b", {"text": "bananas", "n": n}),
        PutOp(ns, "gone", None),
        GetOp(ns, "a"),
        GetOp(("one", "seed"), "s"),
        SearchOp(("one",), filter={"n": n}, limit=5),
        SearchOp(("one", "seed"), query="apples", limit=5),
        ListNamespacesOp(max_depth=1),
    ]


def _check_mixed(results: list[Any], n: int) -> None:
    assert results[:3] == [None, None, None]
    # Reads see the store as it was before the batch.
    assert results[3] is None
    assert results[4].value == {"text": "seed apples"}
    assert results[5] == []
    assert [i.key for i in results[6]] == ["s"]
    assert results[7] == [("one",)]


async def _one_connection_scenario(api: Api) -> None:
    await api.put(("one", "seed"), "s", {"text": "seed apples"})
    for n in range(3):
        _check_mixed(await api.batch(_mixed_batch(n)), n)
        assert _keys(await api.search(("one", str(n)))) == [
            (("one", str(n)), "a"),
            (("one", str(n)), "b"),
        ]
    # Several batches at once take turns on the one connection.
    ops = [_mixed_batch(n) for n in range(10, 16)]
    for results in await asyncio.gather(*(api.batch(o) for o in ops)):
        assert results[4].value == {"text": "seed apples"}
    assert await api.sweep_ttl() == 0
    await api.setup()


async def test_async_batch_on_a_pool_of_one_never_waits_for_a_second_connection(
    db_uri: str,
) -> None:
    async with AsyncConnectionPool(
        db_uri,
        min_size=1,
        max_size=1,
        timeout=POOL_WAIT,
        kwargs=RECOMMENDED,
        open=False,
    ) as pool:
        api = Api(AsyncPostgresStore(pool))
        await asyncio.wait_for(_one_connection_scenario(api), GUARD)


def test_batch_on_a_pool_of_one_never_waits_for_a_second_connection(
    db_uri: str,
) -> None:
    with ConnectionPool(
        db_uri, min_size=1, max_size=1, timeout=POOL_WAIT, kwargs=RECOMMENDED
    ) as pool:
        api = Api(PostgresStore(pool))

        async def scenario() -> None:
            await api.put(("one", "seed"), "s", {"text": "seed apples"})
            for n in range(3):
                _check_mixed(await api.batch(_mixed_batch(n)), n)
            assert await api.sweep_ttl() == 0
            await api.setup()
            # Threads share the pool of one: each batch waits its turn.
            store = api.store
            with ThreadPoolExecutor(max_workers=4) as executor:
                futures = [
                    executor.submit(store.batch, _mixed_batch(n)) for n in range(10, 14)
                ]
                for future in futures:
                    assert future.result(GUARD)[4].value == {"text": "seed apples"}

        _in_thread(lambda: asyncio.run(scenario()))


# -- a cancelled async call --------------------------------------------------------


async def _wait_for_lock_waiter_async(uri: str) -> None:
    async with await AsyncConnection.connect(uri, autocommit=True) as watch:
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            cur = await watch.execute(_LOCK_WAITERS_SQL)
            if await cur.fetchall():
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the call never waited on the lock")


CANCELLED_BATCHES: dict[str, list[Any]] = {
    # One statement (the cursor path).
    "put": [PutOp(LOCKED, "k", {"v": "cancelled"})],
    # Several statements in one transaction (reads, a delete, the upsert).
    "batch": [
        GetOp(LOCKED, "k"),
        SearchOp(LOCKED),
        PutOp(LOCKED, "other", None),
        PutOp(LOCKED, "new", {"v": "cancelled"}),
        PutOp(LOCKED, "k", {"v": "cancelled"}),
    ],
}


@pytest.mark.parametrize("shape", CANCELLED_BATCHES)
@pytest.mark.parametrize("how", ["cancel", "wait_for"])
@pytest.mark.parametrize("kind", ["aconn", "apool", "apool-defaults", "apipeline"])
async def test_a_cancelled_async_call_leaves_the_store_usable(
    db_uri: str, kind: str, how: str, shape: str
) -> None:
    async with async_store(kind, db_uri) as store:
        await store.aput(LOCKED, "k", {"v": 1})
        await store.aput(LOCKED, "other", {"v": 1})
        with _row_locked(db_uri, LOCKED, "k"):
            call = store.abatch(CANCELLED_BATCHES[shape])
            if how == "cancel":
                task = asyncio.ensure_future(call)
                await _wait_for_lock_waiter_async(db_uri)
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=GUARD)
                assert done, "the cancelled call did not end"
                assert task.cancelled()
            else:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.wait_for(call, 0.5), GUARD)
            # The server stopped the statement: nothing waits to run once the
            # lock is released.
            assert _lock_waiters(db_uri) == []
        # The cancelled batch wrote nothing, and the store answers correctly.
        assert (await store.aget(LOCKED, "k")).value == {"v": 1}
        assert (await store.aget(LOCKED, "other")).value == {"v": 1}
        assert await store.aget(LOCKED, "new") is None
        await store.aput(LOCKED, "k", {"v": 2})
        results = await store.abatch(
            [
                PutOp(LOCKED, "after", {"v": 3}),
                GetOp(LOCKED, "k"),
                SearchOp(LOCKED, limit=10),
                ListNamespacesOp(),
            ]
        )
        assert results[1].value == {"v": 2}
        assert sorted(i.key for i in results[2]) == ["k", "other"]
        assert results[3] == [LOCKED]
        assert (await store.aget(LOCKED, "after")).value == {"v": 3}
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            "SELECT key, value::text FROM store WHERE prefix = 'locked.ns' ORDER BY 1"
        ).fetchall()
    assert rows == [("after", '{"v": 3}'), ("k", '{"v": 2}'), ("other", '{"v": 1}')]


# -- the async store's sync methods ------------------------------------------------


@contextmanager
def store_on_loop(
    kind: str, uri: str
) -> Iterator[tuple[AsyncPostgresStore, LoopThread]]:
    """An async store of ``kind``, created in a loop running in another thread."""
    with client_on_loop(lambda: async_store(kind, uri)) as (store, loop):
        yield store, loop


def _use_every_sync_method(store: AsyncPostgresStore) -> dict[str, Any]:
    ns = ("bridge", "user")
    store.put(ns, "a", {"text": "first"})
    store.put(ns, "b", {"text": "second"}, ttl=60)
    store.batch([PutOp(ns, "c", {"text": "third"})])
    got = store.get(ns, "a")
    found = store.search(("bridge",), filter={"text": "second"})
    listed = store.list_namespaces()
    store.delete(ns, "c")
    return {
        "got": got.value if got else None,
        "found": [i.key for i in found],
        "listed": listed,
        "left": sorted(i.key for i in store.search(ns)),
    }


EXPECTED_BRIDGE = {
    "got": {"text": "first"},
    "found": ["b"],
    "listed": [("bridge", "user")],
    "left": ["a", "b"],
}


@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
def test_sync_methods_work_while_the_loop_runs_in_another_thread(
    db_uri: str, kind: str
) -> None:
    with store_on_loop(kind, db_uri) as (store, _):
        observed = _in_thread(lambda: _use_every_sync_method(store))
    assert observed == EXPECTED_BRIDGE


async def test_sync_methods_work_from_a_worker_thread_of_the_running_loop(
    astore: AsyncPostgresStore,
) -> None:
    # LangGraph runs sync nodes on worker threads of the graph's loop.
    observed = await asyncio.wait_for(
        asyncio.to_thread(_use_every_sync_method, astore), GUARD
    )
    assert observed == EXPECTED_BRIDGE


@pytest.mark.parametrize("kind", ["aconn", "apool"])
def test_sync_methods_raise_at_once_on_the_loops_own_thread(
    db_uri: str, kind: str
) -> None:
    with store_on_loop(kind, db_uri) as (store, loop):

        async def on_the_loop() -> list[BaseException]:
            errors = []
            for call in (
                lambda: store.get(("a",), "k"),
                lambda: store.put(("a",), "k", {"v": 1}),
                lambda: store.search(("a",)),
                lambda: store.list_namespaces(),
                lambda: store.batch([GetOp(("a",), "k")]),
            ):
                try:
                    call()
                except BaseException as error:  # noqa: BLE001 - checked below
                    errors.append(error)
            return errors

        # loop.run() waits GUARD seconds at most: a call that blocked its own
        # loop would fail here instead of hanging.
        errors = loop.run(on_the_loop())
        assert len(errors) == 5
        for error in errors:
            assert isinstance(error, asyncio.InvalidStateError), error
            assert "aget" in str(error)
        # Nothing was left behind: the store works on, from another thread.
        assert _in_thread(lambda: store.get(("a",), "k")) is None


@pytest.mark.parametrize("kind", ["aconn", "apool"])
def test_sync_methods_raise_at_once_when_the_loop_is_stopped_or_closed(
    db_uri: str, kind: str
) -> None:
    calls: list[Callable[[], object]]
    with store_on_loop(kind, db_uri) as (store, loop):
        loop.stop()
        calls = [
            lambda: store.get(("a",), "k"),
            lambda: store.put(("a",), "k", {"v": 1}),
            lambda: store.search(("a",)),
            lambda: store.list_namespaces(),
        ]
        for call in calls:
            started = time.monotonic()
            gone = "(not running|is closed).*PostgresStore"
            with pytest.raises(RuntimeError, match=gone):
                _in_thread(call)
            assert time.monotonic() - started < 5
        # Nothing was left behind on the stopped loop: it runs on as before.
        loop.start()
        assert _in_thread(lambda: store.get(("a",), "k")) is None
    # store_on_loop closed the loop on the way out.
    assert loop.loop.is_closed()
    for call in calls:
        with pytest.raises(RuntimeError, match="not running|is closed"):
            _in_thread(call)


@pytest.mark.parametrize("kind", ["aconn", "apool"])
def test_a_sync_call_raises_when_the_loop_stops_before_it_finishes(
    db_uri: str, kind: str
) -> None:
    with store_on_loop(kind, db_uri) as (store, loop):
        _in_thread(lambda: store.put(LOCKED, "k", {"v": 1}))
        outcome: list[BaseException] = []
        with _row_locked(db_uri, LOCKED, "k"):
            # The call waits on the server (a row lock) while the loop stops.

            def call() -> None:
                try:
                    store.put(LOCKED, "k", {"v": 2})
                except BaseException as error:  # noqa: BLE001 - checked below
                    outcome.append(error)

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            _wait_for_lock_waiter(db_uri)
            loop.stop()
            caller.join(GUARD)
            assert not caller.is_alive(), "the call waits for a stopped loop"
        assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
        assert "stopped before the call finished" in str(outcome[0])
        # The abandoned call was cancelled; the store still works on the loop.
        loop.start()
        _in_thread(lambda: store.put(LOCKED, "k", {"v": 3}))
        assert _in_thread(lambda: store.get(LOCKED, "k")).value == {"v": 3}


# -- with semantic search (pgvector) -----------------------------------------------

DIMS = 8


def _embed(texts: list[str]) -> list[list[float]]:
    """A deterministic stand-in for an embedding model: hashed bigrams."""
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        padded = f" {text.lower()} "
        for i in range(len(padded) - 1):
            h = zlib.crc32(padded[i : i + 2].encode())
            vector[h % DIMS] += 1.0 if (h >> 8) & 1 else -1.0
        if not any(vector):
            vector[0] = 1.0
        vectors.append(vector)
    return vectors


def _index(**extra: Any) -> dict[str, Any]:
    return {"dims": DIMS, "embed": _embed, "fields": ["text", "tags[*]"], **extra}


@pytest.fixture
def vector_empty_db_uri(empty_db_uri: str) -> str:
    """An empty database on a server with pgvector (else the test skips)."""
    require_pgvector(empty_db_uri)
    return empty_db_uri


@pytest.mark.parametrize("kind", ["pool", "pipeline", "apool", "apipeline"])
async def test_a_batch_whose_vectors_fail_in_the_database_writes_no_item(
    vector_db_uri: str, kind: str
) -> None:
    async with open_api(kind, vector_db_uri, index=_index()) as api:
        await api.setup()
        await api.put(DOCS, "kept", {"text": "kept apples"})
        refuse_inserts(
            vector_db_uri, "store_vectors", "vector refused", "NEW.key = 'poison'"
        )
        before = _dump(vector_db_uri)
        assert len(before["store_vectors"]) == 1
        ops = [
            PutOp(DOCS, "kept", {"text": "rewritten pears"}),
            PutOp(DOCS, "new", {"text": "new bananas"}),
            PutOp(DOCS, "poison", {"text": "poison"}),
        ]
        with pytest.raises(psycopg.Error, match="vector refused"):
            await api.batch(ops)
        assert _dump(vector_db_uri) == before
        await api.batch(ops[:-1])
        found = await api.search(DOCS, query="bananas", limit=1)
        assert [i.key for i in found] == ["new"]


async def _crowded_search(api: Api) -> None:
    """A semantic search whose capped ANN candidates all belong to one item
    (it has 30 equal vectors), so the store runs it again, exactly."""
    await api.batch(
        [
            PutOp(("many",), f"k{i}", {"text": f"item {i}", "tags": tags})
            for i, tags in enumerate([["apples"] * 30] + [["apples"]] * 5)
        ]
    )
    found = await api.search(("many",), query="apples", limit=5)
    assert [i.key for i in found] == ["k0", "k1", "k2", "k3", "k4"]


async def test_async_batch_with_an_index_on_a_pool_of_one(vector_db_uri: str) -> None:
    async with AsyncConnectionPool(
        vector_db_uri,
        min_size=1,
        max_size=1,
        timeout=POOL_WAIT,
        kwargs=RECOMMENDED,
        open=False,
    ) as pool:
        api = Api(AsyncPostgresStore(pool, index=_index()))
        await asyncio.wait_for(api.setup(), GUARD)
        await asyncio.wait_for(_one_connection_scenario(api), GUARD)
        await asyncio.wait_for(_crowded_search(api), GUARD)


def test_batch_with_an_index_on_a_pool_of_one(vector_db_uri: str) -> None:
    with ConnectionPool(
        vector_db_uri, min_size=1, max_size=1, timeout=POOL_WAIT, kwargs=RECOMMENDED
    ) as pool:
        api = Api(PostgresStore(pool, index=_index()))

        async def scenario() -> None:
            await api.setup()
            await api.put(("one", "seed"), "s", {"text": "seed apples"})
            for n in range(3):
                _check_mixed(await api.batch(_mixed_batch(n)), n)
            await _crowded_search(api)

        _in_thread(lambda: asyncio.run(scenario()))


def test_setup_with_an_index_from_16_threads_at_once(vector_empty_db_uri: str) -> None:
    uri = vector_empty_db_uri
    start = threading.Barrier(RACERS)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with PostgresStore.from_conn_string(uri, index=_index()) as store:
                start.wait(GUARD)
                store.setup()
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            start.abort()
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "setup() hung"
    assert not errors, f"{len(errors)} of {RACERS} setup() calls failed: {errors}"
    _assert_store_migrated(uri)
    assert _versions(uri, "vector_migrations") == [0, 1, 2]
    with PostgresStore.from_conn_string(uri, index=_index()) as store:
        store.put(("v",), "k", {"text": "apples"})
        assert [i.key for i in store.search(("v",), query="apples")] == ["k"]


@pytest.mark.parametrize("kind", ["conn", "apool"])
async def test_setup_with_an_index_refuses_newer_vector_migrations(
    vector_db_uri: str, kind: str
) -> None:
    async with open_api(kind, vector_db_uri, index=_index()) as api:
        await api.setup()
    with _observer(vector_db_uri) as conn:
        conn.execute("INSERT INTO vector_migrations (v) VALUES (99)")
    before = _layout(vector_db_uri)
    async with open_api(kind, vector_db_uri, index=_index()) as api:
        with pytest.raises(IncompatibleSchemaError, match="99"):
            await api.setup()
    assert _layout(vector_db_uri) == before
