"""DeltaChannel support: real delta graphs, pruning them, and the delta history.

Three oracles stand behind every comparison here: ``InMemorySaver`` (its own
implementation of the delta walk), ``BaseCheckpointSaver``'s default walk
(``get_tuple`` per ancestor, run on our saver), and facts about the data that
the test states itself.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    empty_checkpoint,
    writes_sort_key,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, StateGraph
from psycopg import AsyncConnection, AsyncCursor, Connection, Cursor, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tests.conftest import Databases, database_uri
from tests.dbcheck import orphans
from tests.savers import ASYNC_KINDS, SYNC_KINDS

# -- helpers -------------------------------------------------------------------


def _cid(i: int) -> str:
    """A checkpoint id that sorts by ``i``, shaped like LangGraph's uuid6 ids."""
    return f"00000000-0000-6000-8000-{i:012d}"


def _version(i: int) -> str:
    return f"{i:032}.0000000000000000"


def _config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpoint(i: int, values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = _cid(i)
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    return checkpoint


class Mirror:
    """Sends every ``put``/``put_writes`` to several savers at once."""

    def __init__(self, *savers: BaseCheckpointSaver) -> None:
        self.savers = savers

    def put(
        self,
        parent: Any,
        i: int,
        values: dict[str, Any],
        versions: dict[str, str],
    ) -> Any:
        configs = [
            s.put(
                parent,
                _checkpoint(i, values, versions),
                {"source": "loop", "step": i},
                dict(versions),
            )
            for s in self.savers
        ]
        return configs[0]

    def put_writes(
        self, config: Any, writes: list[tuple[str, Any]], task_id: str, path: str
    ) -> None:
        for s in self.savers:
            s.put_writes(config, writes, task_id, path)


def _assert_same_history(ours: Any, *oracles: Any) -> None:
    for oracle in oracles:
        assert dict(ours) == dict(oracle)
        for channel, entry in ours.items():
            if "seed" in entry:
                # _DeltaSnapshot is a tuple: equality alone would not tell them
                # apart from a plain one-element tuple.
                assert type(entry["seed"]) is type(oracle[channel]["seed"])


def _counts(uri: str, thread_id: str) -> dict[str, int]:
    with psycopg.connect(uri) as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE thread_id = %s").format(
                    sql.Identifier(table)
                ),
                (thread_id,),
            ).fetchone()[0]
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        }


# -- 1. a real delta graph -----------------------------------------------------


def _extend(state: list[Any], writes: Sequence[list[Any]]) -> list[Any]:
    """List-append reducer over a batch of writes (batching-invariant)."""
    out = list(state)
    for write in writes:
        out.extend(write)
    return out


class LoopState(TypedDict):
    messages: Annotated[list, DeltaChannel(_extend, snapshot_frequency=7)]
    count: int
    limit: int


def _tick(state: LoopState) -> dict[str, Any]:
    return {"messages": [f"m{state['count']}"], "count": state["count"] + 1}


def _again(state: LoopState) -> str:
    return "tick" if state["count"] < state["limit"] else END


def _loop_builder() -> StateGraph:
    builder = StateGraph(LoopState)
    builder.add_node("tick", _tick)
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", _again)
    return builder


# Steps 0..299 run the node: 300 supersteps after the input checkpoint. With
# this limit the newest checkpoint is not a snapshot (one is every 7 updates),
# so keep_latest has a chain of ancestors to keep.
LIMIT = 299
MORE = 12


def _run_config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 2000}


def _view(snapshot: Any) -> dict[str, Any]:
    return {
        "values": snapshot.values,
        "next": snapshot.next,
        "metadata": snapshot.metadata,
        "tasks": [task.name for task in snapshot.tasks],
    }


@dataclass
class Reference:
    """What InMemorySaver shows for the loop script."""

    history: list[dict[str, Any]]
    state: dict[str, Any]
    kept: int
    continued_state: dict[str, Any]
    continued_history: list[dict[str, Any]]
    continued_values: dict[str, Any]
    side_history: list[dict[str, Any]]


