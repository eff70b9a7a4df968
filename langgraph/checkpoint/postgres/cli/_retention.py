"""``prune`` and ``sweep``: the saver's retention from the shell.

Both are dry runs unless given ``--yes``. A dry run executes the very
statements of the real run, through the saver's own ``prune()`` and sweep,
inside a transaction that is then rolled back: the counts it prints are the
library's own, not an estimate, and nothing changes. What a statement
removed is measured by counting the rows of the threads involved (and their
stored size) before and after it, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click
import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from langgraph.checkpoint.postgres._retention import PRUNE_STRATEGIES
from langgraph.checkpoint.postgres._sweep import (
    STRATEGIES,
    RetentionPolicy,
    SweepResult,
    check_keep,
)
from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._durations import duration_seconds
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._output import human_bytes
from langgraph.checkpoint.postgres.cli._sizes import TABLES, row_bytes

KINDS = tuple(TABLES)

# Rows and stored bytes per thread and table. pg_column_size is the size of
# each value as stored (compressed, not detoasted: cheap on large blobs);
# tuple headers and index entries are not counted.
_MEASURE_ONE = (
    "SELECT thread_id, {kind} AS kind, count(*) AS rows, "
    "coalesce(sum({size}), 0)::bigint AS bytes "
    "FROM {table} WHERE thread_id = ANY(%(threads)s::text[]) GROUP BY thread_id"
)
THREADS_PRESENT_SQL = (
    "SELECT DISTINCT thread_id FROM {table} WHERE thread_id = ANY(%(threads)s::text[])"
)
RETRY_HINT = "run again with --yes to delete"


def measure_sql(env: Env) -> sql.Composed:
    """The query of rows and bytes per (thread, table) of ``%(threads)s``."""
    parts = []
    for kind, (table, _columns) in TABLES.items():
        parts.append(
            sql.SQL(_MEASURE_ONE).format(
                kind=sql.Literal(kind),
                size=sql.SQL(row_bytes(kind)),
                table=env.table(table),
            )
        )
    return sql.SQL(" UNION ALL ").join(parts)


def parse_ttl(text: str) -> float:
    """Minutes of a ``--ttl``: a number of minutes, or with a unit.

    >>> parse_ttl("90"), parse_ttl("12h"), parse_ttl("7d"), parse_ttl("1.5w")
    (90.0, 720.0, 10080.0, 15120.0)
    """
    seconds = duration_seconds(text, bare="m")
    if seconds is None or seconds <= 0:
        raise CliError(
            f"--ttl {text!r} is not a duration",
            "give minutes (90) or a number with m, h, d or w (12h, 7d)",
        )
    return seconds / 60


def _as_cli_error(exc: ValueError) -> CliError:
    # The library names its config keys; the user typed options.
    message = str(exc)
    for key, option in (
        ("retention['keep']", "--keep"),
        ("retention['default_ttl']", "--ttl"),
        ("retention['sweep_limit']", "--limit"),
        ("retention strategy", "--strategy"),
        ("default_ttl minutes", "--ttl minutes"),
    ):
        message = message.replace(key, option)
    return CliError(message)


def check_prune_options(strategy: str, keep: int | None) -> int | None:
    """``keep`` if it goes with ``strategy``, else a :class:`CliError`.

    >>> check_prune_options("keep_last", 2)
    2
    >>> check_prune_options("delete", None) is None
    True
    """
    if strategy not in PRUNE_STRATEGIES:
        raise CliError(
            f"unknown strategy {strategy!r}",
            f"use one of {', '.join(PRUNE_STRATEGIES)}",
        )
    try:
        check_keep(strategy, keep, "--keep")
    except ValueError as exc:
        raise _as_cli_error(exc) from None
    return keep


def sweep_policy(
    strategy: str, ttl: str | None, keep: int | None, limit: int | None
) -> dict[str, Any]:
    """The saver's ``retention`` config of the options, checked.

    >>> sweep_policy("keep_last", "7d", 2, None)
    {'strategy': 'keep_last', 'default_ttl': 10080.0, 'keep': 2}
    """
    if strategy not in STRATEGIES:
        raise CliError(
            f"unknown strategy {strategy!r}", f"use one of {', '.join(STRATEGIES)}"
        )
    config: dict[str, Any] = {"strategy": strategy}
    if ttl is not None:
        config["default_ttl"] = parse_ttl(ttl)
    if keep is not None:
        config["keep"] = keep
    if limit is not None:
        config["sweep_limit"] = limit
    if strategy == "delete" and ttl is None:
        raise CliError(
            "--strategy delete removes threads idle for --ttl and needs one",
            "e.g. --ttl 30d; or --strategy keep_latest to trim every thread",
        )
    try:
        RetentionPolicy.of(config)
    except ValueError as exc:
        raise _as_cli_error(exc) from None
    return config


def removed_by_thread(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """What went, per thread: rows of each kind and ``bytes``, from the
    :func:`measure_sql` rows before and after. Threads that lost nothing
    are left out.

    >>> removed_by_thread(
    ...     [{"thread_id": "t", "kind": "blobs", "rows": 3, "bytes": 90}],
    ...     [{"thread_id": "t", "kind": "blobs", "rows": 1, "bytes": 30}],
    ... )
    {'t': {'checkpoints': 0, 'writes': 0, 'blobs': 2, 'bytes': 60}}
    """
    totals: dict[str, dict[str, int]] = {}
    for rows, sign in ((before, 1), (after, -1)):
        for row in rows:
            entry = totals.setdefault(
                row["thread_id"], {**dict.fromkeys(KINDS, 0), "bytes": 0}
            )
            entry[row["kind"]] += sign * int(row["rows"])
            entry["bytes"] += sign * int(row["bytes"])
    return {
        thread: entry
        for thread, entry in sorted(totals.items())
        if any(entry[kind] for kind in KINDS)
    }


def total_of(threads: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The sums over :func:`removed_by_thread`'s threads."""
    total = {"threads": len(threads), **dict.fromkeys(KINDS, 0), "bytes": 0}
    for entry in threads.values():
        for key in (*KINDS, "bytes"):
            total[key] += entry[key]
    return total


