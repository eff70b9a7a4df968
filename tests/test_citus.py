"""The savers on Citus: the saver's tables distributed by ``thread_id``.

A throwaway Citus cluster (a coordinator and two workers, ``tests/citus.py``)
serves the whole session; each saver gets a schema of its own, set up by
``setup()`` and then distributed by ``distribute_tables``. On it run the
conformance suite, the real graphs of ``test_graphs.py`` and the delta
channels of ``test_delta_channels.py``, the databases other packages wrote
(``test_compat_fixtures.py``), and ``setup()`` on distributed tables at
every stage. Where a test of those modules takes a saver and a database
URI, it is called as it is, with a Citus saver and a URI whose search path
is the saver's schema: the same assertions, on distributed tables.

Without Citus on the machine these tests skip (with how to get it); with
``REQUIRE_CITUS=1``, as CI sets, they fail instead. Which operations stay on
one shard is ``test_citus_routing.py``'s subject.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.types import Command
from psycopg import sql

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._migrations import MIGRATION_TEMPLATES
from langgraph.checkpoint.postgres._sql import render
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from langgraph.checkpoint.postgres.citus import (
    CitusNotInstalledError,
    adistribute_tables,
    distribute_tables,
)
from langgraph.store.postgres import PostgresStore

# The tests of other modules that run here too, called with a saver and a
# URI on distributed tables (through the module, so that pytest does not
# collect them a second time as tests of this one).
from tests import test_compat_fixtures as compat
from tests import test_delta_channels as delta
from tests import test_graphs as graphs
from tests.citus import (
    DATABASE,
    SHARD_COUNT,
    CitusCluster,
    adistributed_saver,
    distributed_saver,
    in_schema,
    new_schema_name,
    require_citus,
    shared_citus_cluster,
)
from tests.savers import async_saver, sync_saver
from tests.test_compat_fixtures import (
    LEGACY,
    LEGACY_CONFIG,
    UPSTREAM,
    UPSTREAM_THREADS,
    read_fixture,
    thread_config,
)
from tests.test_conformance import SyncAsAsync, assert_conformance

pytestmark = pytest.mark.cluster

SYNC_KINDS = ["conn", "pool"]
ASYNC_KINDS = ["aconn", "apool"]
SAVER_TABLES = ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
ALL_TABLES = [*SAVER_TABLES, "checkpoint_migrations"]
#: The last version langgraph-checkpoint-postgres 3.x knows (see test_setup).
UPSTREAM_LATEST = 9
RUN_ID_INDEX = "checkpoints_run_id_idx"
METADATA_INDEX = "checkpoints_metadata_idx"
THREAD_ID_INDEXES = {
    "checkpoints_thread_id_idx",
    "checkpoint_blobs_thread_id_idx",
    "checkpoint_writes_thread_id_idx",
}


@pytest.fixture(scope="session")
def citus() -> Iterator[CitusCluster]:
    """The session's Citus cluster (skips, or fails, without Citus)."""
    require_citus()
    with shared_citus_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def citus_uri(citus: CitusCluster) -> str:
    """The coordinator's database that the tests share, schema by schema."""
    return citus.uri(DATABASE)


# --------------------------------------------------------------------------
# Looking at a schema: what Citus made of its tables, and its indexes


