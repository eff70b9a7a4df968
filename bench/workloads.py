"""Benchmark worker: run one workload, print one JSON line.

    <python> bench/workloads.py --workload NAME --uri URI --seconds S

Runs against whichever ``langgraph.checkpoint.postgres`` the interpreter
imports: ours (``/work/main/.venv``) or ``langgraph-checkpoint-postgres``
(``bench/.venv-baseline``). It only uses the API both packages share
(``PostgresSaver`` / ``AsyncPostgresSaver`` built from a connection, a pool or
``from_conn_string``; ``setup``, ``put``, ``put_writes``, ``get_tuple``,
``list`` and their async twins), plus psycopg, psycopg_pool and langgraph.
The store's workloads (``store_*``) are in ``bench/store_workloads.py``.

A workload may have companions that it times interleaved with itself, in
bursts within the same slices (see :func:`run_for`): the floor of a read or
write workload (``bench/floors.py``), or, for a graph, the same graph on
``InMemorySaver`` and on ``SqliteSaver`` (where ``langgraph-checkpoint-sqlite``
is installed). Their mean latencies come as ``<name>_us`` beside the
workload's ``latency_us``.

The database in ``--uri`` must be empty (for a store workload, it may instead
be a copy of the runner's template, which holds the data): the worker runs
``setup()`` in it, prepares any data untimed, then times the workload. The
JSON line holds ``ops``, ``seconds``, ``ops_per_s``, ``peak_rss_mb`` and
workload-specific numbers; the runner (``bench/run.py``) reads it. With ``--sliced`` the
runner decides on stdin when the timed loop runs (see :class:`Clock`).
With ``--prepare`` a store workload only sets up and loads its data and
exits (the runner keeps that database as the template of its repetitions).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import importlib.util
import json
import operator
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack
from typing import Annotated, Any, TypedDict, cast

import catalog
import floors
import psycopg
import store_workloads
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Durability
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

Config = dict[str, Any]
PutArgs = tuple[Config, dict[str, Any], dict[str, Any], dict[str, str]]
Writes = list[tuple[str, Any]]
Result = dict[str, Any]

POOL_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}
HISTORY = 300  # checkpoints in the thread read by get_tuple / list
BIG_HISTORY = 5_000  # checkpoints in the thread iterated by memory_list
BIG_VALUE_EVERY = 50  # the 100 KB channel gets a new version this often
DEEP_HISTORY = 10_000  # checkpoints in the deep thread of get_tuple_deep
SHALLOW_HISTORY = 10
POOL_SIZE = 8
ASYNC_TASKS = 64
FILL_THREADS = 4
GRAPH_INVOKES_PER_THREAD = 10
NOW = "2025-01-01T00:00:00+00:00"
GRAPH_FORMAT = 4  # the checkpoint format ("v") LangGraph 1.x graphs write
LEGACY_FORMAT = 2  # a format older graphs wrote: reads add the parent's sends


# -- data --------------------------------------------------------------------


def _text(rng: random.Random, length: int) -> str:
    """Readable pseudo-random text of exactly ``length`` characters."""
    words = ("state", "graph", "node", "tool", "call", "reply", "plan", "agent")
    out: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(words)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:length]


def _message(rng: random.Random, index: int, kind: str) -> dict[str, Any]:
    """A chat message shaped like a serialized LangChain message dict."""
    return {
        "type": kind,
        "id": f"msg-{index:06d}",
        "content": _text(rng, 160),
        "name": None,
        "additional_kwargs": {},
        "response_metadata": {"model_name": "bench-model", "finish_reason": "stop"},
        "usage_metadata": {"input_tokens": 40 + index % 7, "output_tokens": 35},
    }


_RNG = random.Random(42)
MESSAGES = [_message(_RNG, i, "ai" if i % 2 else "human") for i in range(40)]
# 30 different 10-message windows, so successive checkpoints store new lists.
WINDOWS = [MESSAGES[i : i + 10] for i in range(30)]
TEXT = _text(_RNG, 100)


def _big_value(seed: int) -> list[str]:
    """A 100 KB channel value: 100 strings of 1,024 characters."""
    rng = random.Random(seed)
    return [rng.randbytes(512).hex() for _ in range(100)]


class ThreadWriter:
    """Builds the successive checkpoints of one thread, the way a graph would.

    Channels: ``messages`` (a 10-message list), ``count`` (an int), ``text``
    (100 characters), ``branch:to:agent`` (null) and, with ``big=True``, a
    100 KB ``documents`` list. Each step changes ``messages`` and ``count``
    (and ``documents`` every ``BIG_VALUE_EVERY`` steps); ``new_versions``
    names exactly the changed channels.
    """

    def __init__(
        self,
        next_version: Callable[[str | None, None], str],
        thread_id: str,
        *,
        big: bool = False,
        version: int = GRAPH_FORMAT,
    ) -> None:
        self.next_version = next_version
        self.thread_id = thread_id
        self.big = big
        self.version = version
        self.step = 0
        self.parent_id: str | None = None
        self.versions: dict[str, str] = {}
        self.documents: list[str] = []

    @property
    def thread_config(self) -> Config:
        """Config naming the thread (its latest checkpoint)."""
        return {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}}

    def next(self) -> PutArgs:
        """Arguments for ``put`` of the thread's next checkpoint."""
        step = self.step
        changed = ["messages", "count"]
        if step == 0:
            changed += ["text", "branch:to:agent"]
        values: dict[str, Any] = {
            "messages": WINDOWS[step % len(WINDOWS)],
            "count": step,
            "text": TEXT,
            "branch:to:agent": None,
        }
        if self.big:
            if step % BIG_VALUE_EVERY == 0:
                self.documents = _big_value(step)
                changed.append("documents")
            values["documents"] = self.documents
        for channel in changed:
            self.versions[channel] = self.next_version(self.versions.get(channel), None)
        checkpoint = dict(empty_checkpoint())
        checkpoint.update(
            # The format LangGraph 1.x graphs write. `empty_checkpoint()` of
            # langgraph.checkpoint.base still says v2, and a checkpoint older
            # than v4 makes every read look up its parent's pending sends
            # (the baseline with a second query), which no graph of today's
            # LangGraph makes either package do.
            v=self.version,
            id=str(uuid6(clock_seq=step)),
            ts=NOW,
            channel_values=values,
            channel_versions=dict(self.versions),
            versions_seen={
                "agent": {"messages": self.versions["messages"]},
                "__input__": {},
            },
            updated_channels=changed,
        )
        configurable: dict[str, Any] = {
            "thread_id": self.thread_id,
            "checkpoint_ns": "",
        }
        if self.parent_id is not None:
            configurable["checkpoint_id"] = self.parent_id
        metadata = {"source": "loop", "step": step, "parents": {}}
        new_versions = {channel: self.versions[channel] for channel in changed}
        self.parent_id = checkpoint["id"]
        self.step += 1
        return {"configurable": configurable}, checkpoint, metadata, new_versions

    def writes(self) -> Writes:
        """Three pending writes, as one node run would leave them."""
        return [
            ("messages", [MESSAGES[self.step % len(MESSAGES)]]),
            ("count", self.step),
            ("branch:to:agent", None),
        ]