def _reference() -> Reference:
    memory = InMemorySaver()
    graph = _loop_builder().compile(checkpointer=memory)
    config = _run_config("loop")
    graph.invoke({"messages": ["hello"], "count": 0, "limit": LIMIT}, config)
    side = _run_config("side")
    graph.invoke({"messages": [], "count": 0, "limit": 20}, side)
    history = [_view(s) for s in graph.get_state_history(config)]
    state = _view(graph.get_state(config))
    # keep_latest keeps the newest checkpoint and its ancestors back to the
    # nearest one that stores the delta channel (a snapshot).
    tuples = list(memory.list(config))
    kept = 1 + next(
        i
        for i, t in enumerate(tuples)
        if isinstance(t.checkpoint["channel_values"].get("messages"), _DeltaSnapshot)
    )
    continued_values = graph.invoke(
        {"messages": ["more"], "limit": LIMIT + MORE}, config
    )
    return Reference(
        history=history,
        state=state,
        kept=kept,
        continued_state=_view(graph.get_state(config)),
        continued_history=[_view(s) for s in graph.get_state_history(config)],
        continued_values=continued_values,
        side_history=[_view(s) for s in graph.get_state_history(side)],
    )


@functools.cache
def reference() -> Reference:
    return _reference()


def _check_delta_mode_is_on(uri: str, ref: Reference) -> None:
    with psycopg.connect(uri) as conn:
        total, with_counters, holding = conn.execute(
            """
            SELECT count(*),
                count(*) FILTER (
                    WHERE metadata ? 'counters_since_delta_snapshot'),
                count(*) FILTER (
                    WHERE checkpoint -> 'channel_values' ? 'messages')
            FROM checkpoints WHERE thread_id = 'loop'
            """
        ).fetchone()
    assert total == len(ref.history) == LIMIT + 2
    assert with_counters > 250
    # Most checkpoints do not store the channel: its value is rebuilt from writes.
    assert 0 < holding < total // 5
    assert ref.kept > 1, "the scenario needs a newest checkpoint that is no snapshot"


def _check_pruned_rows(uri: str, ref: Reference, side_counts: dict[str, int]) -> None:
    counts = _counts(uri, "loop")
    assert counts["checkpoints"] == ref.kept
    assert counts["checkpoint_writes"] > 0  # the kept ancestors' writes
    assert orphans(uri) == (0, 0)
    assert _counts(uri, "side") == side_counts


def _check_pruned_history(history: list[dict[str, Any]], ref: Reference) -> None:
    assert 1 <= len(history) < len(ref.history)
    assert len(history) == ref.kept
    assert history == ref.history[: len(history)]


def test_delta_graph_matches_in_memory_and_survives_prune(
    saver: PostgresSaver, db_uri: str
) -> None:
    ref = reference()
    graph = _loop_builder().compile(checkpointer=saver)
    config = _run_config("loop")
    graph.invoke({"messages": ["hello"], "count": 0, "limit": LIMIT}, config)
    side = _run_config("side")
    graph.invoke({"messages": [], "count": 0, "limit": 20}, side)
    _check_delta_mode_is_on(db_uri, ref)

    assert _view(graph.get_state(config)) == ref.state
    assert [_view(s) for s in graph.get_state_history(config)] == ref.history

    side_counts = _counts(db_uri, "side")
    saver.prune(["loop"], strategy="keep_latest")
    _check_pruned_rows(db_uri, ref, side_counts)
    assert _view(graph.get_state(config)) == ref.state
    _check_pruned_history([_view(s) for s in graph.get_state_history(config)], ref)
    assert [_view(s) for s in graph.get_state_history(side)] == ref.side_history

    values = graph.invoke({"messages": ["more"], "limit": LIMIT + MORE}, config)
    assert values == ref.continued_values
    assert _view(graph.get_state(config)) == ref.continued_state
    continued = [_view(s) for s in graph.get_state_history(config)]
    assert len(continued) == ref.kept + len(ref.continued_history) - len(ref.history)
    assert continued == ref.continued_history[: len(continued)]