def create_schema(uri: str, schema: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def distribution(uri: str, schema: str) -> dict[str, tuple[str, str | None, int]]:
    """Each Citus table of ``schema``: (kind, distribution column, shards).

    The kind is ``'hash'`` or ``'reference'``; tables Citus does not know
    are absent.
    """
    query = """
        SELECT c.relname,
            CASE p.partmethod WHEN 'h' THEN 'hash' WHEN 'n' THEN 'reference'
                ELSE p.partmethod::text END,
            column_to_column_name(p.logicalrelid, p.partkey),
            (SELECT count(*) FROM pg_dist_shard s
             WHERE s.logicalrelid = p.logicalrelid)
        FROM pg_dist_partition p
        JOIN pg_class c ON c.oid = p.logicalrelid
        WHERE c.relnamespace = %s::regnamespace
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(query, (schema,)).fetchall()
    return {name: (kind, column, int(shards)) for name, kind, column, shards in rows}


def colocation_ids(uri: str, schema: str) -> set[int]:
    query = """
        SELECT p.colocationid FROM pg_dist_partition p
        JOIN pg_class c ON c.oid = p.logicalrelid
        WHERE c.relnamespace = %s::regnamespace AND c.relname = ANY(%s)
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(query, (schema, SAVER_TABLES)).fetchall()
    return {r[0] for r in rows}


def assert_distributed(uri: str, schema: str, shard_count: int = SHARD_COUNT) -> None:
    """The three tables are hash-distributed by thread_id with ``shard_count``
    shards, colocated; the versions table is a reference table."""
    found = distribution(uri, schema)
    expected: dict[str, tuple[str, str | None, int]] = {
        t: ("hash", "thread_id", shard_count) for t in SAVER_TABLES
    }
    # Citus 13 reports the reference table's "column" as NULL.
    expected["checkpoint_migrations"] = ("reference", None, 1)
    assert found == expected
    assert len(colocation_ids(uri, schema)) == 1


def coordinator_indexes(uri: str, schema: str) -> dict[str, bool]:
    """Indexes of ``schema``'s tables on the coordinator: name -> valid."""
    query = """
        SELECT i.relname, x.indisvalid FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE i.relnamespace = %s::regnamespace
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        return dict(conn.execute(query, (schema,)).fetchall())


def worker_indexes(uri: str, schema: str) -> dict[str, set[str]]:
    """Indexes of ``schema``'s shards on each worker, by the name of the
    index they are a shard of (``checkpoints_run_id_idx_102008`` counts as
    ``checkpoints_run_id_idx``); only valid ones."""
    command = (
        "SELECT coalesce(string_agg(i.relname, ','), '') FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        f"WHERE i.relnamespace = '{schema}'::regnamespace AND x.indisvalid"
    )
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nodeport, success, result FROM run_command_on_workers(%s)",
            (command,),
        ).fetchall()
    found: dict[str, set[str]] = {}
    for port, success, result in rows:
        assert success, result
        names = {n.rsplit("_", 1)[0] for n in result.split(",") if n}
        found[str(port)] = names
    return found


def versions(uri: str, schema: str) -> list[int]:
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT v FROM {}.checkpoint_migrations ORDER BY v").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    return [v for (v,) in rows]


def schema_state(uri: str, schema: str) -> dict[str, Any]:
    """What setup() or distribute_tables() could change in ``schema``."""
    with psycopg.connect(uri, autocommit=True) as conn:
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable,
                column_default FROM information_schema.columns
            WHERE table_schema = %s ORDER BY table_name, ordinal_position""",
            (schema,),
        ).fetchall()
        shards = conn.execute(
            """SELECT c.relname, s.shardid, s.shardminvalue, s.shardmaxvalue
            FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid
            WHERE c.relnamespace = %s::regnamespace ORDER BY s.shardid""",
            (schema,),
        ).fetchall()
    return {
        "columns": columns,
        "indexes": coordinator_indexes(uri, schema),
        "worker_indexes": worker_indexes(uri, schema),
        "versions": versions(uri, schema),
        "distribution": distribution(uri, schema),
        "shards": shards,
    }


def count_checkpoints(uri: str, schema: str) -> int:
    with psycopg.connect(uri, autocommit=True) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.checkpoints")
        (count,) = conn.execute(query.format(sql.Identifier(schema))).fetchone()
    return int(count)


def threads_seen(saver: PostgresSaver, threads: int) -> list[list[Any]]:
    """What ``list`` shows of threads ``t0``... one thread at a time (a
    list across threads is the subject of other tests)."""
    return [
        [
            (t.config, t.checkpoint, t.metadata, t.parent_config, t.pending_writes)
            for t in saver.list({"configurable": {"thread_id": f"t{i}"}})
        ]
        for i in range(threads)
    ]