def _checkpoint_config(thread_id: str, checkpoint_id: str) -> Config:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }


def fill_thread(
    uri: str,
    thread_id: str,
    count: int,
    *,
    writes: bool = False,
    big: bool = False,
    version: int = GRAPH_FORMAT,
) -> list[str]:
    """Store ``count`` checkpoints (and 3 writes each) on a thread, untimed.

    Uses a ``ConnectionPool`` and a few threads: puts of distinct checkpoints
    commute, and every checkpoint's parent id is fixed when it is built. Ends
    with ``VACUUM ANALYZE``. Returns the checkpoint ids, oldest first.
    """
    with ConnectionPool(
        uri, min_size=FILL_THREADS, max_size=FILL_THREADS, kwargs=POOL_KWARGS
    ) as pool:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        writer = ThreadWriter(
            saver.get_next_version, thread_id, big=big, version=version
        )
        items: list[tuple[PutArgs, Writes]] = []
        for _ in range(count):
            args = writer.next()
            items.append((args, writer.writes()))

        def store(item: tuple[PutArgs, Writes]) -> None:
            (config, checkpoint, metadata, new_versions), pending = item
            saved = saver.put(config, checkpoint, metadata, new_versions)  # type: ignore[arg-type]
            if writes:
                saver.put_writes(saved, pending, str(uuid.uuid4()))

        with ThreadPoolExecutor(FILL_THREADS) as executor:
            list(executor.map(store, items, chunksize=16))
    # Give the planner statistics, as a long-lived database would have:
    # otherwise plans flip when autovacuum happens to analyze mid-run.
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return [args[1]["id"] for args, _ in items]