# -- I/O ---------------------------------------------------------------------


def _measure(
    conn: psycopg.Connection[Any], query: sql.Composed, threads: Sequence[str]
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, {"threads": list(threads)})
        return cur.fetchall()


@contextmanager
def _saver(env: Env, retention: dict[str, Any] | None = None) -> Iterator[Any]:
    """A saver on a connection of the CLI's, which runs the library's
    statements inside the transactions this module opens."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with env.connect() as conn:
        conn.row_factory = tuple_row  # type: ignore[assignment]
        yield PostgresSaver(conn, schema=env.schema, retention=retention)  # type: ignore[arg-type]


def _check_threads(
    conn: psycopg.Connection[Any], env: Env, threads: Sequence[str]
) -> None:
    query = sql.SQL(THREADS_PRESENT_SQL).format(table=env.table("checkpoints"))
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, {"threads": list(threads)})
        present = {row[0] for row in cur.fetchall()}
    missing = [t for t in threads if t not in present]
    if missing:
        raise CliError(
            f"no thread {', '.join(map(repr, missing))}",
            "see `langgraph-postgres threads`; nothing was changed",
        )


def _report(
    env: Env,
    document: dict[str, Any],
    threads: Mapping[str, Mapping[str, int]] | None,
    headline: str,
) -> None:
    def human() -> None:
        out = env.out
        out.line(headline, style="bold")
        total = document["removed"]
        if threads is not None:
            rows = [
                {"thread": t, **e, "bytes": human_bytes(e["bytes"])}
                for t, e in threads.items()
            ]
            if len(rows) > 1:
                rows.append(
                    {"thread": "total", **total, "bytes": human_bytes(total["bytes"])}
                )
            out.table(rows, ["thread", *KINDS, "bytes"], empty="(nothing to remove)")
        else:
            out.fields(
                [
                    ("threads", total["threads"]),
                    *((k, total[k]) for k in KINDS),
                    ("bytes", human_bytes(total["bytes"])),
                    ("skipped", document.get("skipped", 0)),
                ]
            )
        if document["dry_run"]:
            out.line(f"Dry run: nothing was changed; {RETRY_HINT}.")

    env.out.emit(document, human)


@click.command("prune")
@click.argument("threads", nargs=-1, required=True, metavar="THREAD...")
@click.option(
    "--strategy",
    default="keep_latest",
    show_default=True,
    metavar="keep_latest|keep_last|delete",
    help="What to keep of each thread's namespaces.",
)
@click.option("--keep", type=int, metavar="N", help="With keep_last: checkpoints kept.")
@click.option("--yes", is_flag=True, help="Delete (default: a dry run).")
@common_options
@pass_env
def prune(
    env: Env, threads: tuple[str, ...], strategy: str, keep: int | None, yes: bool
) -> None:
    """Prune threads: keep their newest checkpoint(s), or delete them.

    Runs the saver's prune(): keep_latest keeps each namespace's newest
    checkpoint (and what reading it back needs: DeltaChannel ancestors),
    keep_last the newest N, delete removes the threads. Without --yes it is a
    dry run: the same statements run in a transaction that is rolled back,
    and it prints what they would remove (checkpoints, writes, blobs, and
    bytes: the stored size of the rows' values). With --yes all threads are
    pruned in one transaction.

    --json prints {"dry_run", "strategy", "keep", "removed": {threads,
    checkpoints, writes, blobs, bytes}, "threads": {id: {checkpoints, writes,
    blobs, bytes}}}.

    \b
    Examples:
      langgraph-postgres prune chat-1
      langgraph-postgres prune chat-1 fan-1 --strategy keep_last --keep 2 --yes
      langgraph-postgres prune old-thread --strategy delete --yes
    """
    check_prune_options(strategy, keep)
    ids = list(dict.fromkeys(threads))
    with _saver(env) as saver:
        conn = saver.conn
        _check_threads(conn, env, ids)
        query = measure_sql(env)
        with conn.transaction(force_rollback=not yes):
            before = _measure(conn, query, ids)
            saver.prune(ids, strategy=strategy, keep=keep)
            after = _measure(conn, query, ids)
    removed = removed_by_thread(before, after)
    document = {
        "dry_run": not yes,
        "strategy": strategy,
        "keep": keep,
        "removed": total_of(removed),
        "threads": removed,
    }
    verb = "would remove" if not yes else "removed"
    _report(env, document, removed, f"prune {strategy} of {len(ids)} thread(s) {verb}:")


@click.command("sweep")
@click.option(
    "--strategy",
    default="delete",
    show_default=True,
    metavar="delete|keep_latest|keep_last",
    help="delete removes idle threads; keep_* trim them.",
)
@click.option(
    "--ttl",
    metavar="MINUTES|7d",
    help="Only threads idle this long (minutes, or with m/h/d/w).",
)
@click.option("--keep", type=int, metavar="N", help="With keep_last: checkpoints kept.")
@click.option(
    "--limit", type=int, metavar="N", help="Threads per transaction (default 100)."
)
@click.option("--yes", is_flag=True, help="Delete (default: a dry run).")
@common_options
@pass_env
def sweep(
    env: Env,
    strategy: str,
    ttl: str | None,
    keep: int | None,
    limit: int | None,
    yes: bool,
) -> None:
    """Sweep every thread by a retention policy, as the saver's sweep() does.

    The options are the saver's retention= policy: --strategy delete removes
    threads whose newest checkpoint is older than --ttl; keep_latest and
    keep_last (--keep N) trim every thread, or with --ttl only idle ones.
    Threads are read a page of --limit at a time, each page swept in one
    transaction; threads a live writer or another sweeper holds are skipped.
    Without --yes it is a dry run: each page's statements run and are rolled
    back, and it prints what they would remove (threads, checkpoints,
    writes, blobs, bytes).

    --json prints {"dry_run", "policy", "removed": {threads, checkpoints,
    writes, blobs, bytes}, "skipped"}.

    \b
    Examples:
      langgraph-postgres sweep --ttl 30d
      langgraph-postgres sweep --strategy keep_last --keep 20 --yes
      langgraph-postgres sweep --strategy keep_latest --ttl 7d --limit 500 --json
    """
    policy = sweep_policy(strategy, ttl, keep, limit)
    result = SweepResult()
    freed = 0
    with _saver(env, policy) as saver:
        conn = saver.conn
        query = measure_sql(env)
        # The saver's sweep(), page by page, with each page's transaction
        # ours: rolled back in a dry run, and measured for bytes.
        passing = saver._sweep_pass()
        while (page := passing.next_page()) is not None:
            rows = saver._fetch(page)
            passing.receive(rows)
            if not rows:
                continue
            ids = [row[0] for row in rows]
            with conn.transaction(force_rollback=not yes):
                before = _measure(conn, query, ids)
                result += saver._sweep_batch(passing, rows)
                after = _measure(conn, query, ids)
            freed += total_of(removed_by_thread(before, after))["bytes"]
    document = {
        "dry_run": not yes,
        "policy": policy,
        "removed": {
            "threads": result.threads,
            "checkpoints": result.checkpoints,
            "writes": result.writes,
            "blobs": result.blobs,
            "bytes": freed,
        },
        "skipped": result.skipped,
    }
    verb = "would remove" if not yes else "removed"
    _report(env, document, None, f"sweep {strategy} {verb}:")


COMMANDS: list[click.Command] = [prune, sweep]