def checkpoint_args(thread_id: str, text: str, version: int = 1) -> tuple[Any, ...]:
    """Arguments of a put whose list value goes to a blob (of ``version``)."""
    versions = {"messages": str(version), "count": str(version)}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [text], "count": version}
    checkpoint["channel_versions"] = dict(versions)
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    metadata = {"source": "loop", "step": version, "run_id": f"run-{thread_id}"}
    return config, checkpoint, metadata, versions


def assert_round_trip(saver: PostgresSaver) -> None:
    """A put and a put_writes read back, on a thread of their own."""
    thread_id = f"rt-{uuid.uuid4().hex[:8]}"
    stored = saver.put(*checkpoint_args(thread_id, "hello"))
    saver.put_writes(stored, [("messages", ["pending"])], "task-1")
    loaded = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    assert loaded is not None
    assert loaded.config["configurable"] == stored["configurable"]
    assert loaded.checkpoint["channel_values"] == {"messages": ["hello"], "count": 1}
    assert loaded.pending_writes == [("task-1", "messages", ["pending"])]


async def aassert_round_trip(saver: AsyncPostgresSaver) -> None:
    thread_id = f"rt-{uuid.uuid4().hex[:8]}"
    stored = await saver.aput(*checkpoint_args(thread_id, "hello"))
    await saver.aput_writes(stored, [("messages", ["pending"])], "task-1")
    loaded = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == {"messages": ["hello"], "count": 1}
    assert loaded.pending_writes == [("task-1", "messages", ["pending"])]


# --------------------------------------------------------------------------
# The cluster itself


def test_the_cluster_has_a_coordinator_and_two_workers(citus_uri: str) -> None:
    with psycopg.connect(citus_uri, autocommit=True) as conn:
        (version,) = conn.execute("SELECT citus_version()").fetchone()
        nodes = conn.execute(
            "SELECT groupid = 0, shouldhaveshards, isactive FROM pg_dist_node "
            "ORDER BY groupid"
        ).fetchall()
    assert version.startswith("Citus ")
    # The coordinator holds no shards: every shard query is a remote one.
    assert nodes == [(True, False, True), (False, True, True), (False, True, True)]


# --------------------------------------------------------------------------
# 1. The conformance suite


@pytest.mark.parametrize("kind", SYNC_KINDS)
async def test_sync_saver_conformance_on_citus(citus_uri: str, kind: str) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        with distributed_saver(kind, citus_uri) as saver:
            yield SyncAsAsync(saver)

    await assert_conformance(f"PostgresSaver[{kind}] on Citus", factory)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_async_saver_conformance_on_citus(citus_uri: str, kind: str) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with adistributed_saver(kind, citus_uri) as saver:
            yield saver

    await assert_conformance(f"AsyncPostgresSaver[{kind}] on Citus", factory)


# --------------------------------------------------------------------------
# 2. Real graphs, and DeltaChannel history and pruning


@pytest.mark.parametrize("name", list(graphs.SCENARIOS))
@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_graph_scenario_on_citus(citus_uri: str, kind: str, name: str) -> None:
    with distributed_saver(kind, citus_uri) as saver:
        graphs.test_sync_api_matches_in_memory(name, saver)


@pytest.mark.parametrize("name", list(graphs.SCENARIOS))
@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_async_graph_scenario_on_citus(
    citus_uri: str, kind: str, name: str
) -> None:
    async with adistributed_saver(kind, citus_uri) as saver:
        await graphs.test_async_api_matches_in_memory(name, saver)


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_delta_graph_and_prune_on_citus(citus_uri: str, kind: str) -> None:
    schema = new_schema_name()
    with distributed_saver(kind, citus_uri, schema) as saver:
        uri = in_schema(citus_uri, schema)
        delta.test_delta_graph_matches_in_memory_and_survives_prune(saver, uri)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_async_delta_graph_and_prune_on_citus(citus_uri: str, kind: str) -> None:
    schema = new_schema_name()
    async with adistributed_saver(kind, citus_uri, schema) as saver:
        uri = in_schema(citus_uri, schema)
        await delta.test_delta_graph_matches_in_memory_and_survives_prune_async(
            saver, uri
        )


def test_delta_histories_on_citus(citus_uri: str) -> None:
    schema = new_schema_name()
    with distributed_saver("conn", citus_uri, schema) as saver:
        delta.test_shallow_delta_histories(saver, in_schema(citus_uri, schema))


