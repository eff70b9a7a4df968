"""The SQL script of ``setup()`` that ``migrate sql`` prints: :class:`Script`
drives the same step generator (``Migrations.steps``) that ``setup()``
executes, answers its few questions (does the schema exist, which version is
recorded, does a table hold rows) from the database or as for a fresh one,
and writes each statement out with its parameters inlined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from langgraph.checkpoint.postgres._pg.migrations import (
    INDEX_STATE_SQL,
    SCHEMA_EXISTS_SQL,
    Migrations,
)


@dataclass(frozen=True)
class History:
    """One table of applied versions and the migrations it records."""

    component: str
    migrations: Migrations

    @property
    def table(self) -> str:
        return self.migrations.versions_table


def inline(statement: str, params: Mapping[str, Any]) -> str:
    """``statement`` with its parameters written in, as a script holds it.

    >>> inline("INSERT INTO t (v) VALUES (%(v)s)", {"v": 3})
    'INSERT INTO t (v) VALUES (3)'
    """
    if not params:
        return statement
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"cannot write {value!r} into a script")
        literal = str(value) if isinstance(value, int) else sql.quote(value)
        statement = statement.replace(f"%({name})s", literal)
    return statement.replace("%%", "%")


# -- the script of setup() ------------------------------------------------------


class Script:
    """The statements ``setup()`` would run, as an SQL script.

    Drives the step generators ``setup()`` executes (``Migrations.steps``,
    ``online_steps``), as its runner (``_pg.migrate.migrate``) does: one
    transaction of steps, and where they stop for an index on a table with
    rows, its ``CONCURRENTLY`` build outside, then another transaction. The
    steps' questions are answered from ``conn`` (read-only), or as for a
    fresh database without one; the version recorded is the script's own.
    """

    def __init__(
        self, schema: str | None, conn: psycopg.Connection[Any] | None
    ) -> None:
        self.schema = schema
        self.conn = conn
        self.schema_made = False
        self.index_made = False
        where = "the database" if conn is not None else "a fresh database"
        self.lines = [
            "-- The statements setup() runs, printed by `langgraph-postgres migrate "
            f"sql` for {where}",
            f"-- (schema: {schema or 'the search_path'}). Each migration ends with "
            "the INSERT that records its version.",
            "-- Apply with: psql -v ON_ERROR_STOP=1 -f this.sql",
        ]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def add(
        self, history: History, migrations: Migrations, current: int | None
    ) -> None:
        """Append what ``setup()`` runs for ``history`` at version ``current``."""
        self.lines.append("")
        # Past a --to: nothing of this history to print.
        newer = current is not None and current >= migrations.latest
        pending = [] if newer else migrations.pending(current)
        at = "none recorded" if current is None else f"version {current}"
        if not pending:
            self.lines.append(f"-- {history.table}: {at}, up to date")
            return
        self.lines.append(
            f"-- {history.component}, {history.table}: from {at} to version "
            f"{pending[-1][0]}"
        )
        self.recorded = current
        self.upcoming: list[int] = []
        self.header_due = False
        built: set[int] = set()
        while True:
            self.lines.append("BEGIN;")
            self.header_due = False
            version = self._drive(
                migrations.steps(self.schema, online=True, built=built),
                migrations,
                built,
            )
            self.lines.append("COMMIT;")
            if version is None:
                return
            build = migrations.online_builds[version]
            table = migrations.render(build.table, self.schema)
            self.lines += [
                f"-- Version {version} indexes {table}, which holds rows: setup() "
                "commits, builds the index",
                "-- CONCURRENTLY outside a transaction (writers go on), then "
                "records the version in a new one.",
            ]
            self.index_made = False
            self._drive(
                migrations.online_steps(self.schema, version), migrations, built
            )
            built.add(version)

    def _drive(self, steps: Any, migrations: Migrations, built: set[int]) -> Any:
        rows: Any = None
        try:
            while True:
                statement = steps.send(rows)
                if statement.fetch:
                    rows = self._answer(statement.sql, statement.params, migrations)
                else:
                    rows = None
                    self._emit(statement.sql, statement.params, migrations, built)
        except StopIteration as done:
            return done.value

    def _answer(
        self, query: str, params: Mapping[str, Any], migrations: Migrations
    ) -> list[tuple[Any, ...]]:
        if query.startswith("SELECT max(v) FROM"):
            self.upcoming = [v for v, _ in migrations.pending(self.recorded)]
            self.header_due = True
            return [(self.recorded,)]
        if query == INDEX_STATE_SQL:
            # Absent, then built by the statement the script just printed.
            return [(True, False)] if self.index_made else []
        if query == SCHEMA_EXISTS_SQL and self.schema_made:
            return [(True,)]
        if self.conn is None:
            return [(False,)]  # no schema, no other layout, empty tables
        try:
            with self.conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(query, params or None)
                return cur.fetchall()
        except psycopg.errors.UndefinedTable:
            return [(False,)]  # not created yet: no rows

    def _emit(
        self,
        statement: str,
        params: Mapping[str, Any],
        migrations: Migrations,
        built: set[int],
    ) -> None:
        versions = migrations.render("$" + migrations.versions_table, self.schema)
        if statement.startswith("INSERT INTO") and "v" in params:
            self.recorded = params["v"]
            self.upcoming = self.upcoming[1:]
            self.header_due = True
        elif self.header_due and self.upcoming:
            version = self.upcoming[0]
            note = (
                " (its index was built above; IF NOT EXISTS makes this a no-op)"
                if version in built
                else ""
            )
            self.lines.append(f"-- {migrations.versions_table} version {version}{note}")
            self.header_due = False
        elif statement.startswith("SELECT pg_advisory_xact_lock"):
            self.lines.append("-- setup()'s lock: one migrating session at a time")
        elif statement.startswith(f"CREATE TABLE IF NOT EXISTS {versions} "):
            self.lines.append("-- the table of versions, which setup() reads next")
        self.schema_made |= statement.startswith("CREATE SCHEMA")
        self.index_made |= statement.startswith("CREATE INDEX CONCURRENTLY")
        self.lines.append(inline(statement.strip(), params) + ";")
