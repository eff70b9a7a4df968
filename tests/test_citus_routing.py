"""Where each operation runs on Citus, and that it gives what plain PostgreSQL
gives.

The point of distributing the tables by ``thread_id`` is that an operation
naming one thread runs on the one shard group holding that thread (a shard
of each colocated table, on one worker) and commits there, without a
two-phase commit across nodes. These tests check that, operation by
operation, from what the coordinator itself reports: with
``citus.log_remote_commands`` on, it sends the client a NOTICE for every
command it sends a worker, naming the shards (``checkpoints_102008``) and
the node; ``pg_dist_shard`` maps each shard to its hash range, i.e. its
shard group (``tests/citus.py``).

Every operation also runs on the same rows in plain tables (a schema of the
coordinator's own that is not distributed), and its result must be the
same: that covers the operations across threads too (a list without a
thread, a metadata filter, ``delete_for_runs``, a prune of several threads,
the copy's write), which may fan out to every shard.

With ``-s`` the last test prints the routing table that was observed.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import StateSnapshot
from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import dict_row

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.citus import distribute_tables
from tests import test_delta_channels as delta
from tests.citus import (
    DATABASE,
    SHARD_COUNT,
    CitusCluster,
    RemoteCommand,
    Routing,
    Shard,
    awatch,
    new_schema_name,
    require_citus,
    routing,
    shard_map,
    shared_citus_cluster,
    thread_group,
    threads_in_groups,
    transactions,
    watch,
)

pytestmark = pytest.mark.cluster

RECOMMENDED: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


@pytest.fixture(scope="session")
def citus() -> Iterator[CitusCluster]:
    """The session's Citus cluster (skips, or fails, without Citus)."""
    require_citus()
    with shared_citus_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def citus_uri(citus: CitusCluster) -> str:
    return citus.uri(DATABASE)


def set_up(uri: str, schema: str, *, distributed: bool) -> None:
    with PostgresSaver.from_conn_string(uri, schema=schema) as saver:
        saver.setup()
    if distributed:
        distribute_tables(uri, schema=schema, shard_count=SHARD_COUNT)


# --------------------------------------------------------------------------
# The rows the operations work on


#: Roles of the threads, each at (shard group, n-th thread id in it): the
#: thread an operation names is never alone in its shard group's worker, and
#: threads that operations change are not the ones others read.
ROLES: dict[str, tuple[int, int]] = {
    "T": (0, 0),  # read, written, copied from
    "X": (1, 0),  # delete_thread
    "P": (2, 0),  # prune keep_latest
    "Q": (3, 0),  # prune delete
    "P2": (0, 1),  # prune keep_latest of two threads, with Q2
    "Q2": (1, 1),
    "M1": (2, 1),  # prune delete of two threads, with M2
    "M2": (3, 1),
    "R1": (0, 2),  # delete_for_runs of two runs, with R2
    "R2": (1, 2),
}
# "C", the copy's target, is picked on the other worker than T (see World).

#: The delta threads of test_delta_channels (fixed ids), and the loop graph.
SEEDS, FORK, LOOP = "seeds", "fork", "loop"


@dataclass
class World:
    """Two copies of the same rows: distributed, and in plain tables."""

    uri: str
    schema: str
    plain: str
    # The loop graph runs in schemas of their own: its checkpoint ids are
    # new each run, and would make lists across threads differ.
    graph_schema: str
    graph_plain: str
    threads: dict[str, str]
    shards: dict[int, Shard]
    graph_shards: dict[int, Shard]
    seeds: list[Any] = field(default_factory=list)

    def group(self, role: str) -> int:
        if role == LOOP:
            return thread_group(self.uri, self.graph_schema, LOOP)
        return thread_group(self.uri, self.schema, self.threads.get(role, role))


