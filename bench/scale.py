"""Measure the saver on a million checkpoints (``make bench-scale``).

    make bench-scale                               # 1,000,000 checkpoints, report
    .venv/bin/python bench/scale.py --write        # ... and update bench/RESULTS.md
    .venv/bin/python bench/scale.py --checkpoints 20000 --threads 200
    .venv/bin/python bench/scale.py --rebuild      # generate the database again
    .venv/bin/python bench/scale.py --generate-only  # only make sure it is there

The first run generates a database (``--db``, default ``lg_bench_scale``) of
``--checkpoints`` checkpoints over ``--threads`` threads, with their blobs and
writes; later runs reuse it while it holds what the options ask for. The rows
are what the saver stores: a small agent graph (an agent node calling a tool
node, messages in a sliding window) runs on one thread through our
``PostgresSaver``, and the server copies that thread's rows to every thread in
bulk (``INSERT ... SELECT``), with new thread ids, checkpoint ids, times,
parent links and a ``user`` in the metadata (``--users`` of them). Checkpoint
ids are uuid6 strings made from each checkpoint's ``ts``, as LangGraph makes
them, so a thread's newest checkpoint has both its greatest id and its latest
time. A share of the threads (``--idle-share``) last ran weeks ago, the others
during the last day, so that a TTL sweep has work.

It then measures, and prints a Markdown report (``--write`` puts it in
``bench/RESULTS.md``, between ``<!-- scale:begin -->`` and ``<!-- scale:end
-->``; ``--json`` saves the figures):

a. ``get_tuple`` on that database against a database holding only the
   threads read (same rows), both hot, and the first read of a thread;
b. ``list(None, filter={"user": ...}, limit=20)``: ours, with the metadata
   index, against ``langgraph-checkpoint-postgres`` 3.2.0 on its layout (a
   copy without the index; 3.2.0 creates none), both in subprocesses of their
   own interpreters; also ours without the index and 3.2.0 with it;
c. a retention sweep (``strategy="delete"`` of the idle threads) on a copy:
   checkpoints removed per second, and a graph workload's latency while it
   runs against the same workload alone;
d. ``setup()`` on a copy at version 11 (no metadata index) while writers
   write: how long it took, the longest any write waited, and the writes'
   latency before and after the index;
e. table and index sizes: as generated, after the sweep, after ``VACUUM``,
   after ``VACUUM FULL``.

Copies are made with ``CREATE DATABASE ... TEMPLATE`` and dropped at the end;
``--drop`` drops the generated database too. The existing package runs from
``bench/.venv-baseline`` (made by ``bench/run.py``'s ``ensure_baseline()``), or
from ``--baseline-python``; ``--no-baseline`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN_MARKER = "<!-- scale:begin -->"
END_MARKER = "<!-- scale:end -->"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB = "lg_bench_scale"

#: Bumped whenever the generated rows change, so that a database generated
#: by an older version of this script is generated again.
GENERATOR_VERSION = 2

#: The migration that adds the metadata index (section d removes it).
METADATA_VERSION = 12
METADATA_INDEX = "checkpoints_metadata_idx"

#: The targets of issue 18.
GET_TUPLE_TARGET = 1.2  # at most this many times the small database's
LIST_TARGET = 100.0  # at least this many times faster than 3.2.0
SWEEP_P99_TARGET = 2.0  # workload p99 during a sweep, times without
SETUP_WAIT_TARGET = 1.0  # seconds a writer may wait during setup()

#: Messages the agent graph keeps (its ``messages`` channel is a window).
WINDOW = 8
#: Checkpoints one turn of the agent graph writes (input, start, agent,
#: tools, agent).
CHECKPOINTS_PER_TURN = 5
#: A thread's checkpoints are this many seconds apart (plus under a second).
SPACING_SECONDS = 37
#: TTL of the sweep, in days past the generation (idle threads are older).
SWEEP_TTL_DAYS = 7
#: Threads per sweep transaction (the retention policy's default).
SWEEP_LIMIT = 100


# -- the graph --------------------------------------------------------------


def agent_graph(checkpointer: Any) -> Any:
    """A small agent: the agent node asks the tool node once, then answers
    (five checkpoints per turn).

    Its state is what chat agents keep: a window of LangChain messages
    (stored as a blob, rewritten at every step), a turn counter (inline in
    the checkpoint) and the tool's last result (a small blob).
    """
    # Imported here: the list worker runs this file in interpreters that
    # may lack langgraph's graph module.
    from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    def window(old: list[AnyMessage], new: list[AnyMessage]) -> list[AnyMessage]:
        return (old + new)[-WINDOW:]

    # The functional form (UP013 prefers the class form): its types are
    # objects, not strings, which the class form would give under this
    # module's `from __future__ import annotations` and LangGraph would then
    # look up, and miss, among the module's globals.
    state = TypedDict(  # noqa: UP013
        "AgentState",
        {
            "messages": Annotated[list[AnyMessage], window],
            "turns": int,
            "context": dict[str, Any],
        },
        total=False,
    )

    def agent(state: dict[str, Any]) -> dict[str, Any]:
        turn = state.get("turns", 0)
        if isinstance(state["messages"][-1], ToolMessage):
            text = f"Here is what I found for turn {turn}: " + "lorem ipsum " * 6
            return {"messages": [AIMessage(content=text)], "turns": turn + 1}
        call = {"name": "search", "args": {"query": f"q{turn}"}, "id": f"call-{turn}"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def tools(state: dict[str, Any]) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]
        result = ToolMessage(content="result " + "x" * 120, tool_call_id=call["id"])
        return {"messages": [result], "context": {"last_query": call["args"]["query"]}}

    def route(state: dict[str, Any]) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(state)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def turn_input(n: int) -> dict[str, Any]:
    """A user's message, the input of one turn."""
    from langchain_core.messages import HumanMessage

    return {"messages": [HumanMessage(content=f"question {n}: " + "please help " * 5)]}


# -- databases --------------------------------------------------------------