async def test_async_delta_histories_on_citus(citus_uri: str) -> None:
    schema = new_schema_name()
    async with adistributed_saver("apool", citus_uri, schema) as saver:
        uri = in_schema(citus_uri, schema)
        await delta.test_shallow_delta_histories_async(saver, uri)


# --------------------------------------------------------------------------
# 3. Databases written by other packages, on distributed tables


def load_fixture_schema(uri: str, name: str) -> tuple[str, str]:
    """A new schema holding fixture ``name`` at its own version, not yet
    distributed or set up: (schema, URI whose search path is that schema)."""
    schema = new_schema_name("lgcp_fx")
    create_schema(uri, schema)
    schema_uri = in_schema(uri, schema)
    compat.load_fixture(schema_uri, read_fixture(name))
    return schema, schema_uri


def citus_fixture(uri: str, name: str) -> str:
    """Fixture ``name`` loaded, distributed, then set up by our saver (the
    way a 3.x database moves to Citus before upgrading to this package);
    the URI to read it through."""
    schema, schema_uri = load_fixture_schema(uri, name)
    assert distribute_tables(uri, schema=schema, shard_count=SHARD_COUNT) == ALL_TABLES
    with PostgresSaver.from_conn_string(uri, schema=schema) as saver:
        saver.setup()
    return schema_uri


@pytest.fixture(scope="module")
def upstream_citus_uri(citus_uri: str) -> str:
    """The 3.2.0 database on distributed tables; tests only read it."""
    return citus_fixture(citus_uri, UPSTREAM)


@pytest.fixture(scope="module")
def legacy_citus_uri(citus_uri: str) -> str:
    """The 0.2 database on distributed tables; tests only read it."""
    return citus_fixture(citus_uri, LEGACY)


@pytest.mark.parametrize("thread_id", UPSTREAM_THREADS)
@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_upstream_thread_on_citus(
    upstream_citus_uri: str, kind: str, thread_id: str
) -> None:
    compat.test_upstream_thread_sync(upstream_citus_uri, kind, thread_id)


@pytest.mark.parametrize("thread_id", UPSTREAM_THREADS)
@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_async_upstream_thread_on_citus(
    upstream_citus_uri: str, kind: str, thread_id: str
) -> None:
    await compat.test_upstream_thread_async(upstream_citus_uri, kind, thread_id)


def test_upstream_filter_on_citus(upstream_citus_uri: str) -> None:
    # A metadata filter across threads: every shard answers.
    compat.test_upstream_filter_sync(upstream_citus_uri, "conn")


async def test_async_upstream_filter_on_citus(upstream_citus_uri: str) -> None:
    await compat.test_upstream_filter_async(upstream_citus_uri, "apool")


def test_upstream_rows_keep_their_meaning_on_citus(upstream_citus_uri: str) -> None:
    compat.test_upstream_rows_have_the_same_meaning(upstream_citus_uri)


@pytest.mark.parametrize("kind", ["conn", "apool"])
async def test_legacy_sends_before_resume_on_citus(
    legacy_citus_uri: str, kind: str
) -> None:
    if kind == "conn":
        compat.test_legacy_before_resume_sync(legacy_citus_uri, kind)
    else:
        await compat.test_legacy_before_resume_async(legacy_citus_uri, kind)


@pytest.mark.parametrize("kind", ["conn", "apool"])
async def test_resume_upstream_interrupt_on_citus(citus_uri: str, kind: str) -> None:
    uri = citus_fixture(citus_uri, UPSTREAM)
    config = thread_config("interrupt-open")
    expected = read_fixture(UPSTREAM).expected["threads"]["interrupt-resumed"]
    if kind == "conn":
        with sync_saver(kind, uri) as saver:
            graph = compat.build_graph("interrupt", saver)
            result = graph.invoke(Command(resume="yes"), config)
            history = list(graph.get_state_history(config))
    else:
        async with async_saver(kind, uri) as asaver:
            graph = compat.build_graph("interrupt", asaver)
            result = await graph.ainvoke(Command(resume="yes"), config)
            history = [h async for h in graph.aget_state_history(config)]
    assert result == expected["values"]
    compat.check_resumed(history)