# -- timing ------------------------------------------------------------------


class Clock:
    """When a workload's timed loop runs, and what it counted.

    Unsliced (the default), the loop runs once for ``seconds``. Sliced, the
    runner drives it over stdin so that it can interleave the two sides in
    short slices on one server (machine speed drifts over seconds, and a
    slow spell then hits both sides alike): the worker prints ``READY`` once
    it has prepared and warmed up, then runs one slice per ``go SECONDS``
    line, answering each with a JSON line of the slice's ops and seconds,
    until a ``stop`` line.
    """

    def __init__(self, seconds: float, warmup: float, *, sliced: bool = False) -> None:
        self.seconds = seconds
        self.warmup = warmup
        self.sliced = sliced
        self.ops = 0
        self.took = 0.0
        #: (calls, seconds) of each companion timed beside the workload.
        self.companions: dict[str, tuple[int, float]] = {}

    def slices(self) -> Iterator[float]:
        """Lengths of the timed slices to run, in seconds."""
        if not self.sliced:
            yield self.seconds
            return
        print(catalog.READY, flush=True)
        for line in sys.stdin:
            command = line.split()
            if not command or command[0] == "stop":
                return
            if command[0] != "go" or len(command) != 2:
                raise SystemExit(f"unexpected command from the runner: {line!r}")
            yield float(command[1])

    def record(
        self,
        ops: int,
        took: float,
        companions: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        """Count one slice's ``ops`` calls in ``took`` seconds, and the calls
        and seconds of each companion timed in the same slice."""
        self.ops += ops
        self.took += took
        for name, (calls, seconds) in (companions or {}).items():
            before = self.companions.get(name, (0, 0.0))
            self.companions[name] = (before[0] + calls, before[1] + seconds)
        if self.sliced:
            print(json.dumps({"slice_ops": ops, "slice_seconds": took}), flush=True)

    def unsliced(self) -> tuple[float, float]:
        """(seconds, warm-up) of a workload that times itself in one span."""
        if self.sliced:
            raise SystemExit("this workload cannot run in slices")
        return self.seconds, self.warmup

    def result(self) -> Result:
        """The worker's result: the counted ops and seconds, and with
        companions, the mean latency of the workload (``latency_us``) and of
        each companion (``<name>_us``), all timed in the same slices."""
        result: Result = {"ops": self.ops, "seconds": self.took}
        if self.companions and self.ops:
            result["latency_us"] = self.took / self.ops * 1e6
            for name, (calls, seconds) in self.companions.items():
                result[f"{name}_ops"] = calls
                result[f"{name}_us"] = seconds / calls * 1e6
        return result

    def run(self, op: Callable[[], object]) -> Result:
        """:func:`run_for` on this clock."""
        return run_for(op, self)

    async def arun(self, op: Callable[[], Awaitable[object]]) -> Result:
        """:func:`arun_for` on this clock."""
        return await arun_for(op, self)


def _timed(op: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Call ``op`` until ``seconds`` have passed; return (calls, seconds)."""
    ops = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        op()
        ops += 1
        now = time.perf_counter()
        if now >= end:
            return ops, now - start


async def _atimed(
    op: Callable[[], Awaitable[object]], seconds: float
) -> tuple[int, float]:
    """Async twin of :func:`_timed`."""
    ops = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        await op()
        ops += 1
        now = time.perf_counter()
        if now >= end:
            return ops, now - start


#: The workload's own name among its companions in :func:`bursts`.
MAIN = ""
#: Length of one burst of the workload or of a companion within a slice (s):
#: short enough that the machine's speed, which drifts over seconds, is the
#: same for the bursts of one round, long enough for several calls.
BURST = 0.05
#: A companion's time as a fraction of the workload's, in each round and in
#: the warm-up. A floor's latency varies little from call to call, so half
#: the workload's time measures it well enough, and keeps `make bench` under
#: half an hour.
COMPANION_SHARE = 0.5


def bursts(seconds: float, names: Sequence[str]) -> Iterator[tuple[str, float]]:
    """(name, seconds) of the bursts of one slice: ``seconds`` for the
    workload (``names[0]``), :data:`COMPANION_SHARE` of that for each other.

    The slice is cut into rounds of :data:`BURST` of the workload; each round
    runs every name once, in an order that reverses every round (A B, B A,
    A B, ...), so neither the workload nor a companion always follows the
    other.
    """
    rounds = max(1, round(seconds / BURST))
    length = seconds / rounds
    for index in range(rounds):
        for name in names if index % 2 == 0 else list(reversed(names)):
            yield name, length if name == names[0] else length * COMPANION_SHARE


def run_for(
    op: Callable[[], object],
    clock: Clock,
    companions: Mapping[str, Callable[[], object]] | None = None,
) -> Result:
    """Call ``op`` for the clock's warm-up, then count calls in its slices.

    Each companion (a floor, another saver) gets, in the warm-up and in
    every slice, :data:`COMPANION_SHARE` of the time of ``op``, in bursts
    interleaved with it (see :func:`bursts`); a slice takes that much longer.
    """
    ops: dict[str, Callable[[], object]] = {MAIN: op, **(companions or {})}
    for name, each in ops.items():
        _timed(each, clock.warmup * (1 if name == MAIN else COMPANION_SHARE))
    for seconds in clock.slices():
        counts = dict.fromkeys(ops, (0, 0.0))
        for name, length in bursts(seconds, list(ops)):
            calls, took = _timed(ops[name], length)
            counts[name] = (counts[name][0] + calls, counts[name][1] + took)
        main = counts.pop(MAIN)
        clock.record(*main, counts)
    return clock.result()


async def arun_for(
    op: Callable[[], Awaitable[object]],
    clock: Clock,
    companions: Mapping[str, Callable[[], Awaitable[object]]] | None = None,
) -> Result:
    """Async twin of :func:`run_for`."""
    ops: dict[str, Callable[[], Awaitable[object]]] = {
        MAIN: op,
        **(companions or {}),
    }
    for name, each in ops.items():
        await _atimed(each, clock.warmup * (1 if name == MAIN else COMPANION_SHARE))
    for seconds in clock.slices():
        counts = dict.fromkeys(ops, (0, 0.0))
        for name, length in bursts(seconds, list(ops)):
            calls, took = await _atimed(ops[name], length)
            counts[name] = (counts[name][0] + calls, counts[name][1] + took)
        main = counts.pop(MAIN)
        clock.record(*main, counts)
    return clock.result()


def _status_mb(field: str) -> float:
    """A ``VmRSS``/``VmHWM`` value of this process from /proc, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (getrusage ``ru_maxrss``), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workloads ---------------------------------------------------------------


def _setup(uri: str) -> None:
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()


def _floor_result(result: Result, floor: floors.Floor) -> Result:
    """``result`` with the floor's payload per call (``floor_bytes``)."""
    return result | {"floor_bytes": floor.bytes_per_call}


def _put_floor(
    uri: str, next_version: Callable[[str | None, None], str]
) -> floors.Floor:
    """The floor of ``put``: the rows of the checkpoints the workload stores
    (their 30 message windows), from a writer of their own."""
    writer = ThreadWriter(next_version, "floor")
    return floors.put_floor(uri, [writer.next() for _ in range(len(WINDOWS))])


def w_put(uri: str, clock: Clock) -> Result:
    """``put`` of successive realistic checkpoints on one thread."""
    with (
        PostgresSaver.from_conn_string(uri) as saver,
        floors.connect(uri) as bare,
    ):
        writer = ThreadWriter(saver.get_next_version, "put")
        floor = _put_floor(uri, saver.get_next_version)

        def op() -> None:
            saver.put(*writer.next())  # type: ignore[arg-type]

        result = run_for(op, clock, {"floor": floor.op(bare)})
    return _floor_result(result, floor)


def w_aput(uri: str, clock: Clock) -> Result:
    """Async ``aput`` of successive realistic checkpoints on one thread."""

    async def main() -> Result:
        async with (
            AsyncPostgresSaver.from_conn_string(uri) as saver,
            await floors.aconnect(uri) as bare,
        ):
            writer = ThreadWriter(saver.get_next_version, "aput")
            floor = _put_floor(uri, saver.get_next_version)

            async def op() -> None:
                await saver.aput(*writer.next())  # type: ignore[arg-type]

            result = await arun_for(op, clock, {"floor": floor.aop(bare)})
        return _floor_result(result, floor)

    return asyncio.run(main())


def w_put_writes(uri: str, clock: Clock) -> Result:
    """``put_writes`` of 3 writes (a new task id each time) to one checkpoint."""
    with (
        PostgresSaver.from_conn_string(uri) as saver,
        floors.connect(uri) as bare,
    ):
        writer = ThreadWriter(saver.get_next_version, "put_writes")
        config = saver.put(*writer.next())  # type: ignore[arg-type]
        pending = writer.writes()
        floor = floors.writes_floor(uri, pending)

        def op() -> None:
            saver.put_writes(config, pending, str(uuid.uuid4()))

        result = run_for(op, clock, {"floor": floor.op(bare)})
    return _floor_result(result, floor)


def w_aput_writes(uri: str, clock: Clock) -> Result:
    """Async ``aput_writes`` of 3 writes to one checkpoint."""

    async def main() -> Result:
        async with (
            AsyncPostgresSaver.from_conn_string(uri) as saver,
            await floors.aconnect(uri) as bare,
        ):
            writer = ThreadWriter(saver.get_next_version, "aput_writes")
            config = await saver.aput(*writer.next())  # type: ignore[arg-type]
            pending = writer.writes()
            floor = floors.writes_floor(uri, pending)

            async def op() -> None:
                await saver.aput_writes(config, pending, str(uuid.uuid4()))

            result = await arun_for(op, clock, {"floor": floor.aop(bare)})
        return _floor_result(result, floor)

    return asyncio.run(main())


def _read_workload(uri: str, clock: Clock, mode: str, is_async: bool) -> Result:
    """get_tuple / list workloads on a prepared 300-checkpoint thread."""
    thread_id = "history"
    version = LEGACY_FORMAT if mode == "legacy" else GRAPH_FORMAT
    ids = fill_thread(uri, thread_id, HISTORY, writes=True, version=version)
    latest: Config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    seed = 7
    rng = random.Random(seed)
    expected = {
        "latest": 1,
        "legacy": 1,
        "random": 1,
        "list_20": 20,
        "list_all": HISTORY,
    }[mode]

    def config() -> Config:
        if mode == "random":
            return _checkpoint_config(thread_id, rng.choice(ids))
        return latest

    limit = 20 if mode == "list_20" else None
    items = 0
    # The same bytes, read by one bare SELECT: the same checkpoint, the same
    # random ids in the same order, or as many rows as the list returns.
    floor = floors.read_floor(
        uri,
        thread_id,
        limit=(limit or 0) if mode.startswith("list") else None,
        ids=ids if mode == "random" else None,
        seed=seed,
    )

    if not is_async:
        with (
            PostgresSaver.from_conn_string(uri) as saver,
            floors.connect(uri) as bare,
        ):

            def op() -> None:
                nonlocal items
                if mode in ("latest", "legacy", "random"):
                    got = saver.get_tuple(config())  # type: ignore[arg-type]
                    assert got is not None and len(got.pending_writes or ()) == 3
                    items += 1
                else:
                    items += len(list(saver.list(latest, limit=limit)))  # type: ignore[arg-type]

            result = run_for(op, clock, {"floor": floor.op(bare)})
    else:

        async def main() -> Result:
            async with (
                AsyncPostgresSaver.from_conn_string(uri) as saver,
                await floors.aconnect(uri) as bare,
            ):

                async def op() -> None:
                    nonlocal items
                    if mode in ("latest", "legacy", "random"):
                        got = await saver.aget_tuple(config())  # type: ignore[arg-type]
                        assert got is not None and len(got.pending_writes or ()) == 3
                        items += 1
                    else:
                        listed = [
                            t
                            async for t in saver.alist(latest, limit=limit)  # type: ignore[arg-type]
                        ]
                        items += len(listed)

                return await arun_for(op, clock, {"floor": floor.aop(bare)})

        result = asyncio.run(main())
    return _floor_result(result, floor) | {"items_per_op": expected}


class GraphState(TypedDict):
    """State of the benchmark graph: a message list and a turn counter."""

    messages: Annotated[list[dict[str, Any]], operator.add]
    turns: int


def _reply(state: GraphState, node: str) -> dict[str, Any]:
    index = len(state["messages"])
    message = dict(MESSAGES[index % len(MESSAGES)], id=f"{node}-{index}")
    update: dict[str, Any] = {"messages": [message]}
    if node == "respond":
        update["turns"] = state.get("turns", 0) + 1
    return update


def _node(name: str, is_async: bool) -> Callable[[GraphState], Any]:
    """A graph node that appends one message (and counts turns in ``respond``)."""
    if is_async:

        async def anode(state: GraphState) -> dict[str, Any]:
            return _reply(state, name)

        return anode

    def node(state: GraphState) -> dict[str, Any]:
        return _reply(state, name)

    return node


def _build_graph(is_async: bool) -> StateGraph[Any]:
    """A 3-node linear graph (plan -> act -> respond) over a message list."""
    builder: StateGraph[Any] = StateGraph(GraphState)
    names = ("plan", "act", "respond")
    for name in names:
        builder.add_node(name, _node(name, is_async))
    builder.add_edge(START, names[0])
    builder.add_edge(names[0], names[1])
    builder.add_edge(names[1], names[2])
    builder.add_edge(names[2], END)
    return builder


def _graph_input(i: int) -> tuple[dict[str, Any], Config]:
    """Input and config of invoke ``i``: a new thread every few invokes."""
    thread_id = f"graph-{i // GRAPH_INVOKES_PER_THREAD}"
    message = dict(MESSAGES[0], id=f"user-{i}")
    return {"messages": [message]}, {"configurable": {"thread_id": thread_id}}


def _invoker(
    saver: BaseCheckpointSaver[Any], durability: Durability
) -> Callable[[], object]:
    """One ``invoke`` of the 3-node graph on ``saver`` per call."""
    graph = _build_graph(False).compile(checkpointer=saver)
    counter = 0

    def op() -> None:
        nonlocal counter
        inputs, config = _graph_input(counter)
        counter += 1
        graph.invoke(inputs, cast(RunnableConfig, config), durability=durability)

    return op


def _ainvoker(
    saver: BaseCheckpointSaver[Any], durability: Durability
) -> Callable[[], Awaitable[object]]:
    """Async twin of :func:`_invoker`: ``ainvoke`` with async nodes."""
    graph = _build_graph(True).compile(checkpointer=saver)
    counter = 0

    async def op() -> None:
        nonlocal counter
        inputs, config = _graph_input(counter)
        counter += 1
        await graph.ainvoke(inputs, cast(RunnableConfig, config), durability=durability)

    return op


def _sqlite_file(stack: ExitStack | AsyncExitStack) -> str | None:
    """A new SQLite database file, removed on leaving ``stack``; None when
    ``langgraph-checkpoint-sqlite`` is not installed (the baseline's
    interpreter: SqliteSaver is timed beside ours only)."""
    if importlib.util.find_spec("langgraph.checkpoint.sqlite") is None:
        return None
    directory = tempfile.mkdtemp(prefix="lgcp-bench-sqlite-")
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    return os.path.join(directory, "checkpoints.sqlite")


def graph_workload(durability: Durability) -> Callable[[str, Clock], Result]:
    """``invoke`` of a 3-node graph with ``durability``; 10 invokes per
    thread, then a new thread. The same graph on ``InMemorySaver`` and on
    ``SqliteSaver`` (a file) is timed beside it, interleaved: the first is
    what LangGraph costs without a database, which the checkpointer's share
    of an invoke is measured against."""

    def run(uri: str, clock: Clock) -> Result:
        with ExitStack() as stack:
            saver = stack.enter_context(PostgresSaver.from_conn_string(uri))
            companions = {"memory": _invoker(InMemorySaver(), durability)}
            path = _sqlite_file(stack)
            if path is not None:
                from langgraph.checkpoint.sqlite import SqliteSaver

                # LangGraph writes from background threads (durability
                # "async"): the saver has a lock of its own.
                conn = sqlite3.connect(path, check_same_thread=False)
                stack.callback(conn.close)
                companions["sqlite"] = _invoker(SqliteSaver(conn), durability)
            return run_for(_invoker(saver, durability), clock, companions)

    return run


def agraph_workload(durability: Durability) -> Callable[[str, Clock], Result]:
    """Async twin of :func:`graph_workload`: ``ainvoke`` with async nodes,
    on AsyncPostgresSaver, InMemorySaver and AsyncSqliteSaver."""

    def run(uri: str, clock: Clock) -> Result:
        async def main() -> Result:
            async with AsyncExitStack() as stack:
                saver = await stack.enter_async_context(
                    AsyncPostgresSaver.from_conn_string(uri)
                )
                companions = {"memory": _ainvoker(InMemorySaver(), durability)}
                path = _sqlite_file(stack)
                if path is not None:
                    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                    sqlite = await stack.enter_async_context(
                        AsyncSqliteSaver.from_conn_string(path)
                    )
                    companions["sqlite"] = _ainvoker(sqlite, durability)
                return await arun_for(_ainvoker(saver, durability), clock, companions)

        return asyncio.run(main())

    return run


def w_async_pool(uri: str, clock: Clock) -> Result:
    """64 tasks on an ``AsyncConnectionPool`` of 8: put, put_writes, get_tuple.

    Each task works on its own thread; one op is one such 3-call cycle.
    """

    async def main() -> tuple[int, float]:
        seconds, warmup = clock.unsliced()
        pool = AsyncConnectionPool(
            uri, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs=POOL_KWARGS, open=False
        )
        await pool.open(wait=True)
        try:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            counts = [0] * ASYNC_TASKS
            stop = asyncio.Event()

            async def task(index: int) -> None:
                writer = ThreadWriter(saver.get_next_version, f"task-{index}")
                while not stop.is_set():
                    config = await saver.aput(*writer.next())  # type: ignore[arg-type]
                    await saver.aput_writes(config, writer.writes(), str(uuid.uuid4()))
                    got = await saver.aget_tuple(writer.thread_config)  # type: ignore[arg-type]
                    assert got is not None
                    counts[index] += 1

            tasks = [asyncio.create_task(task(i)) for i in range(ASYNC_TASKS)]
            await asyncio.sleep(warmup)
            before, start = sum(counts), time.perf_counter()
            await asyncio.sleep(seconds)
            after, end = sum(counts), time.perf_counter()
            stop.set()
            await asyncio.gather(*tasks)
            return after - before, end - start
        finally:
            await pool.close()

    ops, took = asyncio.run(main())
    return {"ops": ops, "seconds": took}


def w_sync_pool_threads(uri: str, clock: Clock) -> Result:
    """8 threads on a ``ConnectionPool`` of 8: put, put_writes, get_tuple.

    Each thread works on its own LangGraph thread; one op is one 3-call cycle.
    """
    seconds, warmup = clock.unsliced()
    with ConnectionPool(
        uri, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs=POOL_KWARGS
    ) as pool:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        counts = [0] * POOL_SIZE
        stop = threading.Event()
        errors: list[BaseException] = []

        def worker(index: int) -> None:
            writer = ThreadWriter(saver.get_next_version, f"thread-{index}")
            try:
                while not stop.is_set():
                    config = saver.put(*writer.next())  # type: ignore[arg-type]
                    saver.put_writes(config, writer.writes(), str(uuid.uuid4()))
                    got = saver.get_tuple(writer.thread_config)  # type: ignore[arg-type]
                    assert got is not None
                    counts[index] += 1
            except BaseException as exc:  # reported after the run
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(POOL_SIZE)]
        for thread in threads:
            thread.start()
        time.sleep(warmup)
        before, start = sum(counts), time.perf_counter()
        time.sleep(seconds)
        after, end = sum(counts), time.perf_counter()
        stop.set()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    return {"ops": after - before, "seconds": end - start}


def w_memory_list(uri: str, clock: Clock) -> Result:
    """Iterate ``list()`` over 5,000 checkpoints that each carry a 100 KB value.

    Reports time to the first item, the whole iteration (ops = items) and the
    peak RSS during the iteration (VmHWM, reset just before it).
    """
    clock.unsliced()  # one full pass is the measurement
    config: Config = {"configurable": {"thread_id": "big", "checkpoint_ns": ""}}
    fill_thread(uri, "big", BIG_HISTORY, big=True)
    with PostgresSaver.from_conn_string(uri) as saver:
        gc.collect()
        rss_before = _status_mb("VmRSS")
        has_reset = reset_peak_rss()
        start = time.perf_counter()
        items = iter(saver.list(config))  # type: ignore[arg-type]
        first = next(items)
        first_at = time.perf_counter()
        assert len(first.checkpoint["channel_values"]["documents"]) == 100
        del first
        count = 1
        for _ in items:
            count += 1
        end = time.perf_counter()
    peak = _status_mb("VmHWM") if has_reset else peak_rss_mb()
    assert count == BIG_HISTORY, count
    return {
        "ops": count,
        "seconds": end - start,
        "first_item_ms": (first_at - start) * 1000,
        "list_rss_before_mb": rss_before,
        "list_peak_rss_mb": peak,
        "list_rss_growth_mb": peak - rss_before,
    }


def w_get_tuple_deep(uri: str, clock: Clock) -> Result:
    """Latest ``get_tuple`` on a 10,000-checkpoint thread vs a 10-checkpoint one.

    ops/s is for the deep thread; ``deep_vs_shallow_latency`` is the ratio of
    their mean latencies (1.0 means depth costs nothing).
    """
    fill_thread(uri, "deep", DEEP_HISTORY)
    fill_thread(uri, "shallow", SHALLOW_HISTORY)
    totals = {"deep": [0, 0.0], "shallow": [0, 0.0]}
    with PostgresSaver.from_conn_string(uri) as saver:
        # Alternate short slices of each so drift hits both alike.
        for _ in range(4):
            for thread_id in ("shallow", "deep"):
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}

                def op(cfg: Config = config) -> None:
                    assert saver.get_tuple(cfg) is not None  # type: ignore[arg-type]

                seconds, warmup = clock.unsliced()
                part = run_for(op, Clock(seconds / 4, warmup / 4))
                totals[thread_id][0] += part["ops"]
                totals[thread_id][1] += part["seconds"]
    deep_ops, deep_s = totals["deep"]
    shallow_ops, shallow_s = totals["shallow"]
    deep_ms = deep_s / deep_ops * 1000
    shallow_ms = shallow_s / shallow_ops * 1000
    return {
        "ops": int(deep_ops),
        "seconds": deep_s,
        "deep_latency_ms": deep_ms,
        "shallow_latency_ms": shallow_ms,
        "deep_vs_shallow_latency": deep_ms / shallow_ms,
    }