def db_uri(dsn: str, name: str) -> str:
    """``dsn`` with its database replaced by ``name``."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=name)


def admin(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


def database_exists(dsn: str, name: str) -> bool:
    with admin(dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None


def drop_database(dsn: str, name: str) -> None:
    from psycopg import sql

    with admin(dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def create_database(dsn: str, name: str, template: str | None = None) -> float:
    """Create ``name`` (a copy of ``template`` if given); return the seconds
    it took. A copy is made file by file where the server can (PostgreSQL
    15 and later), which for gigabytes is much faster than through WAL."""
    from psycopg import sql

    drop_database(dsn, name)
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    started = time.perf_counter()
    with admin(dsn) as conn:
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            if conn.info.server_version >= 150000:
                query += sql.SQL(" STRATEGY FILE_COPY")
        conn.execute(query)
    return time.perf_counter() - started


@contextmanager
def database_copy(dsn: str, template: str, name: str) -> Iterator[tuple[str, float]]:
    """A copy of ``template`` for the block: (its URI, seconds to copy)."""
    seconds = create_database(dsn, name, template)
    try:
        yield db_uri(dsn, name), seconds
    finally:
        drop_database(dsn, name)


# -- generating the database -------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """What the generated database holds."""

    checkpoints: int
    threads: int
    users: int
    idle_share: float

    @property
    def per_thread(self) -> int:
        return self.checkpoints // self.threads

    @property
    def idle_threads(self) -> int:
        return round(self.threads * self.idle_share)

    def check(self) -> None:
        if self.threads < 1 or self.checkpoints % self.threads:
            raise SystemExit("--checkpoints must be a multiple of --threads")
        if self.per_thread < 2:
            raise SystemExit("give each thread at least 2 checkpoints")
        if not 1 <= self.users <= self.threads:
            raise SystemExit("--users must be between 1 and --threads")
        if not 0 <= self.idle_share < 1:
            raise SystemExit("--idle-share must be in [0, 1)")


# A thread's newest checkpoint time: the idle threads (the first
# %(idle)s) 14 to 42 days before %(now)s, the others during the last day.
# Spread by multiples of a prime, so that times differ between threads.
_LAST_TS = """CASE WHEN i < %(idle)s
    THEN %(now)s::timestamptz - interval '14 days'
        - (i %% 28) * interval '1 day' - (i * 7919 %% 86400) * interval '1 second'
    ELSE %(now)s::timestamptz - (i * 7919 %% 86400) * interval '1 second'
END"""

# The functions the bulk copy uses, for this session only. Checkpoint k of
# a thread is `(per_thread - 1 - k)` spacings (plus up to a second) older
# than its newest; its id is the uuid6 LangGraph would have made at that
# time: the 60-bit count of 100 ns since 1582-10-15, high bits first, the
# version (6), the step as clock sequence with the RFC 4122 variant, and a
# node from the thread and k.
_FUNCTIONS = [
    """CREATE FUNCTION pg_temp.lg_ts(last timestamptz, k int, per int, i int)
    RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT last - (per - 1 - k) * interval '{spacing} seconds'
        - ((i * 31 + k * 7) %% 997) * interval '1 millisecond'
        - ((i * 7 + k * 13) %% 1000) * interval '1 microsecond'
    $$""",
    """CREATE FUNCTION pg_temp.lg_ts_text(ts timestamptz)
    RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'
    $$""",
    """CREATE FUNCTION pg_temp.lg_id(ts timestamptz, step int, node text)
    RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-6' || substr(h, 13, 3)
        || '-' || to_hex(32768 | (step & 16383)) || '-' || substr(md5(node), 1, 12)
    FROM (SELECT lpad(to_hex(
        (extract(epoch FROM ts) * 10000000)::bigint + 122192928000000000
    ), 15, '0') AS h) x
    $$""",
]

_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
    "checkpoint, metadata"
)

# Each thread's copy of the seed checkpoints, in primary-key order.
_COPY_CHECKPOINTS = f"""
INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS})
SELECT t.thread_id, '', x.id,
    CASE WHEN s.parent_k IS NOT NULL THEN pg_temp.lg_id(
        pg_temp.lg_ts(t.last, s.parent_k, %(per)s, t.i), p.step,
        t.thread_id || ':' || s.parent_k) END,
    s.type,
    s.checkpoint || jsonb_build_object('id', x.id, 'ts', pg_temp.lg_ts_text(x.ts)),
    s.metadata || jsonb_build_object('user', t.user_id)
FROM lg_threads t
CROSS JOIN lg_seed_checkpoints s
LEFT JOIN lg_seed_checkpoints p ON p.k = s.parent_k
CROSS JOIN LATERAL (SELECT pg_temp.lg_ts(t.last, s.k, %(per)s, t.i) AS ts) tx
CROSS JOIN LATERAL (
    SELECT tx.ts, pg_temp.lg_id(tx.ts, s.step, t.thread_id || ':' || s.k) AS id
) x
ORDER BY t.thread_id, x.id
"""

_COPY_BLOBS = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT t.thread_id, '', b.channel, b.version, b.type, b.blob
FROM lg_threads t CROSS JOIN lg_seed_blobs b
ORDER BY t.thread_id, b.channel, b.version
"""

_COPY_WRITES = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
    task_path, idx, channel, type, blob)
SELECT t.thread_id, '', pg_temp.lg_id(
        pg_temp.lg_ts(t.last, w.k, %(per)s, t.i), s.step, t.thread_id || ':' || w.k),
    w.task_id, w.task_path, w.idx, w.channel, w.type, w.blob
FROM lg_threads t
CROSS JOIN lg_seed_writes w
JOIN lg_seed_checkpoints s ON s.k = w.k
ORDER BY t.thread_id, w.k, w.task_id, w.idx
"""


@dataclass
class Seed:
    """One thread's rows, as the saver stored them: checkpoint ``k`` is the
    thread's k-th oldest."""

    checkpoints: list[tuple[Any, ...]]  # k, parent_k, type, checkpoint, metadata, step
    blobs: list[tuple[Any, ...]]  # channel, version, type, blob
    writes: list[tuple[Any, ...]]  # k, task_id, task_path, idx, channel, type, blob


def make_seed(uri: str, per_thread: int) -> Seed:
    """Run the agent graph on one thread of ``uri`` until it has
    ``per_thread`` checkpoints; read its oldest ``per_thread`` back (with the
    blobs and writes they reference). The thread stays in the database."""
    import psycopg
    from psycopg.types.json import Jsonb

    from langgraph.checkpoint.postgres import PostgresSaver

    thread_id = "lg-bench-seed"
    config = {"configurable": {"thread_id": thread_id}, "metadata": {"user": "seed"}}
    with PostgresSaver.from_conn_string(uri) as saver:
        graph = agent_graph(saver)
        turns = math.ceil(per_thread / CHECKPOINTS_PER_TURN)
        for n in range(turns):
            graph.invoke(turn_input(n), config)
        with psycopg.connect(uri) as conn:
            rows = conn.execute(
                """SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint,
                    metadata FROM checkpoints WHERE thread_id = %s
                ORDER BY checkpoint_id LIMIT %s""",
                (thread_id, per_thread),
            ).fetchall()
            blobs = conn.execute(
                """SELECT channel, version, type, blob FROM checkpoint_blobs
                WHERE thread_id = %s""",
                (thread_id,),
            ).fetchall()
            writes = conn.execute(
                """SELECT checkpoint_id, task_id, task_path, idx, channel, type, blob
                FROM checkpoint_writes WHERE thread_id = %s""",
                (thread_id,),
            ).fetchall()
    if len(rows) < per_thread:
        raise RuntimeError(f"the seed thread has {len(rows)} checkpoints only")
    k_of = {row[0]: k for k, row in enumerate(rows)}
    checkpoints = []
    referenced: set[tuple[str, str]] = set()
    for k, (_id, parent, type_, checkpoint, metadata) in enumerate(rows):
        referenced.update(checkpoint["channel_versions"].items())
        step = int(metadata["step"])
        checkpoints.append(
            (k, k_of.get(parent), type_, Jsonb(checkpoint), Jsonb(metadata), step)
        )
    return Seed(
        checkpoints,
        # Only blobs the kept checkpoints reference (none left orphaned).
        [b for b in blobs if (b[0], b[1]) in referenced],
        [(k_of[w[0]], *w[1:]) for w in writes if w[0] in k_of],
    )