async def test_delta_graph_matches_in_memory_and_survives_prune_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    ref = reference()
    graph = _loop_builder().compile(checkpointer=asaver)
    config = _run_config("loop")
    await graph.ainvoke({"messages": ["hello"], "count": 0, "limit": LIMIT}, config)
    side = _run_config("side")
    await graph.ainvoke({"messages": [], "count": 0, "limit": 20}, side)
    _check_delta_mode_is_on(db_uri, ref)

    assert _view(await graph.aget_state(config)) == ref.state
    assert [_view(s) async for s in graph.aget_state_history(config)] == ref.history

    side_counts = _counts(db_uri, "side")
    await asaver.aprune(["loop"], strategy="keep_latest")
    _check_pruned_rows(db_uri, ref, side_counts)
    assert _view(await graph.aget_state(config)) == ref.state
    _check_pruned_history(
        [_view(s) async for s in graph.aget_state_history(config)], ref
    )
    side_history = [_view(s) async for s in graph.aget_state_history(side)]
    assert side_history == ref.side_history

    values = await graph.ainvoke({"messages": ["more"], "limit": LIMIT + MORE}, config)
    assert values == ref.continued_values
    assert _view(await graph.aget_state(config)) == ref.continued_state
    continued = [_view(s) async for s in graph.aget_state_history(config)]
    assert len(continued) == ref.kept + len(ref.continued_history) - len(ref.history)
    assert continued == ref.continued_history[: len(continued)]


# -- 2. get_delta_channel_history ----------------------------------------------

# Statements executed through any cursor of a counting connection.
STATEMENTS: list[str] = []


class CountingCursor(Cursor):
    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(str(query))
        return super().execute(query, *args, **kwargs)

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(str(query))
        return super().executemany(query, *args, **kwargs)