def _reader(mode: str, is_async: bool) -> Callable[[str, Clock], Result]:
    def run(uri: str, clock: Clock) -> Result:
        return _read_workload(uri, clock, mode, is_async)

    return run


WORKLOADS: dict[str, Callable[[str, Clock], Result]] = {
    "put": w_put,
    "aput": w_aput,
    "put_writes": w_put_writes,
    "aput_writes": w_aput_writes,
    "get_tuple_latest": _reader("latest", False),
    "aget_tuple_latest": _reader("latest", True),
    "get_tuple_random": _reader("random", False),
    "aget_tuple_random": _reader("random", True),
    "get_tuple_legacy": _reader("legacy", False),
    "list_20": _reader("list_20", False),
    "alist_20": _reader("list_20", True),
    "list_all": _reader("list_all", False),
    "alist_all": _reader("list_all", True),
    **{
        spec.name: (
            agraph_workload if spec.name.startswith("agraph") else graph_workload
        )(spec.durability)
        for spec in catalog.SPECS
        if spec.durability is not None
    },
    "async_pool": w_async_pool,
    "sync_pool_threads": w_sync_pool_threads,
    "memory_list": w_memory_list,
    "get_tuple_deep": w_get_tuple_deep,
    **store_workloads.WORKLOADS,
}
assert set(WORKLOADS) == set(catalog.BY_NAME), "catalog and workloads differ"