def generate(uri: str, scale: Scale, now: datetime) -> dict[str, float]:
    """Fill the set-up database ``uri`` (whatever it holds is removed);
    return the seconds of each step. The indexes that migrations build on
    populated tables are dropped during the copy and built after it (as
    they would be, once, by CREATE INDEX); the primary keys stay."""
    import psycopg

    from langgraph.checkpoint.postgres._migrations import (
        MIGRATIONS,
        ONLINE_INDEX_BUILDS,
    )
    from langgraph.checkpoint.postgres._sql import render

    timings: dict[str, float] = {}
    started = time.perf_counter()
    seed = make_seed(uri, scale.per_thread)
    timings["seed graph"] = time.perf_counter() - started
    with psycopg.connect(uri, autocommit=True) as conn:
        # The copy needs sorts larger than the default 4 MB.
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET maintenance_work_mem = '512MB'")
        # The seed thread goes, by TRUNCATE: deleted, its rows would stay in
        # the primary keys until a VACUUM, at the right end of each (its id
        # sorts after every copy's), so that no insert of the copy, made in
        # key order, would land on the rightmost page, the one B-trees split
        # leaving it 90% full; every split would leave two half-full pages.
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        for build in ONLINE_INDEX_BUILDS.values():
            conn.execute(f"DROP INDEX IF EXISTS {render(build.index_name, None)}")
        for function in _FUNCTIONS:
            conn.execute(function.format(spacing=SPACING_SECONDS).replace("%%", "%"))
        conn.execute(
            """CREATE TEMP TABLE lg_seed_checkpoints (k int PRIMARY KEY,
                parent_k int, type text, checkpoint jsonb, metadata jsonb, step int)"""
        )
        conn.execute(
            """CREATE TEMP TABLE lg_seed_blobs (channel text, version text,
                type text, blob bytea)"""
        )
        conn.execute(
            """CREATE TEMP TABLE lg_seed_writes (k int, task_id text, task_path text,
                idx int, channel text, type text, blob bytea)"""
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO lg_seed_checkpoints VALUES (%s, %s, %s, %s, %s, %s)",
                seed.checkpoints,
            )
            cur.executemany(
                "INSERT INTO lg_seed_blobs VALUES (%s, %s, %s, %s)", seed.blobs
            )
            cur.executemany(
                "INSERT INTO lg_seed_writes VALUES (%s, %s, %s, %s, %s, %s, %s)",
                seed.writes,
            )
        params = {
            "idle": scale.idle_threads,
            "now": now,
            "per": scale.per_thread,
            "threads": scale.threads,
            "users": scale.users,
        }
        conn.execute(
            f"""CREATE TEMP TABLE lg_threads AS
            SELECT i, md5('lg-bench-thread-' || i)::uuid::text AS thread_id,
                'user-' || (i %% %(users)s) AS user_id, {_LAST_TS} AS last
            FROM generate_series(0, %(threads)s - 1) AS i""",
            params,
        )
        for name, statement in (
            ("checkpoints", _COPY_CHECKPOINTS),
            ("blobs", _COPY_BLOBS),
            ("writes", _COPY_WRITES),
        ):
            step_started = time.perf_counter()
            conn.execute(statement, params)
            timings[f"copy {name}"] = time.perf_counter() - step_started
        step_started = time.perf_counter()
        for version in ONLINE_INDEX_BUILDS:
            conn.execute(MIGRATIONS[version])
        timings["indexes"] = time.perf_counter() - step_started
        step_started = time.perf_counter()
        # Hint bits, the visibility map and statistics, so that the first
        # measurement does not pay for them (this server may not autovacuum).
        conn.execute(
            "VACUUM (ANALYZE) checkpoints, checkpoint_blobs, checkpoint_writes"
        )
        conn.execute("CHECKPOINT")
        timings["vacuum"] = time.perf_counter() - step_started
    timings["total"] = time.perf_counter() - started
    return timings


def generated_info(dsn: str, name: str) -> dict[str, Any] | None:
    """What the script noted on database ``name`` when it generated it
    (its comment), if that is there."""
    with admin(dsn) as conn:
        row = conn.execute(
            """SELECT shobj_description(oid, 'pg_database') FROM pg_database
            WHERE datname = %s""",
            (name,),
        ).fetchone()
    if not row or not row[0]:
        return None
    try:
        info: dict[str, Any] = json.loads(row[0])
    except json.JSONDecodeError:
        return None
    return info


def holds(uri: str, scale: Scale) -> bool:
    """Whether ``uri`` holds the generated rows of ``scale`` at our layout."""
    import psycopg

    from langgraph.checkpoint.postgres.base import MIGRATIONS

    with psycopg.connect(uri) as conn:
        (version,) = conn.execute("SELECT max(v) FROM checkpoint_migrations").fetchone()
        (count,) = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    return version == len(MIGRATIONS) - 1 and count == scale.checkpoints


def ensure_base(dsn: str, name: str, scale: Scale, rebuild: bool) -> dict[str, Any]:
    """The generated database ``name``, made unless it is there already
    with the right rows; returns what was noted when it was generated."""
    from psycopg import sql

    from langgraph.checkpoint.postgres import PostgresSaver

    wanted = {"generator": GENERATOR_VERSION, **asdict(scale)}
    info = generated_info(dsn, name) if not rebuild else None
    if info is not None and all(info.get(k) == v for k, v in wanted.items()):
        if holds(db_uri(dsn, name), scale):
            return {**info, "reused": True}
    print(f"generating {name}: {scale.checkpoints:,} checkpoints", flush=True)
    create_database(dsn, name)
    uri = db_uri(dsn, name)
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
    now = datetime.now(timezone.utc)
    timings = generate(uri, scale, now)
    info = {**wanted, "generated_at": now.isoformat(), "seconds": timings}
    with admin(dsn) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(info))
            )
        )
    print(f"generated in {timings['total']:.0f} s: {timings}", flush=True)
    return {**info, "reused": False}