class CountingConnection(Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CountingCursor


class AsyncCountingCursor(AsyncCursor):
    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(str(query))
        return await super().execute(query, *args, **kwargs)

    async def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.append(str(query))
        return await super().executemany(query, *args, **kwargs)


class AsyncCountingConnection(AsyncConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = AsyncCountingCursor


_RECOMMENDED = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@contextmanager
def counting_saver(kind: str, uri: str) -> Iterator[PostgresSaver]:
    """Like ``tests.savers.sync_saver``, on connections that count statements."""
    if kind in ("conn", "pipeline"):
        with CountingConnection.connect(uri, **_RECOMMENDED) as conn:
            if kind == "conn":
                yield PostgresSaver(conn)
            else:
                with conn.pipeline() as pipe:
                    yield PostgresSaver(conn, pipe)
    else:
        kwargs = _RECOMMENDED if kind == "pool" else {}
        with ConnectionPool(
            uri,
            min_size=1,
            max_size=4,
            kwargs=kwargs,
            connection_class=CountingConnection,
        ) as pool:
            yield PostgresSaver(pool)


@asynccontextmanager
async def async_counting_saver(kind: str, uri: str) -> AsyncIterator[Any]:
    """Like ``tests.savers.async_saver``, on connections that count statements."""
    if kind in ("aconn", "apipeline"):
        conn = await AsyncCountingConnection.connect(uri, **_RECOMMENDED)
        async with conn:
            if kind == "aconn":
                yield AsyncPostgresSaver(conn)
            else:
                async with conn.pipeline() as pipe:
                    yield AsyncPostgresSaver(conn, pipe)
    else:
        kwargs = _RECOMMENDED if kind == "apool" else {}
        async with AsyncConnectionPool(
            uri,
            min_size=1,
            max_size=4,
            kwargs=kwargs,
            connection_class=AsyncCountingConnection,
            open=False,
        ) as pool:
            yield AsyncPostgresSaver(pool)


DEPTH = 5000
MIDDLE = 2500
CHANNELS = ["msgs", "other", "never_written"]


def _other_value(i: int) -> Any:
    """The value of ``other`` stored at checkpoint ``i``, if any."""
    if i % 1000 == 0:
        return f"other@{i}"  # inline in the checkpoint JSON
    if i % 1000 == 500:
        return {"at": i}  # a blob
    return None


def _build_deep(mirror: Mirror) -> None:
    """One thread, ``DEPTH`` checkpoints deep; ``msgs`` is stored only at the root.

    Every checkpoint bumps both channels' versions and gets writes to ``msgs``,
    ``other`` and an unrelated channel; every 100th also gets writes of a
    second task whose ``task_path`` sorts first but whose ``task_id`` and
    insertion order come last.
    """
    parent = _config("deep")
    for i in range(DEPTH):
        values: dict[str, Any] = {}
        if i == 0:
            values["msgs"] = _DeltaSnapshot(["root"])
        if (other := _other_value(i)) is not None:
            values["other"] = other
        versions = {"msgs": _version(i + 1), "other": _version(i + 1)}
        config = mirror.put(parent, i, values, versions)
        mirror.put_writes(
            config,
            [("msgs", [f"m{i}"]), ("other", i), ("noise", i)],
            f"task-{i:05d}-b",
            "~b",
        )
        if i % 100 == 0:
            mirror.put_writes(
                config, [("msgs", [f"early{i}"])], f"task-{i:05d}-z", "~a"
            )
        parent = config


@dataclass
class Deep:
    uri: str
    targets: dict[str, Any]
    base: dict[str, Any]
    memory: dict[str, Any]


@pytest.fixture(scope="module")
def deep(server_uri: str, template_db: str) -> Iterator[Deep]:
    """A database holding the deep thread, and the oracles' answers for it."""
    databases = Databases(server_uri, template_db)
    uri = databases.create()
    try:
        memory = InMemorySaver()
        with PostgresSaver.from_conn_string(uri) as saver:
            # Many small commits: do not wait for each one's WAL flush.
            saver.conn.execute("SET synchronous_commit = off")
            _build_deep(Mirror(saver, memory))
            targets = {
                "latest": _config("deep"),
                "middle": _config("deep", checkpoint_id=_cid(MIDDLE)),
            }
            base = {
                name: BaseCheckpointSaver.get_delta_channel_history(
                    saver, config=target, channels=CHANNELS
                )
                for name, target in targets.items()
            }
        in_memory = {
            name: memory.get_delta_channel_history(config=target, channels=CHANNELS)
            for name, target in targets.items()
        }
        yield Deep(uri, targets, base, in_memory)
    finally:
        databases.drop_all()


def _expected_writes(first: int, end: int, channel: str) -> list[Any]:
    """The ``channel`` writes stored at checkpoints ``first..end-1``, in order."""
    writes: list[Any] = []
    for i in range(first, end):
        if channel == "msgs":
            if i % 100 == 0:
                writes.append((f"task-{i:05d}-z", "msgs", [f"early{i}"]))
            writes.append((f"task-{i:05d}-b", "msgs", [f"m{i}"]))
        else:
            writes.append((f"task-{i:05d}-b", channel, i))
    return writes


def test_deep_history_oracles_agree_with_the_data(deep: Deep) -> None:
    """The oracles themselves give what the data says (so they can catch bugs)."""
    for name, end in (("latest", DEPTH - 1), ("middle", MIDDLE)):
        for oracle in (deep.base[name], deep.memory[name]):
            assert oracle["msgs"]["seed"] == _DeltaSnapshot(["root"])
            assert oracle["msgs"]["writes"] == _expected_writes(0, end, "msgs")
            other_seed = max(i for i in range(end) if _other_value(i) is not None)
            assert oracle["other"]["seed"] == _other_value(other_seed)
            assert oracle["other"]["writes"] == _expected_writes(
                other_seed, end, "other"
            )
            assert oracle["never_written"] == {"writes": []}


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_deep_history_is_one_statement_and_matches(deep: Deep, kind: str) -> None:
    with counting_saver(kind, deep.uri) as saver:
        for name, target in deep.targets.items():
            STATEMENTS.clear()
            ours = saver.get_delta_channel_history(config=target, channels=CHANNELS)
            assert len(STATEMENTS) == 1, STATEMENTS
            _assert_same_history(ours, deep.base[name], deep.memory[name])
        # The counter does see the default walk's statements.
        STATEMENTS.clear()
        BaseCheckpointSaver.get_delta_channel_history(
            saver, config=deep.targets["middle"], channels=["other"]
        )
        assert len(STATEMENTS) == 1 + MIDDLE - 2000


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_deep_history_is_one_statement_and_matches_async(
    deep: Deep, kind: str
) -> None:
    async with async_counting_saver(kind, deep.uri) as saver:
        for name, target in deep.targets.items():
            STATEMENTS.clear()
            ours = await saver.aget_delta_channel_history(
                config=target, channels=CHANNELS
            )
            assert len(STATEMENTS) == 1, STATEMENTS
            _assert_same_history(ours, deep.base[name], deep.memory[name])
        STATEMENTS.clear()
        await BaseCheckpointSaver.aget_delta_channel_history(
            saver, config=deep.targets["middle"], channels=["other"]
        )
        assert len(STATEMENTS) == 1 + MIDDLE - 2000


async def test_deep_history_default_async_walk_agrees(deep: Deep) -> None:
    async with AsyncPostgresSaver.from_conn_string(deep.uri) as saver:
        walked = await BaseCheckpointSaver.aget_delta_channel_history(
            saver, config=deep.targets["middle"], channels=CHANNELS
        )
        ours = await saver.aget_delta_channel_history(
            config=deep.targets["middle"], channels=CHANNELS
        )
    _assert_same_history(ours, walked, deep.base["middle"])


# -- shallow cases -------------------------------------------------------------

SEEDED = ["msgs", "c_str", "c_int", "c_none", "c_false", "c_true", "c_blob", "absent"]


def _build_seeds(mirror: Mirror) -> list[Any]:
    """A short thread whose channels find their seeds at different ancestors.

    Root: inline primitives (str, int, None, False, True) and a plain,
    non-snapshot list blob. Checkpoint 2: a ``msgs`` snapshot. Checkpoint 3:
    a newer inline ``c_str``. Every checkpoint bumps every channel's version
    and writes to each of them.
    """
    root_values = {
        "msgs": ["plain", "list"],
        "c_str": "root-str",
        "c_int": 0,
        "c_none": None,
        "c_false": False,
        "c_true": True,
        "c_blob": [b"bytes", 1.5],
    }
    later: dict[int, dict[str, Any]] = {
        2: {"msgs": _DeltaSnapshot(["snap"])},
        3: {"c_str": "newer-str"},
    }
    parent = _config("seeds")
    configs = []
    for i in range(6):
        values = root_values if i == 0 else later.get(i, {})
        versions = {ch: _version(i + 1) for ch in SEEDED if ch != "absent"}
        config = mirror.put(parent, i, values, versions)
        mirror.put_writes(
            config, [(ch, f"{ch}-w{i}") for ch in SEEDED], f"task-{i}", "~n"
        )
        configs.append(config)
        parent = config
    return configs


def _build_task_order(mirror: Mirror, paths: dict[str, str]) -> Any:
    """Two checkpoints; the first has writes of several tasks, inserted in an
    order that is neither their ``task_path`` nor their ``task_id`` order."""
    root = mirror.put(_config("tasks"), 0, {"msgs": _DeltaSnapshot([])}, {"msgs": "1"})
    for task_id, path in paths.items():
        mirror.put_writes(
            root,
            [("msgs", [f"{task_id}/0"]), ("msgs", [f"{task_id}/1"])],
            task_id,
            path,
        )
    return mirror.put(root, 1, {}, {"msgs": "2"})


TASK_PATHS = {
    "t-c": "~b",
    "t-a": "~c",
    "t-b": "",
    "t-d": "~b",
    "t-0": "~c",
}


def _task_order(paths: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    keyed = []
    for task_id, path in paths.items():
        for idx in (0, 1):
            keyed.append((writes_sort_key(path, task_id, idx), task_id, idx))
    return [(t, "msgs", [f"{t}/{i}"]) for _, t, i in sorted(keyed)]


def _build_fork(mirror: Mirror) -> dict[str, Any]:
    """root (snapshot) -> a -> b1 -> c1, and a -> b2 -> c2 forked later.

    A decoy chain in namespace ``child:1`` reuses the same checkpoint ids.
    """
    made: dict[str, Any] = {}
    for ns in ("child:1", ""):
        tag = ns or "root"
        v = {"msgs": "1"}
        root = mirror.put(_config("fork", ns), 0, {"msgs": _DeltaSnapshot([tag])}, v)
        mirror.put_writes(root, [("msgs", [f"{tag}:root"])], "t0", "~x")
        a = mirror.put(root, 1, {}, {"msgs": "2"})
        mirror.put_writes(a, [("msgs", [f"{tag}:a"])], "t1", "~x")
        b1 = mirror.put(a, 2, {}, {"msgs": "3"})
        mirror.put_writes(b1, [("msgs", [f"{tag}:b1"])], "t2", "~x")
        c1 = mirror.put(b1, 3, {}, {"msgs": "4"})
        b2 = mirror.put(a, 4, {}, {"msgs": "3.5"})
        mirror.put_writes(b2, [("msgs", [f"{tag}:b2"])], "t4", "~x")
        c2 = mirror.put(b2, 5, {}, {"msgs": "4.5"})
        made[tag] = {"c1": c1, "c2": c2}
    return made["root"]


def _shallow_expectations(
    seeds: list[Any], fork: dict[str, Any]
) -> list[tuple[Any, list[str], dict[str, Any]]]:
    """(target, channels, expected result) for the shallow threads."""

    def w(ch: str, first: int, end: int) -> list[Any]:
        return [(f"task-{i}", ch, f"{ch}-w{i}") for i in range(first, end)]

    on_the_fork = {
        "msgs": {
            "seed": _DeltaSnapshot(["root"]),
            "writes": [
                ("t0", "msgs", ["root:root"]),
                ("t1", "msgs", ["root:a"]),
                ("t4", "msgs", ["root:b2"]),
            ],
        }
    }
    target = seeds[5]  # walks 4, 3, 2, 1, 0
    return [
        (
            target,
            SEEDED,
            {
                "msgs": {"seed": _DeltaSnapshot(["snap"]), "writes": w("msgs", 2, 5)},
                "c_str": {"seed": "newer-str", "writes": w("c_str", 3, 5)},
                "c_int": {"seed": 0, "writes": w("c_int", 0, 5)},
                "c_none": {"seed": None, "writes": w("c_none", 0, 5)},
                "c_false": {"seed": False, "writes": w("c_false", 0, 5)},
                "c_true": {"seed": True, "writes": w("c_true", 0, 5)},
                "c_blob": {"seed": [b"bytes", 1.5], "writes": w("c_blob", 0, 5)},
                "absent": {"writes": w("absent", 0, 5)},
            },
        ),
        (
            seeds[2],  # its own snapshot does not count: the walk starts above
            ["msgs", "c_str"],
            {
                "msgs": {"seed": ["plain", "list"], "writes": w("msgs", 0, 2)},
                "c_str": {"seed": "root-str", "writes": w("c_str", 0, 2)},
            },
        ),
        (
            seeds[0],  # the root has no ancestors
            ["msgs"],
            {"msgs": {"writes": []}},
        ),
        (
            _config("seeds", checkpoint_id=_cid(99)),  # no such checkpoint
            ["msgs"],
            {"msgs": {"writes": []}},
        ),
        (
            _config("tasks"),
            ["msgs"],
            {"msgs": {"seed": _DeltaSnapshot([]), "writes": _task_order(TASK_PATHS)}},
        ),
        (fork["c2"], ["msgs"], on_the_fork),
        (_config("fork"), ["msgs"], on_the_fork),  # the latest is c2
        (
            fork["c1"],
            ["msgs"],
            {
                "msgs": {
                    "seed": _DeltaSnapshot(["root"]),
                    "writes": [
                        ("t0", "msgs", ["root:root"]),
                        ("t1", "msgs", ["root:a"]),
                        ("t2", "msgs", ["root:b1"]),
                    ],
                }
            },
        ),
        (
            _config("fork", "child:1"),
            ["msgs"],
            {
                "msgs": {
                    "seed": _DeltaSnapshot(["child:1"]),
                    "writes": [
                        ("t0", "msgs", ["child:1:root"]),
                        ("t1", "msgs", ["child:1:a"]),
                        ("t4", "msgs", ["child:1:b2"]),
                    ],
                }
            },
        ),
    ]


def _build_shallow(uri: str) -> tuple[InMemorySaver, list[Any]]:
    memory = InMemorySaver()
    with PostgresSaver.from_conn_string(uri) as saver:
        mirror = Mirror(saver, memory)
        seeds = _build_seeds(mirror)
        _build_task_order(mirror, TASK_PATHS)
        fork = _build_fork(mirror)
    return memory, _shallow_expectations(seeds, fork)


def test_task_order_expectation_is_not_insertion_order() -> None:
    order = [t for t, _, _ in _task_order(TASK_PATHS)]
    assert order[::2] == ["t-b", "t-c", "t-d", "t-0", "t-a"]
    assert order[1::2] == order[::2]
    assert order[::2] != sorted(TASK_PATHS) and order[::2] != list(TASK_PATHS)


def test_shallow_delta_histories(saver: PostgresSaver, db_uri: str) -> None:
    memory, cases = _build_shallow(db_uri)
    for target, channels, expected in cases:
        ours = saver.get_delta_channel_history(config=target, channels=channels)
        walked = BaseCheckpointSaver.get_delta_channel_history(
            saver, config=target, channels=channels
        )
        in_memory = memory.get_delta_channel_history(config=target, channels=channels)
        assert ours == expected, target
        _assert_same_history(ours, walked, in_memory)
    assert saver.get_delta_channel_history(config=_config("seeds"), channels=[]) == {}


async def test_shallow_delta_histories_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    memory, cases = _build_shallow(db_uri)
    for target, channels, expected in cases:
        ours = await asaver.aget_delta_channel_history(config=target, channels=channels)
        walked = await BaseCheckpointSaver.aget_delta_channel_history(
            asaver, config=target, channels=channels
        )
        in_memory = memory.get_delta_channel_history(config=target, channels=channels)
        assert ours == expected, target
        _assert_same_history(ours, walked, in_memory)


# -- write order does not depend on the database's collation ---------------------

# Python orders by code point; a linguistic collation puts "~" before letters
# and "alpha" before "Beta". Real task paths look like "~__pregel_pull, node".
COLLATION_PATHS = {
    "task-1": "~__pregel_pull, Beta",
    "task-2": "~__pregel_pull, alpha",
    "task-3": "b",
    "task-4": "~x",
}

# Ways to ask for a database of each kind of default collation, tried in
# turn. Linguistic: ICU's root locale, then glibc's en_US (the default of the
# postgres Docker image).
COLLATED_DATABASES = {
    "code-point": ["LOCALE 'C'"],
    "linguistic": [
        "LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'",
        "LOCALE 'en_US.UTF-8'",
        "LOCALE 'en_US.utf8'",
    ],
}


@pytest.fixture
def collated_db_uri(server_uri: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A set-up database with the kind of default collation ``request.param``
    names (skipped when the server offers none)."""
    kind = request.param
    name = f"lgcp_collate_{uuid.uuid4().hex[:12]}"
    errors = []
    with psycopg.connect(server_uri, autocommit=True) as admin:
        for options in COLLATED_DATABASES[kind]:
            try:
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE template0 ").format(
                        sql.Identifier(name)
                    )
                    + sql.SQL(options)  # type: ignore[arg-type]
                )
                break
            except psycopg.Error as exc:
                errors.append(str(exc).strip())
        else:
            pytest.skip(f"no {kind} collation on this server: {errors}")
    uri = database_uri(server_uri, name)
    try:
        with psycopg.connect(uri) as conn:
            (linguistic,) = conn.execute("SELECT 'alpha' < 'Beta'").fetchone()
        assert linguistic == (kind == "linguistic")
        with PostgresSaver.from_conn_string(uri) as saver:
            saver.setup()
        yield uri
    finally:
        with psycopg.connect(server_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.mark.parametrize(
    "collated_db_uri",
    ["code-point", "linguistic"],
    indirect=True,
)
@pytest.mark.parametrize("kind", ["conn", "aconn"])
async def test_write_order_follows_writes_sort_key_under_any_collation(
    collated_db_uri: str, kind: str
) -> None:
    uri = collated_db_uri
    memory = InMemorySaver()
    with PostgresSaver.from_conn_string(uri) as saver:
        _build_task_order(Mirror(saver, memory), COLLATION_PATHS)
    expected = _task_order(COLLATION_PATHS)
    assert [t for t, _, _ in expected[::2]] == ["task-3", "task-1", "task-2", "task-4"]
    target = _config("tasks")
    root = _config("tasks", checkpoint_id=_cid(0))
    if kind == "conn":
        with PostgresSaver.from_conn_string(uri) as saver:
            ours = saver.get_delta_channel_history(config=target, channels=["msgs"])
            pending = saver.get_tuple(root)
    else:
        async with AsyncPostgresSaver.from_conn_string(uri) as asaver:
            ours = await asaver.aget_delta_channel_history(
                config=target, channels=["msgs"]
            )
            pending = await asaver.aget_tuple(root)
    in_memory = memory.get_delta_channel_history(config=target, channels=["msgs"])
    assert in_memory["msgs"]["writes"] == expected
    assert ours["msgs"]["writes"] == expected
    assert pending is not None and pending.pending_writes == expected


class FanState(TypedDict):
    trail: Annotated[list, DeltaChannel(_extend, snapshot_frequency=100)]


def _fan_graph(checkpointer: Any) -> Any:
    """Two parallel nodes whose names sort differently by code point ("Beta"
    first) and linguistically ("alpha" first) append to one delta channel."""
    builder = StateGraph(FanState)
    builder.add_node("Beta", lambda state: {"trail": ["Beta"]})
    builder.add_node("alpha", lambda state: {"trail": ["alpha"]})
    builder.add_node("join", lambda state: {"trail": ["join"]})
    builder.add_edge(START, "Beta")
    builder.add_edge(START, "alpha")
    builder.add_edge(["Beta", "alpha"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer)


@pytest.mark.parametrize(
    "collated_db_uri",
    ["code-point", "linguistic"],
    indirect=True,
)
def test_delta_state_reads_back_as_it_ran_under_any_collation(
    collated_db_uri: str,
) -> None:
    config = _run_config("fan")
    memory_graph = _fan_graph(InMemorySaver())
    live = memory_graph.invoke({"trail": ["start"]}, config)
    assert live["trail"] == ["start", "Beta", "alpha", "join"]
    assert memory_graph.get_state(config).values == live
    with PostgresSaver.from_conn_string(collated_db_uri) as saver:
        graph = _fan_graph(saver)
        assert graph.invoke({"trail": ["start"]}, config) == live
        assert graph.get_state(config).values == live
