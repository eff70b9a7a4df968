"""``export`` and ``import``: move or back up whole threads, byte for byte.

The file's format (and its checks) is :mod:`._export_format`; this module
reads the rows out of one database and COPYs them into another.
"""

from __future__ import annotations

import contextlib
import datetime
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import click
import orjson
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._export_format import (
    NATIVE_TYPES,
    TABLES,
    Column,
    FileError,
    Header,
    ThreadTally,
    encode_value,
    layout_problems,
    make_header,
    open_header,
    read_records,
    rename,
)
from langgraph.checkpoint.postgres.cli._output import human_bytes

#: Rows fetched per round trip while exporting (a server-side cursor).
FETCH_ROWS = 500

# Every live column of a table, in order; no rows when the table is missing.
COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.atthasdef AS has_default
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# The primary key's columns, in key order: the export's row order.
KEY_SQL = """
SELECT a.attname AS name
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass(%(table)s) AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""
# Of the given threads, those with no row in any of the three tables.
MISSING_THREADS_SQL = """
SELECT t FROM unnest(%(threads)s::text[]) WITH ORDINALITY AS u(t, n)
WHERE NOT EXISTS (SELECT 1 FROM {checkpoints} WHERE thread_id = t)
  AND NOT EXISTS (SELECT 1 FROM {checkpoint_blobs} WHERE thread_id = t)
  AND NOT EXISTS (SELECT 1 FROM {checkpoint_writes} WHERE thread_id = t)
ORDER BY n
"""
COUNT_SQL = "SELECT count(*) AS n FROM {table} WHERE thread_id = ANY(%(threads)s)"
SELECT_SQL = (
    "SELECT {columns} FROM {table} WHERE thread_id = ANY(%(threads)s) ORDER BY {key}"
)
EXISTING_SQL = (
    "SELECT thread_id, count(*) AS n FROM {table} "
    "WHERE thread_id = ANY(%(threads)s) GROUP BY thread_id"
)
DELETE_SQL = "DELETE FROM {table} WHERE thread_id = ANY(%(threads)s)"
COPY_SQL = "COPY {table} ({columns}) FROM STDIN"
# One snapshot for the counts in the header and the rows after it.
SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def select_expression(column: Column) -> sql.Composable:
    """How export reads ``column``: as it is, or as its text."""
    name = sql.Identifier(column.name)
    if column.type == "bytea" or column.type in NATIVE_TYPES:
        return name
    return sql.SQL("{}::text").format(name)


# -- the database ------------------------------------------------------------


def read_layout(conn: psycopg.Connection[Any], env: Env) -> dict[str, list[Column]]:
    """The columns of the three tables; CliError when one is missing."""
    layout = {}
    for table in TABLES:
        name = env.table(table).as_string(conn)
        rows = conn.execute(COLUMNS_SQL, {"table": name}).fetchall()
        if not rows:
            raise CliError(
                f"table {name} does not exist",
                "is it in another schema (--schema), or has setup() not run "
                "(`langgraph-postgres migrate status`)?",
            )
        layout[table] = [Column(**row) for row in rows]
    return layout


def _tables(env: Env) -> dict[str, sql.Composable]:
    return {t: env.table(t) for t in TABLES}


def missing_threads(
    conn: psycopg.Connection[Any], env: Env, threads: Sequence[str]
) -> list[str]:
    query = sql.SQL(MISSING_THREADS_SQL).format(**_tables(env))
    return [r["t"] for r in conn.execute(query, {"threads": list(threads)})]


def count_rows(
    conn: psycopg.Connection[Any], env: Env, threads: Sequence[str]
) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        query = sql.SQL(COUNT_SQL).format(table=env.table(table))
        row = conn.execute(query, {"threads": list(threads)}).fetchone()
        counts[table] = row["n"] if row else 0
    return counts


def stream_rows(
    conn: psycopg.Connection[Any],
    env: Env,
    table: str,
    columns: Sequence[Column],
    threads: Sequence[str],
) -> Iterator[dict[str, Any]]:
    """The rows of ``threads`` in ``table``, encoded, through a server-side
    cursor (a thread of any size never sits in memory whole)."""
    key = [
        r["name"]
        for r in conn.execute(KEY_SQL, {"table": env.table(table).as_string(conn)})
    ]
    query = sql.SQL(SELECT_SQL).format(
        columns=sql.SQL(", ").join(select_expression(c) for c in columns),
        table=env.table(table),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in key or [columns[0].name]),
    )
    with conn.cursor(name=f"export_{table}", row_factory=tuple_row) as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(query, {"threads": list(threads)})
        for values in cur:
            yield {c.name: encode_value(c.type, v) for c, v in zip(columns, values)}


def write_export(
    conn: psycopg.Connection[Any], env: Env, threads: Sequence[str], out: IO[str]
) -> dict[str, int]:
    """Write the export of ``threads`` (known to exist) to ``out``; the row
    counts. Reads one snapshot, so the header's counts match the rows."""
    with conn.transaction():
        conn.execute(SNAPSHOT_SQL)
        layout = read_layout(conn, env)
        counts = count_rows(conn, env, threads)
        now = datetime.datetime.now(datetime.timezone.utc)
        out.write(
            orjson.dumps(make_header(threads, layout, counts, now)).decode() + "\n"
        )
        for table in TABLES:
            for row in stream_rows(conn, env, table, layout[table], threads):
                out.write(orjson.dumps({"table": table, "row": row}).decode() + "\n")
    out.flush()
    return counts