def fill(savers: list[PostgresSaver], thread_id: str, run_id: str) -> None:
    """Three root checkpoints and two of a subgraph's namespace, each with
    two writes, on every saver alike (fixed ids; values in blobs and inline)."""
    for ns, count in (("", 3), ("child:1", 2)):
        parent = delta._config(thread_id, ns)
        for i in range(count):
            values = {"messages": [f"{thread_id}/{ns}/{i}"], "count": i}
            versions = {
                "messages": delta._version(i + 1),
                "count": delta._version(i + 1),
            }
            metadata = {
                "source": "loop",
                "step": i,
                "user": "alice" if i % 2 == 0 else "bob",
                "run_id": run_id,
            }
            for saver in savers:
                config = saver.put(
                    parent, delta._checkpoint(i, values, versions), metadata, versions
                )
                saver.put_writes(
                    config, [("messages", [f"w{i}"]), ("count", i)], f"task-{i}", "~n"
                )
            parent = config


def build_world(uri: str) -> World:
    names = [new_schema_name("lgcp_r") for _ in range(4)]
    schema, plain, graph_schema, graph_plain = names
    for name in names:
        set_up(uri, name, distributed=name in (schema, graph_schema))
    shards = shard_map(uri, schema)
    by_group = threads_in_groups(uri, schema, "thread", per_group=4)
    threads = {role: by_group[g][n] for role, (g, n) in ROLES.items()}
    # The copy's target on the other worker: the copy then spans two nodes.
    ports = {s.group: s.port for s in shards.values() if s.group >= 0}
    other = next(g for g in range(SHARD_COUNT) if ports[g] != ports[0])
    threads["C"] = by_group[other][3]
    world = World(
        uri,
        schema,
        plain,
        graph_schema,
        graph_plain,
        threads,
        shards,
        shard_map(uri, graph_schema),
    )
    with (
        PostgresSaver.from_conn_string(uri, schema=schema) as distributed,
        PostgresSaver.from_conn_string(uri, schema=plain) as local,
    ):
        for role, thread_id in threads.items():
            if role != "C":
                fill([distributed, local], thread_id, f"run-{role}")
        mirror = delta.Mirror(distributed, local)
        world.seeds = delta._build_seeds(mirror)
        delta._build_fork(mirror)
    for name in (graph_schema, graph_plain):
        with PostgresSaver.from_conn_string(uri, schema=name) as saver:
            graph = delta._loop_builder().compile(checkpointer=saver)
            graph.invoke(
                {"messages": ["hello"], "count": 0, "limit": 20},
                delta._run_config(LOOP),
            )
    return world


# --------------------------------------------------------------------------
# The operations

ONE = "one thread"  # must run on its thread's shard group alone, in one phase
SOURCE = "copy"  # its reads must run on the source thread's shard group
MANY = "threads"  # may run anywhere; its result is what counts


@dataclass(frozen=True)
class Call:
    method: str  # the sync name; the async saver's is "a" + it
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Op:
    label: str
    scope: str
    role: str | None  # the thread it names (ONE, SOURCE)
    call: Callable[[World], Call]
    on_graph: bool = False  # the loop graph's, not the saver's


def thread(world: World, role: str, ns: str | None = None, i: int | None = None) -> Any:
    """The config of thread ``role`` (namespace, checkpoint ``i``: optional)."""
    configurable: dict[str, Any] = {"thread_id": world.threads[role]}
    if ns is not None:
        configurable["checkpoint_ns"] = ns
    if i is not None:
        configurable["checkpoint_id"] = delta._cid(i)
    return {"configurable": configurable}


def new_checkpoint(world: World, ns: str, parent: int, i: int) -> Call:
    versions = {"messages": delta._version(i + 1), "count": delta._version(i + 1)}
    values = {"messages": [f"new {i}"], "count": i}
    metadata = {"source": "loop", "step": i, "user": "alice", "run_id": "run-T"}
    return Call(
        "put",
        (
            thread(world, "T", ns, parent),
            delta._checkpoint(i, values, versions),
            metadata,
            versions,
        ),
    )


