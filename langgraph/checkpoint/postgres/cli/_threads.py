"""``threads`` and ``history``: which threads exist, and a thread's checkpoints.

``threads`` is SQL only: counts and first/last checkpoint ids come from the
checkpoints' primary key alone (an index-only scan, no blob is read), and the
shown page's namespaces, times and sizes are looked up for those threads only.
``history`` decodes a page of checkpoints through the saver, as LangGraph's
``get_state_history`` does, to name next nodes, sends and interrupts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import click
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from langgraph.checkpoint.postgres.cli._app import PROG, Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._output import human_bytes
from langgraph.checkpoint.postgres.cli._sizes import row_bytes
from langgraph.checkpoint.postgres.cli._state import (
    RESUME,
    interrupt_values,
    next_nodes,
    parse_metadata_filters,
    parse_since,
    pending_sends,
    uuid6_floor,
)

# One row per thread from the primary key (thread_id, checkpoint_ns,
# checkpoint_id) alone. First/last are the smallest/greatest checkpoint ids:
# LangGraph's ids are uuid6, ordered by the time they were made.
THREADS_SQL = """
WITH agg AS (
    SELECT thread_id, count(*) AS checkpoints,
        min(checkpoint_id) AS first_id, max(checkpoint_id) AS last_id
    FROM {checkpoints}
    {where}
    GROUP BY thread_id
    {having}
)
SELECT *, count(*) OVER () AS total FROM agg
ORDER BY {order}
{limit}
"""
# Threads with any checkpoint whose metadata contains the filter: answered by
# checkpoints_metadata_idx (GIN, jsonb_path_ops), which serves only @>.
METADATA_WHERE = (
    "WHERE thread_id IN (SELECT thread_id FROM {checkpoints} "
    "WHERE metadata @> %(metadata)s)"
)
SINCE_HAVING = "HAVING max(checkpoint_id) >= %(since_id)s"
ORDERS = {
    "last": "last_id DESC, thread_id",
    "first": "first_id DESC, thread_id",
    "checkpoints": "checkpoints DESC, thread_id",
    "thread": "thread_id",
    # Sizes are summed afterwards, for the threads kept; see _thread_rows.
    "size": "thread_id",
}
NAMESPACES_SQL = """
SELECT thread_id, checkpoint_ns, count(*) AS checkpoints
FROM {checkpoints} WHERE thread_id = ANY(%(threads)s)
GROUP BY thread_id, checkpoint_ns ORDER BY thread_id, checkpoint_ns
"""
TIMES_SQL = """
SELECT thread_id, checkpoint_id, checkpoint ->> 'ts' AS ts
FROM {checkpoints}
WHERE thread_id = ANY(%(threads)s) AND checkpoint_id = ANY(%(ids)s)
"""
# A thread's bytes, as _sizes.row_bytes measures a row.
SIZES_SQL = f"""
SELECT thread_id, sum(bytes)::bigint AS size FROM (
    SELECT thread_id, {row_bytes("checkpoints")} AS bytes
    FROM {{checkpoints}} WHERE thread_id = ANY(%(threads)s)
    UNION ALL
    SELECT thread_id, {row_bytes("blobs")}
    FROM {{checkpoint_blobs}} WHERE thread_id = ANY(%(threads)s)
    UNION ALL
    SELECT thread_id, {row_bytes("writes")}
    FROM {{checkpoint_writes}} WHERE thread_id = ANY(%(threads)s)
) AS thread_rows GROUP BY thread_id
"""
THREAD_EXISTS_SQL = "SELECT 1 FROM {checkpoints} WHERE thread_id = %(thread)s LIMIT 1"
CHECKPOINT_EXISTS_SQL = """
SELECT checkpoint_ns FROM {checkpoints}
WHERE thread_id = %(thread)s AND checkpoint_id = %(id)s
"""

SORTS = tuple(ORDERS)


def _tables(env: Env) -> dict[str, sql.Composable]:
    names = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    return {name: env.table(name) for name in names}


def threads_statement(
    env: Env, *, metadata: bool, since: bool, sort: str, limited: bool
) -> sql.Composed:
    """The page query of ``threads`` for the filters given."""
    tables = _tables(env)
    where = sql.SQL(METADATA_WHERE).format(**tables) if metadata else sql.SQL("")
    return sql.SQL(THREADS_SQL).format(
        where=where,
        having=sql.SQL(SINCE_HAVING if since else ""),
        order=sql.SQL(ORDERS[sort]),
        limit=sql.SQL("LIMIT %(limit)s" if limited else ""),
        **tables,
    )


def thread_row(
    agg: Mapping[str, Any],
    namespaces: Sequence[str],
    times: Mapping[str, str | None],
    size: int | None,
) -> dict[str, Any]:
    """One thread as ``threads`` prints it.

    >>> thread_row({"thread_id": "t", "checkpoints": 3, "first_id": "a",
    ...             "last_id": "b"}, ["", "sub:1"], {"a": "T1", "b": "T2"}, 10)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'thread_id': 't', 'checkpoints': 3, 'namespaces': ['', 'sub:1'],
     'first_activity': 'T1', 'last_activity': 'T2', 'size_bytes': 10,
     'first_checkpoint_id': 'a', 'last_checkpoint_id': 'b'}
    """
    return {
        "thread_id": agg["thread_id"],
        "checkpoints": agg["checkpoints"],
        "namespaces": list(namespaces),
        "first_activity": times.get(agg["first_id"]),
        "last_activity": times.get(agg["last_id"]),
        "size_bytes": size,
        "first_checkpoint_id": agg["first_id"],
        "last_checkpoint_id": agg["last_id"],
    }


def _thread_rows(
    env: Env, conn: Any, params: dict[str, Any], *, sort: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    by_size = sort == "size"
    statement = threads_statement(
        env,
        metadata="metadata" in params,
        since="since_id" in params,
        sort=sort,
        limited=not by_size,
    )
    aggs = conn.execute(statement, {**params, "limit": limit}).fetchall()
    total = aggs[0]["total"] if aggs else 0
    tables = _tables(env)

    def sizes(ids: list[str]) -> dict[str, int]:
        rows = conn.execute(sql.SQL(SIZES_SQL).format(**tables), {"threads": ids})
        return {r["thread_id"]: r["size"] for r in rows}

    if by_size:
        # Every kept thread's size is needed to pick the biggest: this reads
        # the index entries and size headers of all their rows.
        size_of = sizes([a["thread_id"] for a in aggs])
        aggs.sort(key=lambda a: (-size_of.get(a["thread_id"], 0), a["thread_id"]))
        aggs = aggs[:limit]
    else:
        size_of = sizes([a["thread_id"] for a in aggs])
    ids = [a["thread_id"] for a in aggs]
    namespaces: dict[str, list[str]] = {}
    for row in conn.execute(sql.SQL(NAMESPACES_SQL).format(**tables), {"threads": ids}):
        namespaces.setdefault(row["thread_id"], []).append(row["checkpoint_ns"])
    checkpoint_ids = [a["first_id"] for a in aggs] + [a["last_id"] for a in aggs]
    times: dict[tuple[str, str], str] = {}
    for row in conn.execute(
        sql.SQL(TIMES_SQL).format(**tables), {"threads": ids, "ids": checkpoint_ids}
    ):
        times[(row["thread_id"], row["checkpoint_id"])] = row["ts"]
    rows = [
        thread_row(
            agg,
            namespaces.get(agg["thread_id"], []),
            {
                cid: times.get((agg["thread_id"], cid))
                for cid in (agg["first_id"], agg["last_id"])
            },
            size_of.get(agg["thread_id"], 0),
        )
        for agg in aggs
    ]
    return rows, total


def _short_time(ts: str | None) -> str:
    """``ts`` to the second, for a table cell.

    >>> _short_time("2026-12-06T18:10:23.578821+00:00")
    '2026-12-06 18:10:23+00:00'
    """
    if not ts:
        return ""
    try:
        return datetime.fromisoformat(ts).isoformat(sep=" ", timespec="seconds")
    except ValueError:
        return ts


def _namespace_cell(namespaces: Sequence[str]) -> str:
    """Namespaces for a table cell: the root as ``(root)``, then the others'
    count (their names hold task ids).

    >>> _namespace_cell(["", "work:1", "work:2"])
    '(root) +2'
    """
    parts = ["(root)"] if "" in namespaces else []
    others = [ns for ns in namespaces if ns]
    if others:
        parts.append(f"+{len(others)}" if parts else f"{len(others)} child")
    return " ".join(parts)


@click.command("threads")
@click.option(
    "--since",
    metavar="AGE|DATE",
    help="Only threads active since then: an age (30m, 12h, 7d, 2w) or an ISO "
    "date/time (UTC unless it says otherwise).",
)
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only threads with a checkpoint whose metadata has KEY=VALUE (a string; "
    "KEY:=JSON for a number, boolean or null). Repeat to require several.",
)
@click.option(
    "--sort",
    type=click.Choice(SORTS),
    default="last",
    show_default=True,
    help="Order: latest activity, first activity, most checkpoints, biggest "
    "(slower: sums every kept thread), or thread id.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Threads to list.",
)
@common_options
@pass_env
def threads_command(
    env: Env, since: str | None, metadata: tuple[str, ...], sort: str, limit: int
) -> None:
    """List threads: checkpoints, namespaces, first/last activity and size.

    One row per thread, most recently active first. Activity is the `ts` of
    its first and last checkpoint; recency is judged by checkpoint id (a
    uuid6, ordered by time). Size is the stored (compressed) bytes of every
    column of the thread's checkpoint, blob and write rows, without row
    headers and indexes: the bytes stats and prune count for it too. SQL
    only: no value is decoded.

    --json prints {"threads": [{"thread_id", "checkpoints", "namespaces",
    "first_activity", "last_activity", "size_bytes", "first_checkpoint_id",
    "last_checkpoint_id"}], "total": threads matching, "limit", "sort"}.

    \b
    Examples:
      langgraph-postgres threads
      langgraph-postgres threads --since 7d --metadata user=alice
      langgraph-postgres threads --sort size --limit 10 --json
    """
    params: dict[str, Any] = {}
    if metadata:
        params["metadata"] = Jsonb(parse_metadata_filters(metadata))
    if since:
        params["since_id"] = uuid6_floor(parse_since(since, datetime.now(timezone.utc)))
    with env.connect() as conn:
        rows, total = _thread_rows(env, conn, params, sort=sort, limit=limit)

    def human() -> None:
        env.out.table(
            [
                {
                    **row,
                    "namespaces": _namespace_cell(row["namespaces"]),
                    "first_activity": _short_time(row["first_activity"]),
                    "last_activity": _short_time(row["last_activity"]),
                    "size_bytes": human_bytes(row["size_bytes"]),
                }
                for row in rows
            ],
            [
                ("thread_id", "thread"),
                "checkpoints",
                "namespaces",
                ("first_activity", "first activity"),
                ("last_activity", "last activity"),
                ("size_bytes", "size"),
            ],
            empty="(no threads)",
        )
        if total > len(rows):
            env.out.line(
                f"{len(rows)} of {total} threads; --limit shows more", style="dim"
            )

    env.out.emit({"threads": rows, "total": total, "limit": limit, "sort": sort}, human)


# -- history -----------------------------------------------------------------


def require_thread(env: Env, conn: Any, thread_id: str) -> None:
    """Fail with a hint when no checkpoint of ``thread_id`` exists."""
    statement = sql.SQL(THREAD_EXISTS_SQL).format(**_tables(env))
    if (
        conn.cursor(row_factory=dict_row)
        .execute(statement, {"thread": thread_id})
        .fetchone()
        is None
    ):
        raise CliError(
            f"no thread {thread_id!r}", f"see `{PROG} threads` for the thread ids"
        )


def require_checkpoint(env: Env, conn: Any, thread_id: str, checkpoint_id: str) -> str:
    """The namespace of checkpoint ``checkpoint_id`` of ``thread_id``."""
    statement = sql.SQL(CHECKPOINT_EXISTS_SQL).format(**_tables(env))
    params = {"thread": thread_id, "id": checkpoint_id}
    row = conn.cursor(row_factory=dict_row).execute(statement, params).fetchone()
    if row is None:
        raise CliError(
            f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}",
            f"see `{PROG} history {thread_id}`",
        )
    return str(row["checkpoint_ns"])


def history_entry(item: Any) -> dict[str, Any]:
    """One line of ``history`` from a saver's ``CheckpointTuple``."""
    configurable = item.config["configurable"]
    parent = (item.parent_config or {}).get("configurable", {})
    metadata = item.metadata or {}
    writes = item.pending_writes or []
    return {
        "checkpoint_id": configurable["checkpoint_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "parent_checkpoint_id": parent.get("checkpoint_id"),
        "ts": item.checkpoint.get("ts"),
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "writes": len(writes),
        "next": next_nodes(item.checkpoint),
        "sends": len(pending_sends(item.checkpoint)),
        "interrupts": interrupt_values(writes),
        "resumed": any(channel == RESUME for _t, channel, _v in writes),
    }


def _interrupt_cell(values: Sequence[Any]) -> str:
    """Interrupt values for a table cell.

    >>> _interrupt_cell(["approve?", {"q": 1}])
    "approve? | {'q': 1}"
    """
    return " | ".join(str(v) for v in values)


@click.command("history")
@click.argument("thread_id", metavar="THREAD")
@click.option(
    "--ns",
    "namespace",
    default="",
    metavar="NS",
    help='Checkpoint namespace (default: the root graph\'s, "").',
)
@click.option("--all-ns", is_flag=True, help="Every namespace (subgraphs too).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Checkpoints per page.",
)
@click.option(
    "--before",
    metavar="CHECKPOINT_ID",
    help="Start after this checkpoint (the next page).",
)
@common_options
@pass_env
def history_command(
    env: Env,
    thread_id: str,
    namespace: str,
    all_ns: bool,
    limit: int,
    before: str | None,
) -> None:
    """A thread's checkpoints, newest first, one line each.

    Each line: step, source (input, loop, update, fork), checkpoint id, its
    parent, the number of pending writes, the nodes that run next (a `Send`
    counts once per packet) and pending interrupts. Checkpoints are decoded
    through the saver as LangGraph's get_state_history does (encrypted
    threads need LANGGRAPH_AES_KEY).

    --json prints {"thread_id", "checkpoint_ns" (null with --all-ns),
    "checkpoints": [{"checkpoint_id", "checkpoint_ns", "parent_checkpoint_id",
    "ts", "step", "source", "writes", "next", "sends", "interrupts",
    "resumed"}], "next_before": the id to pass as --before for the next page,
    or null}.

    \b
    Examples:
      langgraph-postgres history my-thread
      langgraph-postgres history my-thread --all-ns --limit 50
      langgraph-postgres history my-thread --before 1ef4f797-8335-6428-8001-8a1503f9b875
    """
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if not all_ns:
        configurable["checkpoint_ns"] = namespace
    with env.saver() as saver:
        conn = saver.conn
        require_thread(env, conn, thread_id)
        before_config = None
        if before:
            before_ns = require_checkpoint(env, conn, thread_id, before)
            before_config = {
                "configurable": {
                    **configurable,
                    "checkpoint_ns": before_ns,
                    "checkpoint_id": before,
                }
            }
        items = list(
            saver.list(
                {"configurable": configurable}, before=before_config, limit=limit + 1
            )
        )
    entries = [history_entry(item) for item in items[:limit]]
    next_before = entries[-1]["checkpoint_id"] if len(items) > limit else None
    data = {
        "thread_id": thread_id,
        "checkpoint_ns": None if all_ns else namespace,
        "checkpoints": entries,
        "next_before": next_before,
    }

    def human() -> None:
        columns: list[str | tuple[str, str]] = ["step", "source"]
        if all_ns:
            columns.append(("checkpoint_ns", "namespace"))
        columns += [
            ("checkpoint_id", "checkpoint"),
            ("parent_checkpoint_id", "parent"),
            "writes",
            "next",
            "interrupts",
        ]
        env.out.table(
            [
                {
                    **e,
                    "next": ", ".join(e["next"]),
                    "interrupts": _interrupt_cell(e["interrupts"]),
                }
                for e in entries
            ],
            columns,
            empty=f"(no checkpoints in namespace {namespace!r}; try --all-ns)",
        )
        if next_before:
            ns_option = (
                " --all-ns" if all_ns else (f" --ns {namespace}" if namespace else "")
            )
            env.out.line(
                f"next page: {PROG} history {thread_id}{ns_option} "
                f"--limit {limit} --before {next_before}",
                style="dim",
            )

    env.out.emit(data, human)


COMMANDS: list[click.Command] = [threads_command, history_command]