class Inserter:
    """COPYs rows into their tables, one COPY open at a time.

    The open COPY lives on ``stack``: leaving it on an error aborts the COPY
    (a connection left inside one could not even roll back).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        env: Env,
        header: Header,
        stack: contextlib.ExitStack,
    ) -> None:
        self.cursor = conn.cursor()
        self.env = env
        self.header = header
        self.outer = stack
        self.stack = stack.enter_context(contextlib.ExitStack())
        self.table: str | None = None
        self.copy: Any = None

    def write(self, table: str, values: Sequence[Any]) -> None:
        if table != self.table:
            self.close()
            statement = sql.SQL(COPY_SQL).format(
                table=self.env.table(table),
                columns=sql.SQL(", ").join(
                    sql.Identifier(c.name) for c in self.header.tables[table]
                ),
            )
            self.copy = self.stack.enter_context(self.cursor.copy(statement))
            self.table = table
        self.copy.write_row(values)

    def close(self) -> None:
        self.stack.close()
        self.stack = self.outer.enter_context(contextlib.ExitStack())
        self.table = None


# -- the commands ------------------------------------------------------------


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


@click.command("export")
@click.argument("threads", nargs=-1, required=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of standard output.",
)
@common_options
@pass_env
def export_command(env: Env, threads: tuple[str, ...], output: Path | None) -> None:
    """Write whole threads to a JSON Lines file, byte for byte.

    Every checkpoint (all namespaces, subgraphs included), blob and pending
    write of each THREAD, as the raw columns: nothing is decoded, so
    encrypted threads need no key. `import` reads the file back.

    The file goes to standard output (a one-line summary to stderr), or to
    --output FILE (the summary to stdout; --json prints it as
    {"threads": [...], "rows": {table: count}, "output": FILE}). An unknown
    thread is an error before anything is written.

    \b
    Examples:
      langgraph-postgres export chat-1 fan-1 > backup.jsonl
      langgraph-postgres export chat-1 --output chat-1.jsonl
    """
    wanted = _unique(threads)
    with env.connect() as conn:
        read_layout(conn, env)
        missing = missing_threads(conn, env, wanted)
        if missing:
            raise CliError(
                f"no thread {', '.join(map(repr, missing))}",
                "see `langgraph-postgres threads`",
            )
        if output is None:
            counts = write_export(conn, env, wanted, sys.stdout)
        else:
            try:
                with output.open("w", encoding="utf-8") as stream:
                    counts = write_export(conn, env, wanted, stream)
            except BaseException:
                # Half a backup looks like a whole one; leave none.
                output.unlink(missing_ok=True)
                raise
    summary = {
        "threads": wanted,
        "rows": counts,
        "output": str(output) if output else None,
    }
    text = (
        f"exported {len(wanted)} thread(s): "
        + ", ".join(f"{counts[t]} {t}" for t in TABLES)
        + (f" to {output}" if output else "")
    )
    if output is None:
        click.echo(text, err=True)
    else:
        env.out.emit(summary, lambda: env.out.line(text))


@click.command("import")
@click.option(
    "--input",
    "-i",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read FILE instead of standard input.",
)
@click.option(
    "--as",
    "new_id",
    metavar="NEW_ID",
    help="Import the file's one thread under this id.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete the target threads' rows first (same transaction).",
)
@click.option("--yes", is_flag=True, help="Import; without it, only a dry run.")
@common_options
@pass_env
def import_command(
    env: Env, input_path: Path | None, new_id: str | None, replace: bool, yes: bool
) -> None:
    """Read threads from an `export` file into this database.

    Without --yes, reads and checks the whole file and prints what it would
    import (threads, rows, bytes); nothing changes. With --yes, inserts every
    row in one transaction: a malformed line (reported with its number)
    leaves the database as it was. A thread that already has rows here is
    refused unless --replace, which deletes them in the same transaction.
    --as NEW_ID renames the thread (the file must hold exactly one).

    --json prints {"imported": bool, "replace": bool, "threads": [{"thread_id",
    "source_thread_id", "checkpoints", "checkpoint_blobs",
    "checkpoint_writes", "bytes", "existing_rows"}]}.

    \b
    Examples:
      langgraph-postgres import < backup.jsonl            # dry run
      langgraph-postgres import --yes < backup.jsonl
      langgraph-postgres import --input chat-1.jsonl --as chat-1-copy --yes
    """
    with contextlib.ExitStack() as files:
        stream: IO[str] = (
            files.enter_context(input_path.open(encoding="utf-8"))
            if input_path
            else sys.stdin
        )
        lines = iter(stream)
        try:
            header = open_header(lines)
        except FileError as exc:
            raise CliError(str(exc)) from None
        if new_id is not None and len(header.threads) != 1:
            raise CliError(
                f"--as renames one thread, but the file holds {len(header.threads)}",
                "export the thread alone, or import without --as",
            )
        with env.connect() as conn:
            report = _import(conn, env, header, lines, new_id, replace, yes)
    _print_import(env, report, yes, replace)


def _target_id(header: Header, source: str, new_id: str | None) -> str:
    return new_id if new_id is not None else source


def _import(
    conn: psycopg.Connection[Any],
    env: Env,
    header: Header,
    lines: Iterator[str],
    new_id: str | None,
    replace: bool,
    yes: bool,
) -> list[dict[str, Any]]:
    target = read_layout(conn, env)
    problems = layout_problems(header.tables, target)
    if problems:
        raise CliError(
            f"line 1: the file's layout does not fit the database ({problems[0]})",
            "bring the database up to date (`langgraph-postgres migrate up`) "
            "or import into a database of the same version",
        )
    targets = [_target_id(header, t, new_id) for t in header.threads]
    existing = {t: 0 for t in targets}
    for table in TABLES:
        query = sql.SQL(EXISTING_SQL).format(table=env.table(table))
        for row in conn.execute(query, {"threads": targets}):
            existing[row["thread_id"]] += row["n"]
    taken = [t for t in targets if existing[t]]
    if taken and not replace:
        raise CliError(
            f"{'thread' if len(taken) == 1 else 'threads'} "
            f"{', '.join(map(repr, taken))} already "
            f"{'has' if len(taken) == 1 else 'have'} rows in this database",
            "add --replace to delete them first, or --as NEW_ID to import "
            "under another id",
        )
    tallies = {t: ThreadTally(t) for t in header.threads}
    try:
        with conn.transaction(), contextlib.ExitStack() as copies:
            inserter = Inserter(conn, env, header, copies) if yes else None
            if inserter is not None and taken:
                for table in TABLES:
                    conn.execute(
                        sql.SQL(DELETE_SQL).format(table=env.table(table)),
                        {"threads": taken},
                    )
            for _, table, values, thread, size in read_records(lines, header, target):
                tally = tallies[thread]
                tally.rows[table] += 1
                tally.bytes += size
                if inserter is not None:
                    if new_id is not None:
                        values = rename(values, header, table, new_id)
                    inserter.write(table, values)
            if inserter is not None:
                inserter.close()
    except FileError as exc:
        raise CliError(str(exc), "nothing was imported") from None
    return [
        {
            "thread_id": _target_id(header, t.thread_id, new_id),
            "source_thread_id": t.thread_id,
            **t.rows,
            "bytes": t.bytes,
            "existing_rows": existing[_target_id(header, t.thread_id, new_id)],
        }
        for t in tallies.values()
    ]


def _print_import(
    env: Env, threads: list[dict[str, Any]], yes: bool, replace: bool
) -> None:
    data = {"imported": yes, "replace": replace, "threads": threads}

    def human() -> None:
        rows = [{**t, "size": human_bytes(t["bytes"])} for t in threads]
        columns: list[str | tuple[str, str]] = [
            ("thread_id", "thread"),
            ("checkpoints", "checkpoints"),
            ("checkpoint_blobs", "blobs"),
            ("checkpoint_writes", "writes"),
            ("size", "size"),
        ]
        if replace:
            columns.append(("existing_rows", "replaced rows"))
        verb = "imported" if yes else "would import"
        env.out.table(rows, columns, title=f"{verb} {len(threads)} thread(s)")
        if not yes:
            env.out.line("dry run: nothing was written; add --yes to import")

    env.out.emit(data, human)


COMMANDS: list[click.Command] = [export_command, import_command]