OPS: list[Op] = [
    Op("put", ONE, "T", lambda w: new_checkpoint(w, "", 2, 10)),
    Op(
        "put, subgraph namespace",
        ONE,
        "T",
        lambda w: new_checkpoint(w, "child:1", 1, 11),
    ),
    Op(
        "put_writes",
        ONE,
        "T",
        lambda w: Call(
            "put_writes",
            (
                thread(w, "T", "", 10),
                [("messages", ["pending"]), ("count", 7)],
                "t-new",
                "~n",
            ),
        ),
    ),
    Op(
        "put_writes, __error__",
        ONE,
        "T",
        lambda w: Call(
            "put_writes", (thread(w, "T", "", 10), [("__error__", "boom")], "t-err")
        ),
    ),
    Op("get_tuple, latest", ONE, "T", lambda w: Call("get_tuple", (thread(w, "T"),))),
    Op(
        "get_tuple, by id",
        ONE,
        "T",
        lambda w: Call("get_tuple", (thread(w, "T", "", 1),)),
    ),
    Op(
        "get_tuple, namespace",
        ONE,
        "T",
        lambda w: Call("get_tuple", (thread(w, "T", "child:1"),)),
    ),
    Op("list, thread", ONE, "T", lambda w: Call("list", (thread(w, "T"),))),
    Op(
        "list, thread + namespace",
        ONE,
        "T",
        lambda w: Call("list", (thread(w, "T", "child:1"),)),
    ),
    Op(
        "list, thread, before",
        ONE,
        "T",
        lambda w: Call("list", (thread(w, "T"),), {"before": thread(w, "T", "", 2)}),
    ),
    Op(
        "list, thread, limit",
        ONE,
        "T",
        lambda w: Call("list", (thread(w, "T"),), {"limit": 2}),
    ),
    Op(
        "list, thread, filter",
        ONE,
        "T",
        lambda w: Call("list", (thread(w, "T"),), {"filter": {"user": "alice"}}),
    ),
    Op(
        "list, thread, filter+before+limit",
        ONE,
        "T",
        lambda w: Call(
            "list",
            (thread(w, "T"),),
            {
                "filter": {"source": "loop"},
                "before": thread(w, "T", "", 10),
                "limit": 2,
            },
        ),
    ),
    Op(
        "delta history",
        ONE,
        SEEDS,
        lambda w: Call(
            "get_delta_channel_history",
            kwargs={"config": w.seeds[5], "channels": delta.SEEDED},
        ),
    ),
    Op(
        "delta history, namespace",
        ONE,
        FORK,
        lambda w: Call(
            "get_delta_channel_history",
            kwargs={"config": delta._config(FORK, "child:1"), "channels": ["msgs"]},
        ),
    ),
    Op(
        "graph get_state, delta channel",
        ONE,
        LOOP,
        lambda w: Call("get_state", (delta._run_config(LOOP),)),
        on_graph=True,
    ),
    Op(
        "graph get_state_history, delta",
        ONE,
        LOOP,
        lambda w: Call("get_state_history", (delta._run_config(LOOP),), {"limit": 4}),
        on_graph=True,
    ),
    Op(
        "copy_thread (its reads)",
        SOURCE,
        "T",
        lambda w: Call("copy_thread", (w.threads["T"], w.threads["C"])),
    ),
    Op("list, copied thread", ONE, "C", lambda w: Call("list", (thread(w, "C"),))),
    Op("prune keep_latest", ONE, "P", lambda w: Call("prune", ([w.threads["P"]],))),
    Op(
        "prune delete",
        ONE,
        "Q",
        lambda w: Call("prune", ([w.threads["Q"]],), {"strategy": "delete"}),
    ),
    Op("delete_thread", ONE, "X", lambda w: Call("delete_thread", (w.threads["X"],))),
    Op("list, all threads", MANY, None, lambda w: Call("list", (None,))),
    Op(
        "list, all threads, limit",
        MANY,
        None,
        lambda w: Call("list", (None,), {"limit": 3}),
    ),
    Op(
        "list, all threads, filter",
        MANY,
        None,
        lambda w: Call("list", (None,), {"filter": {"user": "alice"}}),
    ),
    Op(
        "list, all threads, filter+before",
        MANY,
        None,
        lambda w: Call(
            "list",
            (None,),
            {"filter": {"user": "bob"}, "before": thread(w, "T", "", 2)},
        ),
    ),
    Op(
        "delete_for_runs",
        MANY,
        None,
        lambda w: Call("delete_for_runs", (["run-R1", "run-R2"],)),
    ),
    Op(
        "prune keep_latest, two threads",
        MANY,
        None,
        lambda w: Call("prune", ([w.threads["P2"], w.threads["Q2"]],)),
    ),
    Op(
        "prune delete, two threads",
        MANY,
        None,
        lambda w: Call(
            "prune", ([w.threads["M1"], w.threads["M2"]],), {"strategy": "delete"}
        ),
    ),
    Op("list, all threads, at the end", MANY, None, lambda w: Call("list", (None,))),
]