@pytest.mark.parametrize("kind", ["pool", "aconn"])
async def test_resume_legacy_sends_on_citus(citus_uri: str, kind: str) -> None:
    uri = citus_fixture(citus_uri, LEGACY)
    if kind == "pool":
        with sync_saver(kind, uri) as saver:
            graph = compat.build_legacy_graph(saver)
            graph.invoke(None, LEGACY_CONFIG)
            state = graph.get_state(LEGACY_CONFIG)
    else:
        async with async_saver(kind, uri) as asaver:
            graph = compat.build_legacy_graph(asaver)
            await graph.ainvoke(None, LEGACY_CONFIG)
            state = await graph.aget_state(LEGACY_CONFIG)
    compat.check_legacy_after(state)


@pytest.mark.parametrize("order", ["distribute-then-setup", "setup-then-distribute"])
@pytest.mark.parametrize("name", [UPSTREAM, LEGACY])
def test_fixture_setup_and_distribution_keep_every_row(
    citus_uri: str, name: str, order: str
) -> None:
    """A foreign database (at 9, or at 8 without task_path) moves to Citus
    either side of our setup(): every row stays as it was, every thread's
    newest checkpoint is found, and a second round changes nothing."""
    fixture = read_fixture(name)
    schema, schema_uri = load_fixture_schema(citus_uri, name)
    before = compat.dump(schema_uri, fixture)
    with sync_saver("conn", citus_uri, schema=schema) as saver:
        for round_ in range(2):
            if order == "distribute-then-setup":
                changed = distribute_tables(
                    citus_uri, schema=schema, shard_count=SHARD_COUNT
                )
                saver.setup()
            else:
                saver.setup()
                changed = distribute_tables(
                    citus_uri, schema=schema, shard_count=SHARD_COUNT
                )
            assert changed == (ALL_TABLES if round_ == 0 else [])
            for thread_id, checkpoint_id in sorted(compat.latest_ids(fixture).items()):
                found = saver.get_tuple(thread_config(thread_id))
                assert found is not None, thread_id
                assert found.config["configurable"]["checkpoint_id"] == checkpoint_id
    assert_distributed(citus_uri, schema)
    compat.check_setup_effect(fixture, schema_uri, before)


# --------------------------------------------------------------------------
# 4. setup() and distribute_tables() at every stage


def test_setup_then_distribute_a_fresh_database(citus: CitusCluster) -> None:
    """The default schema of a new Citus database, the cluster's default
    shard count: the way the docs tell a user to start."""
    uri = citus.create_database(f"lgcp_citus_fresh_{uuid.uuid4().hex[:8]}")
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
        assert distribute_tables(uri) == ALL_TABLES
        with psycopg.connect(uri, autocommit=True) as conn:
            (default_count,) = conn.execute("SHOW citus.shard_count").fetchone()
        assert_distributed(uri, "public", int(default_count))
        before = schema_state(uri, "public")
        saver.setup()
        assert distribute_tables(uri) == []
        assert schema_state(uri, "public") == before
        assert versions(uri, "public") == list(range(len(MIGRATIONS)))
        assert_round_trip(saver)


def test_setup_then_distribute_through_a_connection(citus_uri: str) -> None:
    schema = new_schema_name()
    with sync_saver("conn", citus_uri, schema=schema) as saver:
        saver.setup()
        # The caller's own connection, as psycopg opens it by default (no
        # autocommit): distribute_tables commits its work.
        with psycopg.connect(citus_uri) as conn:
            changed = distribute_tables(conn, schema=schema, shard_count=SHARD_COUNT)
            assert changed == ALL_TABLES
        assert_distributed(citus_uri, schema)
        assert_round_trip(saver)


