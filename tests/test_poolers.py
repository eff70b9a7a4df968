"""Both savers through a transaction pooler: a real PgBouncer, 2 server slots.

In transaction mode PgBouncer hands each transaction whichever server
connection is free, so a client may not rely on prepared statements or on
anything else that lives in a server session. With ``prepare_threshold=None``
on the user's connection or pool, and pipeline mode off, everything must
still work: the conformance suite, ``setup()`` on an empty database, and many
concurrent graph runs sharing two server connections, sync and async.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from psycopg import AsyncConnection, Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from tests.conftest import Databases
from tests.pgbouncer import (
    POOL_SIZE,
    PgBouncer,
    pgbouncer_or_skip,
)
from tests.test_conformance import SyncAsAsync, assert_conformance
from tests.test_graphs import (
    AsyncDriver,
    Driver,
    SyncDriver,
    chained,
    chat_graph,
    plain,
    run_sync,
    snap,
    tdef,
)

# Connection settings a user behind a transaction pooler would pass: the
# documented ones with prepared statements off, and psycopg's own defaults
# (no autocommit, tuple rows) with prepared statements off.
SETTINGS: dict[str, dict[str, Any]] = {
    "recommended": {
        "autocommit": True,
        "prepare_threshold": None,
        "row_factory": dict_row,
    },
    "defaults": {"prepare_threshold": None},
}

SYNC_KINDS = ["conn", "pool", "pool-defaults"]
ASYNC_KINDS = ["aconn", "apool", "apool-defaults"]

#: Concurrent graph runs per test, each on its own thread id.
RUNS = 50

#: Client connections of the pools in the concurrency tests: five times the
#: server connections PgBouncer has for the database.
CLIENT_POOL_SIZE = 10


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def pgbouncer(server_uri: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test server."""
    with pgbouncer_or_skip(server_uri) as bouncer:
        yield bouncer


class PooledDatabases:
    """Fresh databases on the test server, reached through PgBouncer."""

    def __init__(self, databases: Databases, bouncer: PgBouncer) -> None:
        self.databases = databases
        self.bouncer = bouncer

    def create(self, *, migrated: bool = True) -> str:
        """A new database's URI through PgBouncer (migrated, or empty)."""
        return self.bouncer.uri(self.databases.create(migrated=migrated))


@pytest.fixture
def pooled(databases: Databases, pgbouncer: PgBouncer) -> PooledDatabases:
    return PooledDatabases(databases, pgbouncer)


# --------------------------------------------------------------------------
# Savers on a URI through PgBouncer: one connection or a pool, no pipeline


@contextmanager
def sync_saver(kind: str, uri: str) -> Iterator[PostgresSaver]:
    """A :class:`PostgresSaver` on ``uri``, never preparing statements."""
    if kind == "conn":
        with Connection.connect(uri, **SETTINGS["recommended"]) as conn:
            yield PostgresSaver(conn)
    elif kind in ("pool", "pool-defaults"):
        kwargs = SETTINGS["recommended" if kind == "pool" else "defaults"]
        with ConnectionPool(uri, min_size=1, max_size=4, kwargs=kwargs) as pool:
            yield PostgresSaver(pool)
    else:
        raise ValueError(f"unknown sync saver kind {kind!r}")


@asynccontextmanager
async def async_saver(kind: str, uri: str) -> AsyncIterator[AsyncPostgresSaver]:
    """An :class:`AsyncPostgresSaver` on ``uri``, never preparing statements."""
    if kind == "aconn":
        kwargs = SETTINGS["recommended"]
        async with await AsyncConnection.connect(uri, **kwargs) as conn:
            yield AsyncPostgresSaver(conn)
    elif kind in ("apool", "apool-defaults"):
        kwargs = SETTINGS["recommended" if kind == "apool" else "defaults"]
        async with AsyncConnectionPool(
            uri, min_size=1, max_size=4, kwargs=kwargs, open=False
        ) as pool:
            yield AsyncPostgresSaver(pool)
    else:
        raise ValueError(f"unknown async saver kind {kind!r}")


# --------------------------------------------------------------------------
# The conformance suite