#: Methods that return an iterator (async: an async iterator).
ITERATORS = {"list", "get_state_history"}


def run_call(target: Any, call: Call) -> Any:
    result = getattr(target, call.method)(*call.args, **call.kwargs)
    return list(result) if call.method in ITERATORS else result


async def arun_call(target: Any, call: Call) -> Any:
    method = getattr(target, "a" + call.method)
    if call.method in ITERATORS:
        return [item async for item in method(*call.args, **call.kwargs)]
    return await method(*call.args, **call.kwargs)


def comparable(obj: Any) -> Any:
    """A result with what may differ between two equal databases left out:
    the checkpoints' timestamps, and the loop graph's ids (see ``_view``)."""
    if isinstance(obj, CheckpointTuple):
        return {
            "config": obj.config,
            "checkpoint": {k: v for k, v in obj.checkpoint.items() if k != "ts"},
            "metadata": obj.metadata,
            "parent": obj.parent_config,
            "writes": obj.pending_writes,
        }
    if isinstance(obj, StateSnapshot):
        return delta._view(obj)
    if isinstance(obj, list):
        return [comparable(item) for item in obj]
    return obj


_READ = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|COPY)\b", re.IGNORECASE)


def problems(op: Op, world: World, commands: list[RemoteCommand]) -> list[str]:
    """What is wrong with where ``op``'s ``commands`` ran; nothing if right."""
    shards = world.graph_shards if op.on_graph else world.shards
    seen = routing(commands, shards)
    found = []
    if seen.unknown:
        found.append(f"shards of no table of the schema: {sorted(seen.unknown)}")
    if op.scope == MANY:
        return found
    assert op.role is not None
    group = world.group(op.role)
    if op.scope == SOURCE:
        reads = [
            c for c in commands if _READ.match(c.text) and not _WRITE.search(c.text)
        ]
        read_groups = routing(reads, shards).groups
        if read_groups != {group}:
            found.append(f"reads on groups {sorted(read_groups)}, not {group} alone")
        return found
    if seen.groups != {group}:
        found.append(f"shard groups {sorted(seen.groups)}, not {group} alone")
    if seen.reference:
        found.append("touched the reference table")
    if seen.two_phase:
        found.append("committed in two phases")
    if len(seen.ports) != 1:
        found.append(f"sent commands to nodes {sorted(seen.ports)}")
    if seen.other:
        found.append(f"commands naming no shard: {seen.other[:2]}")
    return found


@dataclass
class Observed:
    """Where one operation ran, and what was wrong with it."""

    op: Op
    seen: Routing
    transactions: int
    problems: list[str]


def observe(
    op: Op, world: World, commands: list[RemoteCommand], error: Exception | None
) -> Observed:
    shards = world.graph_shards if op.on_graph else world.shards
    found = problems(op, world, commands)
    if error is not None:
        found.append(f"raised {type(error).__name__}: {error}".splitlines()[0])
    return Observed(
        op, routing(commands, shards), len(transactions(commands, shards)), found
    )


# What the sync tests observed, for the table the last test prints.
OBSERVED: dict[str, Observed] = {}