async def test_async_setup_then_distribute(citus_uri: str) -> None:
    schema = new_schema_name()
    async with async_saver("aconn", citus_uri, schema=schema) as saver:
        await saver.setup()
        async with await psycopg.AsyncConnection.connect(
            citus_uri, autocommit=True
        ) as conn:
            first = await adistribute_tables(
                conn, schema=schema, shard_count=SHARD_COUNT
            )
            again = await adistribute_tables(
                conn, schema=schema, shard_count=SHARD_COUNT
            )
        assert (first, again) == (ALL_TABLES, [])
        assert_distributed(citus_uri, schema)
        await saver.setup()
        await aassert_round_trip(saver)


@pytest.mark.parametrize("kind", ["conn", "pool", "aconn", "apool"])
async def test_setup_on_a_distributed_schema_changes_nothing(
    citus_uri: str, kind: str
) -> None:
    schema = new_schema_name()
    with distributed_saver("conn", citus_uri, schema) as first:
        assert_round_trip(first)
    before = schema_state(citus_uri, schema)
    assert before["versions"] == list(range(len(MIGRATIONS)))
    if kind in SYNC_KINDS:
        with sync_saver(kind, citus_uri, schema=schema) as saver:
            for _ in range(2):
                saver.setup()
                assert_round_trip(saver)
    else:
        async with async_saver(kind, citus_uri, schema=schema) as asaver:
            for _ in range(2):
                await asaver.setup()
                await aassert_round_trip(asaver)
    assert schema_state(citus_uri, schema) == before


def build_upstream_layout(uri: str, schema: str) -> None:
    """``schema`` as langgraph-checkpoint-postgres 3.x leaves it: migrations
    0-9 applied and recorded (with the thread_id indexes of 6-8)."""
    create_schema(uri, schema)
    with psycopg.connect(uri, autocommit=True) as conn:
        for version in range(UPSTREAM_LATEST + 1):
            conn.execute(render(MIGRATION_TEMPLATES[version], schema))
            conn.execute(
                sql.SQL("INSERT INTO {}.checkpoint_migrations (v) VALUES (%s)").format(
                    sql.Identifier(schema)
                ),
                (version,),
            )


@pytest.mark.parametrize("threads", [0, 30], ids=["empty", "with-rows"])
def test_setup_migrates_a_schema_distributed_at_version_9(
    citus_uri: str, threads: int
) -> None:
    """Migrations 10 and 12 (indexes, built CONCURRENTLY when the table has
    rows) and 11 (dropping the three thread_id indexes) on distributed
    tables: on the coordinator's tables and on every shard."""
    schema = new_schema_name()
    build_upstream_layout(citus_uri, schema)
    with sync_saver("conn", citus_uri, schema=schema) as saver:
        # The 3.x layout has every column a write needs: fill it before
        # distributing, as a database in use would be.
        stored = [
            saver.put(*checkpoint_args(f"old-{i}", f"m{i}")) for i in range(threads)
        ]
        assert distribute_tables(citus_uri, schema=schema, shard_count=SHARD_COUNT) == (
            ALL_TABLES
        )
        assert_distributed(citus_uri, schema)
        assert THREAD_ID_INDEXES <= set(coordinator_indexes(citus_uri, schema))
        for names in worker_indexes(citus_uri, schema).values():
            assert THREAD_ID_INDEXES <= names

        saver.setup()

        assert versions(citus_uri, schema) == list(range(len(MIGRATIONS)))
        indexes = coordinator_indexes(citus_uri, schema)
        assert indexes.get(RUN_ID_INDEX) is True, indexes
        assert indexes.get(METADATA_INDEX) is True, indexes
        assert not THREAD_ID_INDEXES & set(indexes), indexes
        assert all(indexes.values()), indexes
        on_workers = worker_indexes(citus_uri, schema)
        assert len(on_workers) == 2
        for names in on_workers.values():
            assert {RUN_ID_INDEX, METADATA_INDEX} <= names
            assert not THREAD_ID_INDEXES & names
        for config in stored:
            loaded = saver.get_tuple(config)
            assert loaded is not None
            assert loaded.config["configurable"] == config["configurable"]
        assert count_checkpoints(citus_uri, schema) == threads
        # delete_for_runs is what index 10 serves.
        if threads:
            saver.delete_for_runs(["run-old-0"])
            assert saver.get_tuple(stored[0]) is None
            assert count_checkpoints(citus_uri, schema) == threads - 1
            # And index 12 serves a list across threads with a filter.
            found = list(saver.list(None, filter={"run_id": "run-old-1"}))
            assert [t.config for t in found] == [stored[1]]
        assert_round_trip(saver)
        before = schema_state(citus_uri, schema)
        saver.setup()
        assert schema_state(citus_uri, schema) == before