def thread_ids(uri: str) -> list[str]:
    """Every thread of the generated database ``uri``, idle ones first."""
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            """SELECT thread_id FROM checkpoints GROUP BY thread_id
            ORDER BY max(checkpoint_id)"""
        ).fetchall()
    return [r[0] for r in rows]


# -- numbers ------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median and p99 (in ms) and the count of timings in seconds."""
    return {
        "n": len(seconds),
        "median_ms": statistics.median(seconds) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }


# -- a. get_tuple -------------------------------------------------------------


def measure_get_tuple(
    uri: str, small_uri: str, big_threads: Sequence[str], small_threads: Sequence[str]
) -> dict[str, Any]:
    """``get_tuple`` of the latest checkpoint of each thread, in passes over
    the threads, alternating the databases pass by pass so that a change in
    the machine's speed hits both; the first pass of each is not counted
    (it loads the threads into the cache). The first reads of other threads
    of the big database are timed apart."""
    from langgraph.checkpoint.postgres import PostgresSaver

    passes = 5
    times: dict[str, list[float]] = {"big": [], "small": []}
    with (
        PostgresSaver.from_conn_string(uri) as big,
        PostgresSaver.from_conn_string(small_uri) as small,
    ):
        sides = {"big": (big, big_threads), "small": (small, small_threads)}
        for n in range(passes):
            for side in ("big", "small") if n % 2 == 0 else ("small", "big"):
                saver, threads = sides[side]
                for thread_id in threads:
                    config = {"configurable": {"thread_id": thread_id}}
                    started = time.perf_counter()
                    found = saver.get_tuple(config)
                    elapsed = time.perf_counter() - started
                    if found is None:
                        raise RuntimeError(f"no checkpoint for {thread_id}")
                    if n > 0:
                        times[side].append(elapsed)
    return {
        "big": summary(times["big"]),
        "small": summary(times["small"]),
        "threads_read": len(big_threads),
        "passes": passes - 1,
        "ratio_median": statistics.median(times["big"])
        / statistics.median(times["small"]),
        "ratio_p99": percentile(times["big"], 99) / percentile(times["small"], 99),
    }


def measure_first_reads(uri: str, threads: Sequence[str]) -> dict[str, float]:
    """``get_tuple`` of threads not read before (their pages may not be in
    the server's buffers)."""
    from langgraph.checkpoint.postgres import PostgresSaver

    times = []
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.get_tuple({"configurable": {"thread_id": threads[0]}})  # connect
        for thread_id in threads[1:]:
            started = time.perf_counter()
            saver.get_tuple({"configurable": {"thread_id": thread_id}})
            times.append(time.perf_counter() - started)
    return summary(times)


# -- b. list with a filter ---------------------------------------------------


