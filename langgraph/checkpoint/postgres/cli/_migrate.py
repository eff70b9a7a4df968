"""``migrate status | up | sql``: the saver's and the store's migrations.

``status`` reads the tables of applied versions; ``up`` calls the savers'
own ``setup()``; ``sql`` prints what ``setup()`` would run, statement for
statement, by driving the same step generator (``Migrations.steps``) that
``setup()`` executes and answering its few questions (does the schema exist,
which version is recorded, does a table hold rows) from the database, or, with
``--from``, as for a fresh database (the script is built by
:mod:`~langgraph.checkpoint.postgres.cli._migrate_script`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import click
import orjson
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.checkpoint.postgres._pg.errors import IncompatibleSchemaError
from langgraph.checkpoint.postgres._pg.migrations import Migrations, statements_of
from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._errors import CliError
from langgraph.checkpoint.postgres.cli._migrate_script import History, Script

TARGETS = ("all", "saver", "store")
#: The tables of each component (the versions tables included).
COMPONENT_TABLES: dict[str, list[str]] = {
    "saver": "checkpoints checkpoint_blobs checkpoint_writes "
    "checkpoint_migrations".split(),
    "store": "store store_migrations store_ext_migrations store_vectors "
    "vector_migrations".split(),
}
TABLE_EXISTS_SQL = "SELECT to_regclass(%(table)s) IS NOT NULL"
CURRENT_VERSION_SQL = "SELECT max(v) FROM {table}"
UP_HINT = "run again with --yes to apply"


def _never_embed(texts: Sequence[str]) -> list[list[float]]:
    # setup() builds tables and indexes; it never embeds.
    raise RuntimeError("migrate does not embed")


def store_index(text: str | None) -> dict[str, Any] | None:
    """The store's ``index=`` config of ``--store-index`` (JSON, no embed).

    >>> store_index('{"dims": 3}')["dims"]
    3
    """
    if text is None:
        return None
    from langgraph.store.postgres._config import VectorIndex

    try:
        config = orjson.loads(text)
        VectorIndex.from_config(config)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise CliError(
            f"--store-index: {exc}",
            "give the store's index config as JSON, e.g. '{\"dims\": 1536}'",
        ) from None
    return {**config, "embed": _never_embed}


def histories(target: str, index: Mapping[str, Any] | None) -> list[History]:
    """The histories ``setup()`` applies for ``target``, in order.

    >>> [h.table for h in histories("all", None)]
    ['checkpoint_migrations', 'store_migrations', 'store_ext_migrations']
    """
    from langgraph.store.postgres._config import VectorIndex
    from langgraph.store.postgres._migrations import (
        EXT_MIGRATIONS,
        STORE_MIGRATIONS,
        vector_migrations,
    )

    found: list[History] = []
    if target in ("all", "saver"):
        found.append(History("saver", SAVER_MIGRATIONS))
    if target in ("all", "store"):
        found += [History("store", STORE_MIGRATIONS), History("store", EXT_MIGRATIONS)]
        if index is not None:
            vectors = VectorIndex.from_config(index)  # type: ignore[arg-type]
            # An IVFFlat index waits for data (setup() builds it later).
            ann = vectors.kind != "ivfflat"
            found.append(History("store", vector_migrations(vectors, ann_index=ann)))
    return found


def summary(template: str, migrations: Migrations, schema: str | None) -> str:
    """The first line of a migration, rendered (what ``status`` lists).

    >>> summary("SELECT 1", SAVER_MIGRATIONS, None)
    'SELECT 1'
    """
    statements = statements_of(migrations.render(template, schema))
    first = statements[0].strip().splitlines()[0] if statements else ""
    more = len(statements) - 1
    return first + (f"  (+{more} statement{'s' * (more > 1)})" if more else "")


# -- reading the database ------------------------------------------------------


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, params).fetchone()
    return None if row is None else row[0]


def _exists(conn: psycopg.Connection[Any], env: Env, name: str) -> bool:
    return bool(
        _one(conn, TABLE_EXISTS_SQL, {"table": env.table(name).as_string(conn)})
    )


def _current(conn: psycopg.Connection[Any], env: Env, history: History) -> int | None:
    if not _exists(conn, env, history.table):
        return None
    return _one(
        conn, sql.SQL(CURRENT_VERSION_SQL).format(table=env.table(history.table))
    )


def _status(
    conn: psycopg.Connection[Any], env: Env, found: Sequence[History]
) -> dict[str, Any]:
    components: dict[str, Any] = {}
    for component in dict.fromkeys(h.component for h in found):
        tables = COMPONENT_TABLES[component]
        present = [t for t in tables if _exists(conn, env, t)]
        components[component] = {"tables": present, "histories": []}
        known = {h.table for h in found}
        if "vector_migrations" in present and "vector_migrations" not in known:
            components[component]["note"] = (
                "vector_migrations exists: give the store's index config "
                "(--store-index) to check its migrations"
            )
    pending_total = 0
    newer = False
    for history in found:
        current = _current(conn, env, history)
        entry: dict[str, Any] = {
            "table": history.table,
            "current": current,
            "latest": history.migrations.latest,
        }
        try:
            pending = history.migrations.pending(current)
        except IncompatibleSchemaError as exc:
            entry["pending"] = None
            entry["error"] = str(exc)
            newer = True
        else:
            entry["pending"] = [
                {"version": v, "sql": summary(t, history.migrations, env.schema)}
                for v, t in pending
            ]
            pending_total += len(pending)
        components[history.component]["histories"].append(entry)
    return {"components": components, "pending": pending_total, "newer": newer}


def _print_status(env: Env, status: Mapping[str, Any]) -> None:
    out = env.out
    rows = []
    pending_rows = []
    for component, info in status["components"].items():
        for entry in info["histories"]:
            pending = entry["pending"]
            rows.append(
                {
                    "component": component,
                    "history": entry["table"],
                    "current": "none" if entry["current"] is None else entry["current"],
                    "latest": entry["latest"],
                    "pending": "newer!" if pending is None else len(pending),
                }
            )
            for item in pending or []:
                pending_rows.append({"history": entry["table"], **item})
    out.table(rows, ["component", "history", "current", "latest", "pending"])
    for component, info in status["components"].items():
        missing = [t for t in COMPONENT_TABLES[component] if t not in info["tables"]]
        out.line(
            f"{component} tables present: {', '.join(info['tables']) or 'none'}"
            + (f" (absent: {', '.join(missing)})" if missing else "")
        )
    if pending_rows:
        out.table(
            pending_rows, ["history", "version", ("sql", "first line")], title="Pending"
        )
    for component, info in status["components"].items():
        if info.get("note"):
            out.line(f"{component}: {info['note']}")
        for entry in info["histories"]:
            if entry.get("error"):
                out.line(f"{component}: {entry['error']}", style="red")


def _require_not_newer(status: Mapping[str, Any]) -> None:
    if status["newer"]:
        raise CliError(
            "the database is newer than this package",
            "upgrade langgraph-postgres-saver before migrating it",
        )


# -- commands -----------------------------------------------------------------

_target = click.argument(
    "target", required=False, default="all", type=click.Choice(TARGETS)
)
_index_option = click.option(
    "--store-index",
    "index_json",
    metavar="JSON",
    help="The store's index config (e.g. '{\"dims\": 1536}'): include the "
    "vector migrations, which depend on it.",
)


@click.group("migrate")
def migrate() -> None:
    """The migrations of the saver's and the store's tables.

    \b
    Examples:
      langgraph-postgres migrate status
      langgraph-postgres migrate up --yes
      langgraph-postgres migrate sql --from 0 > V1__langgraph.sql
    """


@migrate.command("status")
@_target
@_index_option
@common_options
@pass_env
def status(env: Env, target: str, index_json: str | None) -> None:
    """Show the applied and pending migrations of the saver and the store.

    For each table of applied versions: the version recorded (none: setup()
    never ran), this package's latest, and the pending migrations with
    their first line; and which of each component's tables exist. The
    store's vector migrations depend on its index config: give it with
    --store-index to include them.

    --json prints {"components": {saver|store: {"tables": [...],
    "histories": [{"table", "current", "latest", "pending": [{"version",
    "sql"}]}]}}, "pending": N, "newer": bool}.

    \b
    Examples:
      langgraph-postgres migrate status
      langgraph-postgres migrate status store --store-index '{"dims": 1536}' --json
    """
    found = histories(target, store_index(index_json))
    with env.connect() as conn:
        result = _status(conn, env, found)

    def human() -> None:
        _print_status(env, result)
        if result["pending"] == 0 and not result["newer"]:
            env.out.line("Up to date.")
        elif result["pending"]:
            env.out.line(
                f"{result['pending']} migration(s) pending: "
                "`langgraph-postgres migrate up --yes` applies them."
            )

    env.out.emit(result, human)


@migrate.command("up")
@_target
@_index_option
@click.option("--yes", is_flag=True, help="Apply (default: a dry run).")
@common_options
@pass_env
def up(env: Env, target: str, index_json: str | None, yes: bool) -> None:
    """Apply the pending migrations, as setup() does (it is what runs).

    TARGET is saver, store or all (the default). Without --yes it is a dry
    run: the status, and how many migrations would be applied. With --yes
    it calls PostgresSaver.setup() and/or PostgresStore.setup(): one
    transaction, except that an index on a table holding rows is built
    CONCURRENTLY, outside it, so writers are not locked out.

    --json prints {"dry_run", "applied": N, "before": <status>, "after":
    <status, with --yes>}.

    \b
    Examples:
      langgraph-postgres migrate up
      langgraph-postgres migrate up saver --yes
    """
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    index = store_index(index_json)
    found = histories(target, index)
    with env.connect() as conn:
        before = _status(conn, env, found)
        _require_not_newer(before)
        after = None
        if yes:
            conn.row_factory = tuple_row  # type: ignore[assignment]
            if target in ("all", "saver"):
                PostgresSaver(conn, schema=env.schema).setup()
            if target in ("all", "store"):
                store = PostgresStore(conn, schema=env.schema, index=index)  # type: ignore[arg-type]
                store.setup()
            after = _status(conn, env, found)
    document = {
        "dry_run": not yes,
        "applied": before["pending"]
        - (after["pending"] if after else before["pending"]),
        "before": before,
        "after": after,
    }

    def human() -> None:
        if after is None:
            _print_status(env, before)
            if before["pending"]:
                env.out.line(
                    f"Dry run: would apply {before['pending']} migration(s); {UP_HINT}."
                )
            else:
                env.out.line("Up to date: nothing to apply.")
        else:
            _print_status(env, after)
            env.out.line(f"Applied {document['applied']} migration(s).")

    env.out.emit(document, human)


@migrate.command("sql")
@_target
@_index_option
@click.option(
    "--from",
    "first",
    type=int,
    metavar="N",
    help="Print migrations N on, for a database at N-1 (0: all, for a fresh "
    "database); without it, the ones the database lacks.",
)
@click.option("--to", "last", type=int, metavar="N", help="Stop after version N.")
@common_options
@pass_env
def sql_command(
    env: Env,
    target: str,
    index_json: str | None,
    first: int | None,
    last: int | None,
) -> None:
    """Print the SQL that setup() would run, for Alembic, Flyway or psql.

    Without --from it asks the database which migrations are pending and
    whether the tables hold rows, and prints the statements setup() would
    run on it, in its transactions (BEGIN/COMMIT), rendered for --schema:
    setup()'s advisory lock, the tables of versions, each migration and the
    INSERT recording its version. An index on a table that holds rows is
    built CONCURRENTLY between two transactions, as setup() does. With
    --from N it needs no database: the migrations N on, for a database at
    version N-1 with empty tables. Comments say why each part is there.
    Feed it to `psql -v ON_ERROR_STOP=1 -f`. --json prints {"sql": text}.

    \b
    Examples:
      langgraph-postgres migrate sql
      langgraph-postgres migrate sql --from 0 --schema app > V1__langgraph.sql
      langgraph-postgres migrate sql saver --from 0 --to 9
    """
    found = histories(target, store_index(index_json))
    if first is not None and first < 0 or last is not None and last < 0:
        raise CliError("--from and --to take a version >= 0")
    if first is None:
        with env.connect() as conn:
            _require_not_newer(_status(conn, env, found))
            script = Script(env.schema, conn)
            for history in found:
                migrations = _upto(history.migrations, last)
                script.add(history, migrations, _current(conn, env, history))
    else:
        script = Script(env.schema, None)
        for history in found:
            migrations = _upto(history.migrations, last)
            if first > migrations.latest + 1:
                continue
            script.add(history, migrations, first - 1 if first > 0 else None)
    text = script.text()

    def human() -> None:
        env.out.stream.write(text)
        env.out.stream.flush()

    env.out.emit({"sql": text}, human)


def _upto(migrations: Migrations, last: int | None) -> Migrations:
    if last is None:
        return migrations
    return dataclasses.replace(
        migrations, templates=list(migrations.templates)[: last + 1]
    )


COMMANDS: list[click.Command] = [migrate]