def test_distribute_a_schema_that_holds_rows(citus_uri: str) -> None:
    """Rows written before distribution move to the shards, readable as
    before; a second distribution changes nothing."""
    schema = new_schema_name()
    with sync_saver("pool", citus_uri, schema=schema) as saver:
        saver.setup()
        # Enough threads that every shard gets some.
        for i in range(24):
            config = saver.put(*checkpoint_args(f"t{i}", f"first {i}"))
            saver.put_writes(config, [("messages", [f"w{i}"])], f"task-{i}")
            saver.put(config, *checkpoint_args(f"t{i}", f"second {i}", 2)[1:])
        before = threads_seen(saver, 24)
        assert sum(len(listed) for listed in before) == 48
        assert distribute_tables(citus_uri, schema=schema, shard_count=SHARD_COUNT) == (
            ALL_TABLES
        )
        assert (
            distribute_tables(citus_uri, schema=schema, shard_count=SHARD_COUNT) == []
        )
        assert_distributed(citus_uri, schema)
        after = threads_seen(saver, 24)
        assert after == before
        with psycopg.connect(citus_uri, autocommit=True) as conn:
            per_shard = conn.execute(
                """SELECT count(*) FROM citus_shards
                WHERE table_name = %s::regclass AND shard_size > 0""",
                (f"{schema}.checkpoints",),
            ).fetchone()
        # The rows now live in the shards (all four hold some).
        assert per_shard == (SHARD_COUNT,)
        for i in range(24):
            loaded = saver.get_tuple({"configurable": {"thread_id": f"t{i}"}})
            assert loaded is not None
            assert loaded.checkpoint["channel_values"]["messages"] == [f"second {i}"]
        assert_round_trip(saver)


def test_distribute_tables_without_citus_says_so(citus: CitusCluster) -> None:
    # A database on the coordinator's server without the extension.
    uri = citus.create_plain_database(f"lgcp_plain_{uuid.uuid4().hex[:8]}")
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
    with pytest.raises(CitusNotInstalledError, match="citus"):
        distribute_tables(uri)


def test_distribute_tables_before_setup_says_so(citus_uri: str) -> None:
    schema = new_schema_name()
    create_schema(citus_uri, schema)
    with pytest.raises(Exception, match=r"setup\(\)"):
        distribute_tables(citus_uri, schema=schema, shard_count=SHARD_COUNT)
    assert distribution(citus_uri, schema) == {}


# -- the store beside distributed checkpoints ----------------------------------


def test_the_store_works_on_a_citus_coordinator(citus_uri: str) -> None:
    # The docs say: leave the store's tables as ordinary tables on the
    # coordinator, next to the distributed checkpoint tables.
    schema = new_schema_name()
    with distributed_saver("conn", citus_uri, schema=schema) as saver:
        assert_round_trip(saver)
    with PostgresStore.from_conn_string(citus_uri, schema=schema) as store:
        store.setup()
        store.put(("users", "alice"), "prefs", {"color": "blue", "n": 3})
        store.put(("users", "bob"), "prefs", {"color": "red", "n": 1})
        assert store.get(("users", "alice"), "prefs").value == {
            "color": "blue",
            "n": 3,
        }
        found = store.search(("users",), filter={"n": {"$gt": 2}})
        assert [(i.namespace, i.key) for i in found] == [(("users", "alice"), "prefs")]
        assert store.list_namespaces(prefix=("users",)) == [
            ("users", "alice"),
            ("users", "bob"),
        ]
        store.delete(("users", "bob"), "prefs")
        assert store.get(("users", "bob"), "prefs") is None
    kinds = distribution(citus_uri, schema)
    assert "store" not in kinds and "checkpoints" in kinds, kinds