def list_worker() -> None:
    """Worker mode (``--worker``, in either package's interpreter): time
    ``list(None, filter={"user": u}, limit=...)`` for each user of the JSON
    request on stdin, ``rounds`` times over (the last round is reported);
    print the timings, and what the list of the ``check`` user found."""
    import importlib.metadata

    import langgraph.checkpoint.postgres as package
    from langgraph.checkpoint.postgres import PostgresSaver

    request = json.load(sys.stdin)
    versions = {}
    for dist in ("langgraph-checkpoint-postgres", "langgraph-postgres-saver"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    limit = request["limit"]

    def ids(user: str) -> list[list[str]]:
        found = saver.list(None, filter={"user": user}, limit=limit)
        return [
            [t.config["configurable"]["thread_id"], t.checkpoint["id"]] for t in found
        ]

    with PostgresSaver.from_conn_string(request["uri"]) as saver:
        # The connection, and anything a first call does once.
        ids(request["warmup"])
        for _ in range(request["rounds"]):
            times = []
            counts = []
            for user in request["users"]:
                started = time.perf_counter()
                found = list(saver.list(None, filter={"user": user}, limit=limit))
                times.append(time.perf_counter() - started)
                counts.append(len(found))
        check = ids(request["check"])
    json.dump(
        {
            "module": str(Path(package.__file__).resolve()),
            "versions": versions,
            "times": times,
            "counts": counts,
            "check": check,
        },
        sys.stdout,
    )


def run_list_worker(python: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`list_worker` under ``python`` with ``request``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    # -I: the script's folder is not on sys.path, so the package imported
    # is the interpreter's own.
    done = subprocess.run(
        [python, "-I", str(Path(__file__).resolve()), "--worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"list worker under {python} failed:\n{done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def check_package(answer: dict[str, Any], side: str) -> None:
    """Fail loudly if a worker ran the wrong package."""
    ours = ROOT / "langgraph" in Path(answer["module"]).parents
    versions = answer["versions"]
    if side == "ours" and not ours:
        raise RuntimeError(f"ours ran {answer['module']}, not this checkout")
    if side == "baseline" and (
        ours or versions.get("langgraph-checkpoint-postgres") != "3.2.0"
    ):
        raise RuntimeError(f"the baseline ran {answer['module']} ({versions})")


#: Rows each list returns.
LIST_LIMIT = 20


@dataclass
class ListRun:
    """The timed lists of one package on one database."""

    side: str
    database: str
    cached: bool
    times: list[float]
    check: list[list[str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "database": self.database,
            "cached": self.cached,
            **summary(self.times),
        }


class Users:
    """The users the lists ask for, each once (while there are enough), so
    that a timed list finds its rows where a first list would: not in the
    server's buffers. The first is the warm-up's, the second the one whose
    list every run returns for comparison."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self._users = [f"user-{u}" for u in rng.sample(range(count), count)]
        self._next = 2
        self.warmup, self.check = self._users[0], self._users[1 % count]

    def take(self, n: int) -> list[str]:
        """``n`` users not taken before (cycling when they run out)."""
        out = []
        for _ in range(n):
            if self._next >= len(self._users):
                self._next = 0
            out.append(self._users[self._next])
            self._next += 1
        return out


def measure_list(
    python: str,
    side: str,
    uri: str,
    database: str,
    users: Sequence[str],
    warmup: str,
    check: str,
    rounds: int = 1,
) -> ListRun:
    """Time one package's lists on one database (the last of ``rounds``
    rounds over ``users``: a second round finds the rows cached)."""
    request = {
        "uri": uri,
        "users": list(users),
        "warmup": warmup,
        "check": check,
        "limit": LIST_LIMIT,
        "rounds": rounds,
    }
    answer = run_list_worker(python, request)
    check_package(answer, side)
    if any(n != LIST_LIMIT for n in answer["counts"]):
        raise RuntimeError(f"{side} listed {answer['counts']} checkpoints")
    return ListRun(side, database, rounds > 1, answer["times"], answer["check"])


# -- c. a sweep under a graph workload ----------------------------------------


@contextmanager
def _threads(
    args: Sequence[tuple[Any, ...]], target: Any, stop: threading.Event
) -> Iterator[None]:
    """Run ``target(*a)`` on a daemon thread for each ``a`` of ``args`` while
    the block runs; then set ``stop`` and wait for them."""
    threads = [threading.Thread(target=target, args=a, daemon=True) for a in args]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


class GraphWorkload:
    """A few threads invoking the agent graph through one pooled saver,
    each on threads of its own, noting when each invoke started and how
    long it took."""

    def __init__(self, uri: str, workers: int) -> None:
        self.uri = uri
        self.workers = workers
        self.invokes: list[tuple[float, float]] = []  # (started, seconds)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()

    def _run(self, worker: int, graph: Any) -> None:
        try:
            n = 0
            while not self._stop.is_set():
                # A new thread every 4 turns, as conversations end.
                thread_id = f"live-{worker}-{n // 4}-{uuid.uuid4().hex[:6]}"
                for turn in range(4):
                    if self._stop.is_set():
                        break
                    config = {
                        "configurable": {"thread_id": thread_id},
                        "metadata": {"user": f"user-{worker}"},
                    }
                    started = time.perf_counter()
                    graph.invoke(turn_input(turn), config)
                    self.invokes.append((started, time.perf_counter() - started))
                    n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.errors.append(exc)

    @contextmanager
    def running(self) -> Iterator[GraphWorkload]:
        from langgraph.checkpoint.postgres import PostgresSaver

        pool = {"min_size": self.workers, "max_size": self.workers}
        with PostgresSaver.from_conn_string(self.uri, pool_config=pool) as saver:
            graph = agent_graph(saver)
            with _threads(
                [(w, graph) for w in range(self.workers)], self._run, self._stop
            ):
                yield self
        if self.errors:
            raise RuntimeError(f"the graph workload failed: {self.errors[0]!r}")

    def between(self, start: float, end: float) -> list[float]:
        """Latencies of the invokes started in [start, end)."""
        return [s for t, s in self.invokes if start <= t < end]


def measure_sweep(
    uri: str, scale: Scale, generated_at: datetime, phase_seconds: float
) -> dict[str, Any]:
    """A delete sweep of the idle threads while the graph workload runs,
    between two phases of the workload alone."""
    from langgraph.checkpoint.postgres import PostgresSaver

    # Idle threads are 14+ days older than the generation; recent ones a day.
    age = datetime.now(timezone.utc) - generated_at
    ttl_minutes = SWEEP_TTL_DAYS * 24 * 60 + age.total_seconds() / 60
    retention = {
        "strategy": "delete",
        "default_ttl": ttl_minutes,
        "sweep_limit": SWEEP_LIMIT,
    }
    workload = GraphWorkload(uri, workers=3)
    with (
        PostgresSaver.from_conn_string(uri, retention=retention) as sweeper,
        workload.running(),
    ):
        time.sleep(1)  # the pool fills, the graphs warm up
        before_start = time.perf_counter()
        time.sleep(phase_seconds)
        sweep_start = time.perf_counter()
        result = sweeper.sweep()
        sweep_end = time.perf_counter()
        time.sleep(phase_seconds)
        after_end = time.perf_counter()
    alone = workload.between(before_start, sweep_start)
    alone += workload.between(sweep_end, after_end)
    during = workload.between(sweep_start, sweep_end)
    seconds = sweep_end - sweep_start
    return {
        "ttl_minutes": ttl_minutes,
        "sweep_limit": SWEEP_LIMIT,
        "seconds": seconds,
        "threads": result.threads,
        "checkpoints": result.checkpoints,
        "writes": result.writes,
        "blobs": result.blobs,
        "skipped": result.skipped,
        "checkpoints_per_second": result.checkpoints / seconds,
        "workers": workload.workers,
        "alone": summary(alone),
        "during": summary(during) if during else None,
        "p99_ratio": (percentile(during, 99) / percentile(alone, 99))
        if during
        else None,
    }


# -- d. setup() while writers write -------------------------------------------


class Writers:
    """Threads that each store checkpoints (``put``, then ``put_writes``)
    on a connection of their own, noting when each call started and how
    long it took."""

    def __init__(self, uri: str, count: int, users: int) -> None:
        self.uri = uri
        self.count = count
        self.users = users
        self.calls: list[tuple[float, float]] = []  # (started, seconds)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()

    def _run(self, worker: int) -> None:
        from langgraph.checkpoint.base import empty_checkpoint

        from langgraph.checkpoint.postgres import PostgresSaver

        try:
            with PostgresSaver.from_conn_string(self.uri) as saver:
                n = 0
                while not self._stop.is_set():
                    thread_id = f"writer-{worker}-{n // 10}"
                    checkpoint = empty_checkpoint()
                    checkpoint["channel_values"] = {"messages": [f"m{n}"] * 8}
                    checkpoint["channel_versions"] = {"messages": f"{n + 1}"}
                    metadata = {
                        "source": "loop",
                        "step": n % 10,
                        "parents": {},
                        "user": f"user-{(worker * 7919 + n) % self.users}",
                    }
                    config = {"configurable": {"thread_id": thread_id}}
                    versions = dict(checkpoint["channel_versions"])
                    started = time.perf_counter()
                    stored = saver.put(config, checkpoint, metadata, versions)
                    between = time.perf_counter()
                    saver.put_writes(stored, [("messages", ["w"])], f"task-{n}")
                    done = time.perf_counter()
                    self.calls.append((started, between - started))
                    self.calls.append((between, done - between))
                    n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.errors.append(exc)

    @contextmanager
    def running(self) -> Iterator[Writers]:
        with _threads([(w,) for w in range(self.count)], self._run, self._stop):
            yield self
        if self.errors:
            raise RuntimeError(f"a writer failed: {self.errors[0]!r}")

    def started_between(self, start: float, end: float) -> list[float]:
        return [s for t, s in self.calls if start <= t < end]

    def overlapping(self, start: float, end: float) -> list[float]:
        """Latencies of the calls that were running at some point in
        [start, end]."""
        return [s for t, s in self.calls if t <= end and t + s >= start]


def to_version_11(uri: str) -> None:
    """Make the copy ``uri`` what version 11 left: no metadata index."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {METADATA_INDEX}")
        conn.execute(
            "DELETE FROM checkpoint_migrations WHERE v = %s", (METADATA_VERSION,)
        )


def measure_setup(uri: str, scale: Scale, phase_seconds: float) -> dict[str, Any]:
    """``setup()`` on the version-11 copy ``uri`` while writers write, between
    two phases of the writers alone (without, then with the index)."""
    import psycopg

    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.base import MIGRATIONS

    writers = Writers(uri, count=3, users=scale.users)
    with PostgresSaver.from_conn_string(uri) as saver, writers.running():
        time.sleep(1)  # connections open, statements prepared
        before_start = time.perf_counter()
        time.sleep(phase_seconds)
        setup_start = time.perf_counter()
        saver.setup()
        setup_end = time.perf_counter()
        time.sleep(phase_seconds)
        after_end = time.perf_counter()
    with psycopg.connect(uri) as conn:
        (valid,) = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (METADATA_INDEX,),
        ).fetchone()
        (version,) = conn.execute("SELECT max(v) FROM checkpoint_migrations").fetchone()
    if not valid or version != len(MIGRATIONS) - 1:
        raise RuntimeError(f"setup() left index valid={valid}, version {version}")
    during = writers.overlapping(setup_start, setup_end)
    return {
        "seconds": setup_end - setup_start,
        "writers": writers.count,
        "writes_during": len(during),
        "longest_wait_s": max(during) if during else 0.0,
        "before": summary(writers.started_between(before_start, setup_start)),
        "after": summary(writers.started_between(setup_end, after_end)),
    }


# -- e. sizes ----------------------------------------------------------------

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def sizes(uri: str) -> dict[str, int]:
    """Bytes of each saver table (heap and TOAST) and each of its indexes,
    and the total (``pg_total_relation_size``)."""
    import psycopg

    out: dict[str, int] = {}
    with psycopg.connect(uri) as conn:
        for table in TABLES:
            (size,) = conn.execute("SELECT pg_table_size(%s)", (table,)).fetchone()
            out[f"{table} (table)"] = int(size)
            rows = conn.execute(
                """SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x
                JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = to_regclass(%s) ORDER BY i.relname""",
                (table,),
            ).fetchall()
            out.update({name: int(size) for name, size in rows})
        (total,) = conn.execute(
            "SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::regclass[]) t",
            (list(TABLES),),
        ).fetchone()
        out["total"] = int(total)
    return out


def row_counts(uri: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(uri) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in TABLES
        }


def free_space(uri: str) -> int | None:
    """Bytes the free space map records as reusable in the saver's tables
    (``pg_freespacemap``), or ``None`` when the server lacks the extension."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_freespacemap")
        except psycopg.Error:
            return None
        total = 0
        for table in TABLES:
            (avail,) = conn.execute(
                "SELECT coalesce(sum(avail), 0) FROM pg_freespace(%s::regclass)",
                (table,),
            ).fetchone()
            total += int(avail)
        return total


def vacuum(uri: str, full: bool) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(uri, autocommit=True) as conn:
        option = "FULL, ANALYZE" if full else "ANALYZE"
        conn.execute(f"VACUUM ({option}) {', '.join(TABLES)}")
    return time.perf_counter() - started


# -- the run --------------------------------------------------------------------


@dataclass
class Report:
    """Every figure of a run, and how it was obtained."""

    info: dict[str, Any] = field(default_factory=dict)
    get_tuple: dict[str, Any] = field(default_factory=dict)
    lists: list[dict[str, Any]] = field(default_factory=list)
    list_ratio: float | None = None
    list_ratio_cached: float | None = None
    sweep: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    free_after_vacuum: int | None = None
    vacuum_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)


def baseline_python(args: argparse.Namespace) -> str | None:
    """The interpreter of the existing package, ``None`` with
    ``--no-baseline``; made by bench/run.py's ``ensure_baseline()`` unless
    ``--baseline-python`` names one."""
    if args.no_baseline:
        return None
    if args.baseline_python:
        # Absolute, not resolved: a virtualenv's python is a symlink.
        return os.path.abspath(args.baseline_python)
    bench_run = _bench_run()
    bench_run.ensure_baseline()
    return str(bench_run.BASELINE_PY)


def _bench_run() -> Any:
    """bench/run.py, the side-by-side benchmark, whose baseline virtualenv
    and revision stamp this one shares."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    import run as bench_run

    return bench_run


def revision() -> str:
    """The checkout's commit, marked when the package has local changes."""
    return str(_bench_run().our_revision())


def run(args: argparse.Namespace) -> Report:
    scale = Scale(args.checkpoints, args.threads, args.users, args.idle_share)
    scale.check()
    dsn, name = args.dsn, args.db
    report = Report()
    baseline = baseline_python(args)
    ours = str(ROOT / ".venv" / "bin" / "python")
    if not Path(ours).exists():
        ours = sys.executable
    with admin(dsn) as conn:
        server = conn.execute("SELECT version()").fetchone()[0]
        settings = {
            s: conn.execute(f"SHOW {s}").fetchone()[0]
            for s in ("shared_buffers", "autovacuum", "fsync")
        }
    started = time.perf_counter()
    generated = ensure_base(dsn, name, scale, args.rebuild)
    base = db_uri(dsn, name)
    report.info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": revision(),
        "server": server,
        "settings": settings,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": f"{os.getloadavg()[0]:.2f}",
        "scale": asdict(scale),
        "per_thread": scale.per_thread,
        "generated": generated,
        "baseline": baseline,
    }
    generated_at = datetime.fromisoformat(generated["generated_at"])
    report.sizes["generated"] = sizes(base)
    report.rows["generated"] = row_counts(base)
    threads = thread_ids(base)
    rng = random.Random(18)
    # Threads read by a., then threads not read before.
    shuffled = rng.sample(threads, len(threads))

    # a. get_tuple, against a database of only the threads read.
    sample = min(200, scale.threads)
    print("a. get_tuple", flush=True)
    small = Scale(sample * scale.per_thread, sample, 1, scale.idle_share)
    small_name = f"{name}_small"
    create_database(dsn, small_name)
    try:
        from langgraph.checkpoint.postgres import PostgresSaver

        small_uri = db_uri(dsn, small_name)
        with PostgresSaver.from_conn_string(small_uri) as saver:
            saver.setup()
        generate(small_uri, small, datetime.now(timezone.utc))
        report.get_tuple = measure_get_tuple(
            base, small_uri, shuffled[:sample], thread_ids(small_uri)
        )
    finally:
        drop_database(dsn, small_name)
    # At least two: the first read opens the connection.
    first = shuffled[sample : sample + 500] or shuffled[:2]
    report.get_tuple["first_reads"] = measure_first_reads(base, first)

    # b. list(None, filter={"user": ...}, limit=20).
    print("b. list with a filter", flush=True)
    # 200 calls where a call takes milliseconds, 20 where it scans the table;
    # each run's users are its own, so that no run reads rows another left
    # in the cache (but one, on purpose: "cached").
    users = Users(scale.users, rng)
    ours_fresh = users.take(200)
    once = {"warmup": users.warmup, "check": users.check}
    runs = [measure_list(ours, "ours", base, "with index", ours_fresh, **once)]
    runs.append(
        measure_list(
            ours, "ours", base, "with index", ours_fresh[:20], **once, rounds=2
        )
    )
    if baseline:
        runs.append(
            measure_list(
                baseline, "baseline", base, "with index", users.take(20), **once
            )
        )
    with database_copy(dsn, name, f"{name}_v11") as (v11, copy_seconds):
        report.info["copy_seconds"] = copy_seconds
        to_version_11(v11)
        with admin(v11) as conn:
            conn.execute("ANALYZE checkpoints")
        runs.append(measure_list(ours, "ours", v11, "no index", users.take(20), **once))
        if baseline:
            runs.append(
                measure_list(
                    baseline, "baseline", v11, "no index", users.take(20), **once
                )
            )
        if len({json.dumps(r.check) for r in runs}) != 1:
            raise RuntimeError("the lists of one user found different checkpoints")

        # d. setup() while writers write, on the same copy.
        print("d. setup() while writers write", flush=True)
        report.setup = measure_setup(v11, scale, args.phase_seconds)
    report.lists = [r.as_json() for r in runs]
    if baseline:
        scan = [r for r in runs if r.side == "baseline" and r.database == "no index"]
        report.list_ratio = statistics.median(scan[0].times) / statistics.median(
            runs[0].times
        )
        report.list_ratio_cached = statistics.median(scan[0].times) / statistics.median(
            runs[1].times
        )

    # c. a sweep under a graph workload; e. sizes after it and VACUUM.
    print("c. sweep under a graph workload", flush=True)
    with database_copy(dsn, name, f"{name}_sweep") as (swept, _):
        report.sweep = measure_sweep(swept, scale, generated_at, args.phase_seconds)
        report.sizes["after sweep"] = sizes(swept)
        report.rows["after sweep"] = row_counts(swept)
        print("e. VACUUM, VACUUM FULL", flush=True)
        report.vacuum_seconds["VACUUM"] = vacuum(swept, full=False)
        report.sizes["after VACUUM"] = sizes(swept)
        report.free_after_vacuum = free_space(swept)
        report.vacuum_seconds["VACUUM FULL"] = vacuum(swept, full=True)
        report.sizes["after VACUUM FULL"] = sizes(swept)
    if args.drop:
        drop_database(dsn, name)
    report.info["seconds"] = time.perf_counter() - started
    report.info["load_average_end"] = f"{os.getloadavg()[0]:.2f}"
    return report


# -- the report ---------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"


def _mb(value: int) -> str:
    return f"{value / 2**20:,.1f} MB"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def render(report: Report) -> str:
    """The report as Markdown (the section of bench/RESULTS.md)."""
    info = report.info
    scale = info["scale"]
    gen = info["generated"]
    gen_seconds = gen["seconds"]["total"]
    lines = [
        f"## Scale: {scale['checkpoints']:,} checkpoints over "
        f"{scale['threads']:,} threads (`make bench-scale`)",
        "",
        f"Run {info['date']}, revision {info['revision']}, on {info['machine']} "
        f"(load average {info['load_average']} at the start, "
        f"{info['load_average_end']} at the end); {info['server']} "
        f"(shared_buffers {info['settings']['shared_buffers']}, autovacuum "
        f"{info['settings']['autovacuum']}, fsync {info['settings']['fsync']}). "
        f"The whole run took {info['seconds']:.0f} s.",
        "",
        f"The database: {info['per_thread']} checkpoints per thread with their "
        f"blobs and writes, {scale['users']:,} users, "
        f"{scale['idle_share']:.0%} of the threads idle for 14-42 days, the others "
        f"active during the last day. "
        + (
            f"Reused, as generated on {gen['generated_at'][:16]} "
            f"in {gen_seconds:.0f} s."
            if gen["reused"]
            else f"Generated by this run in {gen_seconds:.0f} s."
        )
        + " Steps: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in gen["seconds"].items() if k != "total")
        + ". Rows: "
        + ", ".join(f"{t} {n:,}" for t, n in report.rows["generated"].items())
        + ".",
        "",
    ]
    g = report.get_tuple
    ok = g["ratio_median"] <= GET_TUPLE_TARGET
    lines += [
        "### a. `get_tuple` (latest checkpoint of a thread)",
        "",
        f"{g['threads_read']} threads read in {g['passes']} passes (after one to "
        "warm the cache), alternating with a database that holds only those "
        "threads (the same rows).",
        "",
        "| database | reads | median | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| {scale['checkpoints']:,} checkpoints | {g['big']['n']:,} | "
        f"{_ms(g['big']['median_ms'])} | {_ms(g['big']['p99_ms'])} |",
        f"| only the threads read | {g['small']['n']:,} | "
        f"{_ms(g['small']['median_ms'])} | {_ms(g['small']['p99_ms'])} |",
        f"| {scale['checkpoints']:,} checkpoints, first read of a thread | "
        f"{g['first_reads']['n']:,} | {_ms(g['first_reads']['median_ms'])} | "
        f"{_ms(g['first_reads']['p99_ms'])} |",
        "",
        f"Ratio (median): {g['ratio_median']:.2f}x (p99: {g['ratio_p99']:.2f}x). "
        f"Target: within {GET_TUPLE_TARGET}x: {_met(ok)}.",
        "",
        '### b. `list(None, filter={"user": ...}, limit=20)`',
        "",
        "Each package in a process of its own interpreter, on the same rows. "
        "Each call asks for a user no call asked for before, so that the rows "
        "it reads are not in the server's buffers yet (they are in the "
        "operating system's cache), except in the rows marked cached: the "
        "same 20 users a second time. 3.2.0 creates no index on metadata: its "
        "own layout is the copy without ours.",
        "",
        "| package | database | users | calls | median | p99 |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    names = {"ours": "ours", "baseline": "3.2.0"}
    for r in report.lists:
        fresh = "listed before (cached)" if r["cached"] else "not listed before"
        lines.append(
            f"| {names[r['side']]} | {r['database']} | {fresh} | {r['n']} | "
            f"{_ms(r['median_ms'])} | {_ms(r['p99_ms'])} |"
        )
    lines.append("")
    if report.list_ratio is None:
        lines.append("3.2.0 not run (`--no-baseline`).")
    else:
        ok = report.list_ratio >= LIST_TARGET
        cached = report.list_ratio_cached or 0.0
        lines.append(
            "Ours with the index, users not listed before, against 3.2.0 on its "
            f"layout (no index), median: {report.list_ratio:,.0f}x faster "
            f"({cached:,.0f}x for users listed before). Target: "
            f"{LIST_TARGET:.0f}x or more: {_met(ok)}."
        )
    s = report.sweep
    lines += [
        "",
        "### c. A retention sweep under a graph workload",
        "",
        f'On a copy: `retention={{"strategy": "delete", "default_ttl": '
        f"{s['ttl_minutes']:,.0f}}}` (a week past the generation; "
        f"`sweep_limit` {s['sweep_limit']}), one `sweep()`, while "
        f"{s['workers']} threads invoke the agent graph (5 checkpoints per "
        "invoke) through one pooled `PostgresSaver`; the same workload alone "
        f"for {report.info.get('phase_seconds', 0):.0f} s before and after.",
        "",
        "| removed | threads | checkpoints | writes | blobs | skipped | seconds | "
        "checkpoints/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| | {s['threads']:,} | {s['checkpoints']:,} | {s['writes']:,} | "
        f"{s['blobs']:,} | {s['skipped']:,} | {s['seconds']:.1f} | "
        f"{s['checkpoints_per_second']:,.0f} |",
        "",
        "| graph invokes | invokes | median | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| alone | {s['alone']['n']:,} | {_ms(s['alone']['median_ms'])} | "
        f"{_ms(s['alone']['p99_ms'])} |",
    ]
    if s["during"]:
        d = s["during"]
        lines.append(
            f"| during the sweep | {d['n']:,} | {_ms(d['median_ms'])} | "
            f"{_ms(d['p99_ms'])} |"
        )
        ok = s["p99_ratio"] <= SWEEP_P99_TARGET
        lines += [
            "",
            f"p99 during the sweep: {s['p99_ratio']:.2f}x the p99 alone. Target: "
            f"within {SWEEP_P99_TARGET:.0f}x: {_met(ok)}.",
        ]
    else:
        lines += ["", "The sweep ended before any invoke started during it."]
    u = report.setup
    ok = u["longest_wait_s"] <= SETUP_WAIT_TARGET
    lines += [
        "",
        "### d. `setup()` on a populated database while writers write",
        "",
        "On a copy at version 11 (the metadata index dropped, its version row "
        f"deleted): {u['writers']} writers, each on its own connection, store "
        "checkpoints (`put`, then `put_writes`) before, during and after "
        "`setup()`, which builds the index `CONCURRENTLY`.",
        "",
        f"`setup()` took {u['seconds']:.1f} s; {u['writes_during']:,} writes ran "
        f"during it; the longest of them took {u['longest_wait_s'] * 1000:,.0f} ms. "
        f"Target: no writer waits more than {SETUP_WAIT_TARGET:.0f} s: {_met(ok)}.",
        "",
        "| writes | calls | median | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| before `setup()` (no metadata index) | {u['before']['n']:,} | "
        f"{_ms(u['before']['median_ms'])} | {_ms(u['before']['p99_ms'])} |",
        f"| after `setup()` (with it) | {u['after']['n']:,} | "
        f"{_ms(u['after']['median_ms'])} | {_ms(u['after']['p99_ms'])} |",
        "",
        "### e. Table and index sizes",
        "",
    ]
    stages = list(report.sizes)
    lines += [
        "| relation | " + " | ".join(stages) + " |",
        "| --- |" + " ---: |" * len(stages),
    ]
    keys = list(report.sizes["generated"])
    for key in keys:
        cells = [_mb(report.sizes[stage].get(key, 0)) for stage in stages]
        label = f"**{key}**" if key == "total" else f"`{key}`"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    free = report.free_after_vacuum
    vac = report.vacuum_seconds
    after = report.rows["after sweep"]
    lines += [
        "",
        "Rows after the sweep: "
        + ", ".join(f"{t} {n:,}" for t, n in after.items())
        + f". `VACUUM` took {vac['VACUUM']:.1f} s and `VACUUM FULL` "
        f"{vac['VACUUM FULL']:.1f} s. Plain `VACUUM` gives no space back to the "
        "operating system (except empty pages at the very end of a table): it "
        "marks the dead rows' space free for new rows of the same table"
        + (
            f" ({_mb(free)} of the tables' pages, by `pg_freespacemap`)"
            if free is not None
            else ""
        )
        + ". `VACUUM FULL` rewrites the tables and indexes, which shrinks the "
        "files, but locks each table for the whole rewrite.",
    ]
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path = RESULTS) -> None:
    """Put ``text`` between the scale markers of ``path`` (appending the
    markers at the end if they are missing); the rest is left as it is."""
    content = path.read_text() if path.exists() else ""
    block = f"{BEGIN_MARKER}\n{text.rstrip()}\n{END_MARKER}"
    begin = content.find(BEGIN_MARKER)
    end = content.find(END_MARKER, begin + 1) if begin >= 0 else -1
    if begin >= 0 and end >= 0:
        content = content[:begin] + block + content[end + len(END_MARKER) :]
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(content)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a database on the server")
    parser.add_argument("--db", default=DEFAULT_DB, help="the generated database")
    parser.add_argument("--checkpoints", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument(
        "--users", type=int, default=None, help="default: one per 10 threads"
    )
    parser.add_argument("--idle-share", type=float, default=0.3)
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=10.0,
        help="how long the workloads of c and d run alone, before and after",
    )
    parser.add_argument("--rebuild", action="store_true", help="generate it again")
    parser.add_argument("--drop", action="store_true", help="drop it at the end")
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="make the database, measure nothing",
    )
    parser.add_argument("--write", action="store_true", help="update RESULTS.md")
    parser.add_argument("--json", type=Path, help="also save the figures as JSON")
    parser.add_argument(
        "--baseline-python",
        type=Path,
        help="a python with langgraph-checkpoint-postgres 3.2.0 "
        "(default: bench/.venv-baseline, made if missing)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.users is None:
        args.users = max(1, args.threads // 10)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        list_worker()
        return 0
    if args.generate_only:
        scale = Scale(args.checkpoints, args.threads, args.users, args.idle_share)
        scale.check()
        info = ensure_base(args.dsn, args.db, scale, args.rebuild)
        print(json.dumps(info, indent=2))
        return 0
    report = run(args)
    report.info["phase_seconds"] = args.phase_seconds
    text = render(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str))
    if args.write:
        write_results(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