def table(rows: dict[str, Observed], title: str) -> str:
    """The routing table: per operation, the shard groups and nodes it
    touched, the transactions the workers ran for it (each committed on its
    own unless 2PC says otherwise), and the queries sent."""
    lines = [
        title,
        f"{'operation':<34} {'scope':<12} {'groups':<8} {'nodes':>5} "
        f"{'txns':>4} {'2PC':<4} {'queries':>7}  problems",
    ]
    for label, row in rows.items():
        seen = row.seen
        groups = ",".join(map(str, sorted(seen.groups))) or "-"
        if seen.reference:
            groups += "+ref"
        lines.append(
            f"{label:<34} {row.op.scope:<12} {groups:<8} {len(seen.ports):>5} "
            f"{row.transactions:>4} {'yes' if seen.two_phase else 'no':<4} "
            f"{len(seen.queries):>7}  " + ("; ".join(row.problems) or "-")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The sync saver, one connection: one test per operation


@dataclass
class Live:
    world: World
    citus: PostgresSaver
    plain: PostgresSaver
    citus_graph: Any
    plain_graph: Any
    log: Any
    graph_log: Any


@pytest.fixture(scope="module")
def live(citus_uri: str) -> Iterator[Live]:
    world = build_world(citus_uri)
    with (
        Connection.connect(citus_uri, **RECOMMENDED) as conn,
        Connection.connect(citus_uri, **RECOMMENDED) as graph_conn,
        Connection.connect(citus_uri, **RECOMMENDED) as plain_conn,
        Connection.connect(citus_uri, **RECOMMENDED) as plain_graph_conn,
    ):
        graph_saver = PostgresSaver(graph_conn, schema=world.graph_schema)
        plain_graph_saver = PostgresSaver(plain_graph_conn, schema=world.graph_plain)
        yield Live(
            world,
            PostgresSaver(conn, schema=world.schema),
            PostgresSaver(plain_conn, schema=world.plain),
            delta._loop_builder().compile(checkpointer=graph_saver),
            delta._loop_builder().compile(checkpointer=plain_graph_saver),
            watch(conn),
            watch(graph_conn),
        )


@pytest.mark.parametrize("op", OPS, ids=[op.label for op in OPS])
def test_operation_routing(live: Live, op: Op) -> None:
    citus_target = live.citus_graph if op.on_graph else live.citus
    plain_target = live.plain_graph if op.on_graph else live.plain
    log = live.graph_log if op.on_graph else live.log
    call = op.call(live.world)
    log.take()
    error: Exception | None = None
    try:
        got = run_call(citus_target, call)
    except Exception as exc:  # run on plain tables too, to keep them alike
        error = exc
    commands = log.take()
    wanted = run_call(plain_target, call)
    OBSERVED[op.label] = observed = observe(op, live.world, commands, error)
    if error is not None:
        raise error
    found = observed.problems
    assert not found, "\n".join([*found, *(c.text[:300] for c in commands)])
    assert comparable(got) == comparable(wanted)


def dump_tables(uri: str, schema: str) -> dict[str, list[Any]]:
    """Every row of ``schema``'s saver tables (checkpoints without their
    timestamp), in key order."""
    queries = {
        "checkpoints": "SELECT thread_id, checkpoint_ns, checkpoint_id, "
        "parent_checkpoint_id, checkpoint - 'ts', metadata FROM {}.checkpoints "
        "ORDER BY 1, 2, 3",
        "checkpoint_blobs": "SELECT * FROM {}.checkpoint_blobs ORDER BY 1, 2, 3, 4",
        "checkpoint_writes": "SELECT * FROM {}.checkpoint_writes "
        "ORDER BY 1, 2, 3, 4, 5",
    }
    with psycopg.connect(uri, autocommit=True) as conn:
        return {
            table: conn.execute(
                sql.SQL(query).format(sql.Identifier(schema))  # type: ignore[arg-type]
            ).fetchall()
            for table, query in queries.items()
        }


def test_tables_hold_what_plain_postgres_holds(live: Live) -> None:
    """After the operations (as many as ran), both copies hold the same rows."""
    world = live.world
    assert dump_tables(world.uri, world.schema) == dump_tables(world.uri, world.plain)


# --------------------------------------------------------------------------
# The async saver: every operation again, in one test


@asynccontextmanager
async def async_connections(
    uri: str, count: int
) -> AsyncIterator[list[AsyncConnection[Any]]]:
    conns = [await AsyncConnection.connect(uri, **RECOMMENDED) for _ in range(count)]
    try:
        yield conns
    finally:
        for conn in conns:
            await conn.close()


async def test_async_operation_routing(citus_uri: str) -> None:
    world = build_world(citus_uri)
    async with async_connections(citus_uri, 4) as (
        conn,
        graph_conn,
        plain_conn,
        pg_conn,
    ):
        log, graph_log = await awatch(conn), await awatch(graph_conn)
        citus_saver = AsyncPostgresSaver(conn, schema=world.schema)
        plain_saver = AsyncPostgresSaver(plain_conn, schema=world.plain)
        citus_graph = delta._loop_builder().compile(
            checkpointer=AsyncPostgresSaver(graph_conn, schema=world.graph_schema)
        )
        plain_graph = delta._loop_builder().compile(
            checkpointer=AsyncPostgresSaver(pg_conn, schema=world.graph_plain)
        )
        observed: dict[str, Observed] = {}
        failures = []
        for op in OPS:
            watched = graph_log if op.on_graph else log
            call = op.call(world)
            watched.take()
            error: Exception | None = None
            try:
                got = await arun_call(citus_graph if op.on_graph else citus_saver, call)
            except Exception as exc:  # run on plain tables too, to keep them alike
                error = exc
            commands = watched.take()
            wanted = await arun_call(plain_graph if op.on_graph else plain_saver, call)
            row = observed[op.label] = observe(op, world, commands, error)
            if error is None and comparable(got) != comparable(wanted):
                row.problems.append("result differs from plain PostgreSQL's")
            failures += [f"{op.label}: {problem}" for problem in row.problems]
    print("\n" + table(observed, "async saver, one connection"))
    assert dump_tables(world.uri, world.schema) == dump_tables(world.uri, world.plain)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------
# The observer itself


def test_the_observer_tells_one_shard_from_many_and_sees_two_phase_commits(
    citus_uri: str,
) -> None:
    """What the routing tests rely on, checked against Citus's own plans: a
    query on one thread is one task, on one shard group; one on every
    thread is a task per shard; a change to several shards commits in two
    phases."""
    schema = new_schema_name("lgcp_r")
    set_up(citus_uri, schema, distributed=True)
    shards = shard_map(citus_uri, schema)
    by_group = threads_in_groups(citus_uri, schema, "obs")
    table_name = sql.Identifier(schema, "checkpoints")
    with PostgresSaver.from_conn_string(citus_uri, schema=schema) as saver:
        for ids in by_group.values():
            delta.Mirror(saver).put(delta._config(ids[0]), 0, {}, {})
    with Connection.connect(citus_uri, autocommit=True) as conn:
        log = watch(conn)

        def tasks(query: sql.Composable, *params: Any) -> int:
            plan = conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall()
            (line,) = [row[0] for row in plan if "Task Count:" in row[0]]
            return int(line.split(":")[1])

        one = sql.SQL("SELECT * FROM {} WHERE thread_id = %s").format(table_name)
        assert tasks(one, by_group[2][0]) == 1
        log.take()
        conn.execute(one, (by_group[2][0],))
        seen = routing(log.take(), shards)
        assert (seen.groups, seen.two_phase, len(seen.ports)) == ({2}, False, 1)

        every = sql.SQL("SELECT count(*) FROM {}").format(table_name)
        assert tasks(every) == SHARD_COUNT
        log.take()
        assert conn.execute(every).fetchone() == (SHARD_COUNT,)
        seen = routing(log.take(), shards)
        assert seen.groups == set(range(SHARD_COUNT)) and len(seen.ports) == 2

        change = sql.SQL("UPDATE {} SET type = type").format(table_name)
        log.take()
        conn.execute(change)
        commands = log.take()
        seen = routing(commands, shards)
        assert seen.two_phase and seen.groups == set(range(SHARD_COUNT))
        (together,) = transactions(commands, shards)
        assert together.groups == set(range(SHARD_COUNT))


# --------------------------------------------------------------------------
# Writes queued for one shared connection


#: Thread ids per shard group that write at once.
WRITERS_PER_GROUP = 2
#: Long enough for every writer to start and queue its write.
QUEUE_UP_SECONDS = 0.5


def put_args(thread_id: str, i: int, parent: Any = None) -> tuple[Any, ...]:
    versions = {"messages": delta._version(i), "n": delta._version(i)}
    values = {"messages": [f"{thread_id} {i}"] * 3, "n": i}
    config = parent or delta._config(thread_id)
    return config, delta._checkpoint(i, values, versions), {"step": i}, versions


def queued_writes(uri: str) -> tuple[str, list[str], dict[int, Shard]]:
    """A distributed schema, thread ids in every shard group, its shards."""
    schema = new_schema_name("lgcp_g")
    set_up(uri, schema, distributed=True)
    by_group = threads_in_groups(uri, schema, "gw", per_group=WRITERS_PER_GROUP)
    ids = [thread_id for group in by_group.values() for thread_id in group]
    return schema, ids, shard_map(uri, schema)


def check_queued_writes(
    commands: list[RemoteCommand], shards: dict[int, Shard], writes: int
) -> None:
    """The writes of different threads never shared a transaction; those of
    one thread did (else nothing was grouped, and the test proved little)."""
    done = transactions(commands, shards)
    spread = [
        f"groups {sorted(t.groups)}, {'2PC' if t.two_phase else '1PC'}"
        for t in done
        if len(t.groups) != 1
    ]
    assert not spread, f"transactions over several shard groups: {spread}"
    seen = routing(commands, shards)
    assert not seen.two_phase, "a group of writes committed in two phases"
    assert len(done) < writes, "no two writes of a thread shared a transaction"
    print(
        f"\n{writes} queued writes of {len(seen.groups)} shard groups ran as "
        f"{len(done)} transactions, each on one shard group, none in two phases"
    )


def check_stored(saver: PostgresSaver, ids: list[str]) -> None:
    for thread_id in ids:
        latest = saver.get_tuple(delta._config(thread_id))
        assert latest is not None
        assert latest.checkpoint["channel_values"]["messages"] == [f"{thread_id} 2"] * 3
        first = saver.get_tuple(delta._config(thread_id, "", delta._cid(1)))
        assert first is not None
        assert sorted(first.pending_writes) == [
            ("task-a", "messages", [f"{thread_id} a"]),
            ("task-b", "messages", [f"{thread_id} b"]),
        ]


def test_queued_writes_of_different_threads_each_stay_on_one_shard(
    citus_uri: str,
) -> None:
    schema, ids, shards = queued_writes(citus_uri)
    with Connection.connect(citus_uri, **RECOMMENDED) as conn:
        saver = PostgresSaver(conn, schema=schema)
        first = {t: saver.put(*put_args(t, 1)) for t in ids}
        log = watch(conn)
        calls: list[Callable[[], Any]] = []
        for t in ids:
            calls += [
                partial(saver.put, *put_args(t, 2, first[t])),
                partial(
                    saver.put_writes, first[t], [("messages", [f"{t} a"])], "task-a"
                ),
                partial(
                    saver.put_writes, first[t], [("messages", [f"{t} b"])], "task-b"
                ),
            ]
        errors: list[BaseException] = []

        def run(call: Callable[[], Any]) -> None:
            try:
                call()
            except BaseException as exc:
                errors.append(exc)

        writers = [threading.Thread(target=run, args=(call,)) for call in calls]
        with saver.lock:  # the connection is busy while the writers queue
            for writer in writers:
                writer.start()
            time.sleep(QUEUE_UP_SECONDS)
        for writer in writers:
            writer.join(30)
        assert not any(writer.is_alive() for writer in writers)
        assert not errors, errors
        commands = log.take()
        check_queued_writes(commands, shards, len(calls))
        check_stored(saver, ids)


async def test_queued_async_writes_of_different_threads_each_stay_on_one_shard(
    citus_uri: str,
) -> None:
    schema, ids, shards = queued_writes(citus_uri)
    async with await AsyncConnection.connect(citus_uri, **RECOMMENDED) as conn:
        saver = AsyncPostgresSaver(conn, schema=schema)
        first = {t: await saver.aput(*put_args(t, 1)) for t in ids}
        log = await awatch(conn)
        async with saver.lock:
            tasks = []
            for t in ids:
                tasks += [
                    asyncio.create_task(saver.aput(*put_args(t, 2, first[t]))),
                    asyncio.create_task(
                        saver.aput_writes(
                            first[t], [("messages", [f"{t} a"])], "task-a"
                        )
                    ),
                    asyncio.create_task(
                        saver.aput_writes(
                            first[t], [("messages", [f"{t} b"])], "task-b"
                        )
                    ),
                ]
            await asyncio.sleep(QUEUE_UP_SECONDS)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        commands = log.take()
    check_queued_writes(commands, shards, len(tasks))
    with PostgresSaver.from_conn_string(citus_uri, schema=schema) as reader:
        check_stored(reader, ids)


# --------------------------------------------------------------------------
# The table


def test_print_routing_table() -> None:
    """Prints (``-s``) where each operation of the sync tests above ran."""
    if not OBSERVED:
        pytest.skip("no operation ran in this session")
    print(
        "\n"
        + table(
            OBSERVED,
            f"sync saver, one connection; {SHARD_COUNT} shard groups on 2 workers",
        )
    )


# --------------------------------------------------------------------------
# Retention sweeps


def _age(uri: str, schema: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.checkpoints SET checkpoint = jsonb_set(checkpoint, "
                "'{{ts}}', to_jsonb('2020-01-01T00:00:00+00:00'::text))"
            ).format(sql.Identifier(schema))
        )


@pytest.mark.parametrize(
    "policy",
    [
        {"strategy": "keep_last", "keep": 2},
        {"strategy": "keep_latest", "default_ttl": 60},
        {"strategy": "delete", "default_ttl": 60, "sweep_limit": 3},
    ],
    ids=["keep_last", "keep_latest ttl", "delete ttl"],
)
def test_a_sweep_removes_each_thread_on_its_shard(
    citus_uri: str, policy: dict[str, Any]
) -> None:
    """A sweep finds its threads across every shard, then each thread's
    statement runs on that thread's shard group alone; what it removes is
    what it removes from plain tables."""
    schema, plain = new_schema_name("lgcp_s"), new_schema_name("lgcp_s")
    set_up(citus_uri, schema, distributed=True)
    set_up(citus_uri, plain, distributed=False)
    shards = shard_map(citus_uri, schema)
    by_group = threads_in_groups(citus_uri, schema, "swept", per_group=2)
    threads = [t for group in by_group.values() for t in group]
    with (
        PostgresSaver.from_conn_string(citus_uri, schema=schema) as distributed,
        PostgresSaver.from_conn_string(citus_uri, schema=plain) as local,
    ):
        for thread_id in threads:
            fill([distributed, local], thread_id, f"run-{thread_id}")
    _age(citus_uri, schema)
    _age(citus_uri, plain)
    with (
        Connection.connect(citus_uri, **RECOMMENDED) as conn,
        Connection.connect(citus_uri, **RECOMMENDED) as plain_conn,
    ):
        log = watch(conn)
        log.take()
        removed = PostgresSaver(conn, schema=schema, retention=policy).sweep()
        commands = log.take()
        wanted = PostgresSaver(plain_conn, schema=plain, retention=policy).sweep()
    assert removed == wanted and removed.threads == len(threads)
    deletes = [c for c in commands if re.search(r"\bDELETE\b", c.text, re.I)]
    assert len(deletes) >= len(threads)
    for command in deletes:
        assert len(routing([command], shards).groups) == 1, command.text[:300]
    assert dump_tables(citus_uri, schema) == dump_tables(citus_uri, plain)
