"""``stats``: how big the saver's and the store's tables are, and what is in
them: the command and its printing (the figures come from
:mod:`~langgraph.checkpoint.postgres.cli._stats_queries`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._output import human_bytes
from langgraph.checkpoint.postgres.cli._stats_queries import collect

# -- printing ------------------------------------------------------------------


def _sample_note(exact: bool, percent: float, what: str) -> str:
    if exact:
        return "exact"
    return f"{what} a {percent:.2g}% sample of pages"


def _rows_with_bytes(rows: int, size: int) -> str:
    return f"{rows:,} ({human_bytes(size)})"


def print_stats(env: Env, data: Mapping[str, Any]) -> None:
    """The human form of :func:`collect`'s document."""
    out = env.out
    tables = [
        {
            **t,
            "rows": f"{t['rows']:,}" + ("" if t["rows_exact"] else " (est.)"),
            "data": human_bytes(t["table_bytes"]),
            "indexes": human_bytes(t["index_bytes"]),
            "total": human_bytes(t["total_bytes"]),
        }
        for t in data["tables"]
    ]
    out.table(
        tables,
        [("name", "table"), "part", "rows", "data", "indexes", "total"],
        title="Tables (rows: exact count, or the planner's estimate)",
        empty="(no saver or store tables: has setup() run? --schema?)",
    )
    out.line()
    indexes = [
        {**i, "size": human_bytes(i["bytes"]), "valid": "yes" if i["valid"] else "NO"}
        for i in data["indexes"]
    ]
    out.table(indexes, ["name", "table", "size", "valid"], title="Indexes")
    out.line()
    threads, big = data["threads"], data["biggest_threads"]
    if threads is not None:
        namespaces = threads["subgraph_namespaces"]
        out.fields(
            [
                (
                    "threads",
                    f"{threads['count']:,}" + ("" if threads["exact"] else " (est.)"),
                ),
                (
                    "subgraph namespaces",
                    "(not counted)" if namespaces is None else namespaces,
                ),
            ]
        )
        out.line()
        percent = min(big["sample_percent"].values())
        out.table(
            [{**t, "size": human_bytes(t["bytes"])} for t in big["threads"]],
            ["thread_id", "checkpoints", "size"],
            title="Biggest threads ("
            + _sample_note(big["exact"], percent, "sizes exact, chosen from")
            + ")",
        )
        out.line()
        per_day = data["checkpoints_per_day"]
        out.table(
            per_day["days"],
            ["day", "checkpoints"],
            title="Checkpoints per day, UTC ("
            + _sample_note(
                per_day["exact"], per_day["sample_percent"], "estimated from"
            )
            + ")",
        )
        out.line()
        orphans = data["orphans"]
        if orphans["checked"]:
            out.fields(
                [
                    (
                        "orphan blobs",
                        _rows_with_bytes(orphans["blobs"], orphans["blob_bytes"]),
                    ),
                    (
                        "orphan writes",
                        _rows_with_bytes(orphans["writes"], orphans["write_bytes"]),
                    ),
                ]
            )
        else:
            out.fields([("orphans", orphans["note"])])
        out.line()
    migrations = [
        {**m, "current": "-" if m["current"] is None else m["current"]}
        for m in data["migrations"]
    ]
    out.table(
        migrations,
        ["history", "part", "current", "latest", "state"],
        title="Migrations",
    )


@click.command("stats")
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="How many of the biggest threads to list.",
)
@click.option(
    "--days",
    default=14,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="Checkpoints per day over this many days (today included).",
)
@click.option(
    "--orphans",
    is_flag=True,
    help="Count orphan blobs and writes on large tables too (reads every row: "
    "about 20 s on a million checkpoints).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Count every row instead of estimating (implies --orphans; slow on "
    "large tables).",
)
@common_options
@pass_env
def stats(env: Env, top: int, days: int, orphans: bool, exact: bool) -> None:
    """Sizes, row counts, biggest threads, activity and migration versions.

    Shows each table of the saver (and of the store, when set up) with its
    rows and its data and index sizes; the indexes (and whether they are
    valid); the number of threads and subgraph namespaces; the --top biggest
    threads by stored bytes; checkpoints per day (UTC, from each checkpoint's
    "ts") over --days; orphan blobs (no checkpoint's channel_versions names
    them) and orphan writes (their checkpoint is gone); and each migration
    history's version against the latest this package knows.

    Runs in well under a second on a million checkpoints: row counts of
    tables over 8 MB are the planner's estimates, checkpoints per day are
    estimated from a 16 MB sample of each table, and the biggest threads are
    chosen from that sample (their sizes are then exact); the output says
    which figures are estimates. Orphans are counted only on
    small tables unless --orphans is given. Reads only.

    \b
    --json prints {"tables": [{name, part, rows, rows_exact, table_bytes,
    index_bytes, total_bytes}], "indexes": [{name, table, bytes, valid}],
    "migrations": [{history, part, current, latest, state}], "store_present",
    "threads": {count, subgraph_namespaces, exact},
    "biggest_threads": {exact, sample_percent, threads: [{thread_id, bytes,
    checkpoints}]}, "checkpoints_per_day": {exact, sample_percent, days:
    [{day, checkpoints}]}, "orphans": {checked, blobs, blob_bytes, writes,
    write_bytes} or {checked: false, note}}.

    \b
    Examples:
      langgraph-postgres stats
      langgraph-postgres stats --top 20 --days 30
      langgraph-postgres stats --orphans --json
    """
    with env.connect() as conn:
        data = collect(conn, env, top=top, days=days, orphans=orphans, exact=exact)
    env.out.emit(data, lambda: print_stats(env, data))


COMMANDS: list[click.Command] = [stats]