@pytest.mark.parametrize("kind", SYNC_KINDS)
async def test_sync_saver_conformance_through_pgbouncer(
    pooled: PooledDatabases, kind: str
) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        with sync_saver(kind, pooled.create()) as saver:
            yield SyncAsAsync(saver)

    await assert_conformance(f"PostgresSaver[pgbouncer-{kind}]", factory)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_async_saver_conformance_through_pgbouncer(
    pooled: PooledDatabases, kind: str
) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with async_saver(kind, pooled.create()) as saver:
            yield saver

    await assert_conformance(f"AsyncPostgresSaver[pgbouncer-{kind}]", factory)


# --------------------------------------------------------------------------
# setup() on an empty database


def _migration_versions(direct_uri: str) -> list[int]:
    with psycopg.connect(direct_uri) as conn:
        rows = conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        return [r[0] for r in rows]


def _direct(pooled: PooledDatabases) -> tuple[str, str]:
    """A new empty database: its direct URI and its URI through PgBouncer."""
    direct = pooled.databases.create(migrated=False)
    return direct, pooled.bouncer.uri(direct)


@pytest.mark.parametrize("settings", SETTINGS)
def test_setup_through_pgbouncer_from_many_threads(
    pooled: PooledDatabases, settings: str
) -> None:
    direct, uri = _direct(pooled)
    errors: list[BaseException] = []

    # Eight savers, each on its own connection, race to migrate while
    # PgBouncer has two server connections: the advisory lock that
    # serialises them is transaction-scoped, so it holds across the pooler.
    def run() -> None:
        try:
            with Connection.connect(uri, **SETTINGS[settings]) as conn:
                PostgresSaver(conn).setup()
                conn.commit()  # a no-op with autocommit
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _migration_versions(direct) == list(range(len(MIGRATIONS)))

    # The migrated database works through the pooler right away.
    with sync_saver("pool", uri) as saver:
        result = chat_graph(saver).invoke({"messages": ["hi"]}, tdef("t"))
    assert result == {"messages": ["hi", "reply 1 to hi"], "count": 1}