# -- entry point -------------------------------------------------------------


def package_info(workload: str) -> dict[str, Any]:
    """Which distribution this interpreter runs ``workload`` with (the file
    of its checkpointer, or of its store), and versions."""
    if workload in store_workloads.WORKLOADS:
        module = store_workloads.store_module()
    else:
        module = sys.modules[PostgresSaver.__module__].__file__
    info: dict[str, Any] = {"module": module}
    for dist in (
        "langgraph-postgres-saver",
        "langgraph-checkpoint-postgres",
        "langgraph",
        "langgraph-checkpoint",
        "psycopg",
        "psycopg-pool",
    ):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return info


def main(argv: Iterable[str] | None = None) -> None:
    """Parse arguments, run one workload, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--uri", required=True, help="URI of an empty database")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument(
        "--sliced",
        action="store_true",
        help="time the slices the runner asks for on stdin (see Clock)",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="store workloads: only set up and load the data, then exit",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    warmup = args.warmup if args.warmup is not None else min(0.5, args.seconds / 3)
    clock = Clock(args.seconds, warmup, sliced=args.sliced)
    is_store = args.workload in store_workloads.WORKLOADS
    if args.prepare:
        if not is_store:
            raise SystemExit("--prepare is for the store workloads")
        started = time.perf_counter()
        items = store_workloads.prepare(args.workload, args.uri)
        prepared = {"prepared_items": items, "load_s": time.perf_counter() - started}
        print(json.dumps(prepared | package_info(args.workload)), flush=True)
        return

    setup_start = time.perf_counter()
    if not is_store:
        _setup(args.uri)
    prepare_started = time.perf_counter()
    result = WORKLOADS[args.workload](args.uri, clock)
    result["ops_per_s"] = result["ops"] / result["seconds"]
    result["peak_rss_mb"] = peak_rss_mb()
    result["setup_s"] = prepare_started - setup_start
    result["workload"] = args.workload
    result.update(package_info(args.workload))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