@pytest.mark.parametrize("settings", SETTINGS)
async def test_async_setup_through_pgbouncer(
    pooled: PooledDatabases, settings: str
) -> None:
    direct, uri = _direct(pooled)
    async with AsyncConnectionPool(
        uri, min_size=4, max_size=4, kwargs=SETTINGS[settings], open=False
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await asyncio.gather(*(saver.setup() for _ in range(4)))
        await saver.setup()  # and again: nothing left to do
        result = await chat_graph(saver).ainvoke({"messages": ["hi"]}, tdef("t"))
    assert result == {"messages": ["hi", "reply 1 to hi"], "count": 1}
    assert _migration_versions(direct) == list(range(len(MIGRATIONS)))


# --------------------------------------------------------------------------
# Many concurrent graph runs


class Conversation(TypedDict, total=False):
    messages: Annotated[list[str], operator.add]
    answer: str


def conversation_graph(saver: BaseCheckpointSaver) -> Any:
    """greet -> approve (asks the user, via interrupt) -> finish."""

    def greet(state: Conversation) -> Conversation:
        return {"messages": [f"greet after {len(state['messages'])}"]}

    def approve(state: Conversation) -> Conversation:
        answer = interrupt({"question": "approve?", "last": state["messages"][-1]})
        return {"messages": [f"approved:{answer}"], "answer": answer}

    def finish(state: Conversation) -> Conversation:
        return {"messages": [f"finish with {state['answer']}"]}

    builder = StateGraph(Conversation)
    builder.add_node("greet", greet)
    builder.add_node("approve", approve)
    builder.add_node("finish", finish)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", "approve")
    builder.add_edge("approve", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=saver)


def thread_name(i: int) -> str:
    return f"user-{i}"


async def converse(d: Driver, graph: Any, i: int) -> dict[str, Any]:
    """Two rounds of ask-and-resume on thread ``i``; what the user observes."""
    cfg = tdef(thread_name(i))
    outputs = []
    for text, answer in (("hi", f"yes-{i}"), ("again", f"no-{i}")):
        outputs.append(
            plain(await d.invoke(graph, {"messages": [f"{i}: {text}"]}, cfg))
        )
        outputs.append(plain(await d.invoke(graph, Command(resume=answer), cfg)))
    history = await d.history(graph, cfg)
    return {
        "outputs": outputs,
        "state": snap(await d.get_state(graph, cfg)),
        "history": [snap(s) for s in history],
        "chained": chained(history),
    }


def expected_final_messages(i: int) -> list[str]:
    """What thread ``i`` must hold after :func:`converse`, written out."""
    return [
        f"{i}: hi",
        "greet after 1",
        f"approved:yes-{i}",
        f"finish with yes-{i}",
        f"{i}: again",
        "greet after 5",
        f"approved:no-{i}",
        f"finish with no-{i}",
    ]


def reference_runs() -> list[dict[str, Any]]:
    """The same conversations on LangGraph's own in-memory saver."""
    saver = InMemorySaver()
    graph = conversation_graph(saver)
    return [run_sync(converse(SyncDriver(saver), graph, i)) for i in range(RUNS)]


def check_runs(observed: list[dict[str, Any]]) -> None:
    """Every thread ended as the graph dictates, and as InMemorySaver ends."""
    for i, run in enumerate(observed):
        assert run["state"]["values"] == {
            "messages": expected_final_messages(i),
            "answer": f"no-{i}",
        }
        assert run["state"]["next"] == ()
        assert run["chained"]
    reference = reference_runs()
    for i, (got, want) in enumerate(zip(observed, reference)):
        assert got == want, f"thread {thread_name(i)} differs from InMemorySaver"


def server_connections(server_uri: str, direct_uri: str) -> int:
    """Backends the server has for the database of ``direct_uri``."""
    dbname = conninfo_to_dict(direct_uri)["dbname"]
    with psycopg.connect(server_uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("settings", SETTINGS)
def test_concurrent_sync_graph_runs_through_pgbouncer(
    pooled: PooledDatabases, server_uri: str, settings: str
) -> None:
    direct = pooled.databases.create()
    with ConnectionPool(
        pooled.bouncer.uri(direct),
        min_size=CLIENT_POOL_SIZE,
        max_size=CLIENT_POOL_SIZE,
        kwargs=SETTINGS[settings],
    ) as pool:
        pool.wait()
        saver = PostgresSaver(pool)
        graph = conversation_graph(saver)
        driver = SyncDriver(saver)
        with ThreadPoolExecutor(max_workers=RUNS) as executor:
            observed = list(
                executor.map(
                    lambda i: run_sync(converse(driver, graph, i)), range(RUNS)
                )
            )
        listed = len(list(saver.list(None)))
        # Ten client connections shared the pooler's two server connections.
        assert pool.get_stats()["pool_size"] == CLIENT_POOL_SIZE
        assert 1 <= server_connections(server_uri, direct) <= POOL_SIZE
    check_runs(observed)
    assert listed == sum(len(run["history"]) for run in observed)


@pytest.mark.parametrize("settings", SETTINGS)
async def test_concurrent_async_graph_runs_through_pgbouncer(
    pooled: PooledDatabases, server_uri: str, settings: str
) -> None:
    direct = pooled.databases.create()
    async with AsyncConnectionPool(
        pooled.bouncer.uri(direct),
        min_size=CLIENT_POOL_SIZE,
        max_size=CLIENT_POOL_SIZE,
        kwargs=SETTINGS[settings],
        open=False,
    ) as pool:
        await pool.wait()
        saver = AsyncPostgresSaver(pool)
        graph = conversation_graph(saver)
        driver = AsyncDriver(saver)
        observed = await asyncio.gather(
            *(converse(driver, graph, i) for i in range(RUNS))
        )
        listed = len([t async for t in saver.alist(None)])
        assert pool.get_stats()["pool_size"] == CLIENT_POOL_SIZE
        assert 1 <= server_connections(server_uri, direct) <= POOL_SIZE
    check_runs(list(observed))
    assert listed == sum(len(run["history"]) for run in observed)
