"""Migrations of any layout, and the steps of ``setup()`` that apply them.

A component (the saver, the store) describes its layout as
:class:`Migrations`: numbered templates, the table that records the applied
versions, and which migrations build an index that a populated table should
get without locking out writers. :meth:`Migrations.steps` and
:meth:`Migrations.online_steps` decide, free of I/O, what ``setup()`` runs;
the runners (:mod:`.migrate`, :mod:`.migrate_async`) execute them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg

from langgraph.checkpoint.postgres._pg.errors import IncompatibleSchemaError
from langgraph.checkpoint.postgres._pg.schema import quote_identifier
from langgraph.checkpoint.postgres._pg.statement import Statement, Steps

SETUP_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"
CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS {schema}"
SCHEMA_EXISTS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)"
)
# `{versions}` is the template placeholder of a layout's table of applied
# versions (`$checkpoint_migrations`), `{table}` that of a table to index.
CREATE_VERSIONS_SQL = "CREATE TABLE IF NOT EXISTS {versions} (v INTEGER PRIMARY KEY)"
CURRENT_VERSION_SQL = "SELECT max(v) FROM {versions}"
RECORD_VERSION_SQL = "INSERT INTO {versions} (v) VALUES (%(v)s)"
TABLE_POPULATED_SQL = "SELECT EXISTS (SELECT 1 FROM {table})"
TABLE_EXISTS_SQL = "SELECT to_regclass(%(table)s) IS NOT NULL"


# Whether an index exists, is valid, and whether some session is building it
# (an invalid index nobody builds is the remains of an interrupted build).
INDEX_STATE_SQL = """
SELECT i.indisvalid,
    EXISTS (
        SELECT 1 FROM pg_stat_progress_create_index p
        WHERE p.index_relid = i.indexrelid
    )
FROM pg_index i
WHERE i.indexrelid = to_regclass(%(index)s)
"""
DROP_INDEX_ONLINE_SQL = "DROP INDEX CONCURRENTLY IF EXISTS {index}"
#: Errors the server raises when ``setup()`` collides with another session:
#: a deadlock between two ``setup()`` that start the same index build at
#: once, or between a migration and an application transaction that locks
#: the tables in another order; or a clash of catalog updates. When
#: ``setup()`` runs its own transactions, the step that failed was rolled back
#: and runs again (it looks at the index anew and waits for another's build),
#: after `collision_pause`, up to `MAX_BUILD_COLLISIONS` times.
BUILD_COLLISIONS: tuple[type[Exception], ...] = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.InternalError_,
)
MAX_BUILD_COLLISIONS = 8
#: How long ``setup()`` waits between looks at an index another one builds.
INDEX_POLL_SECONDS = 0.2


#: What separates the statements of a migration that has several: each runs
#: on its own (Citus refuses some DDL on several objects at once). A marker
#: of its own, not a bare ``;``, which a ``DO $$ ... $$`` body contains; as
#: an SQL comment, the migration still runs as one string where it is run
#: whole (``langgraph-checkpoint-postgres`` runs ``MIGRATIONS`` so).
STATEMENT_SEPARATOR = ";\n-- next statement\n"


def statements_of(migration: str) -> list[str]:
    """The statements of one migration, in order.

    >>> statements_of("DROP INDEX a;\\n-- next statement\\nDROP INDEX b")
    ['DROP INDEX a', 'DROP INDEX b']
    >>> statements_of("DO $$ BEGIN PERFORM 1;\\nPERFORM 2; END $$")
    ['DO $$ BEGIN PERFORM 1;\\nPERFORM 2; END $$']
    """
    return [s for s in migration.split(STATEMENT_SEPARATOR) if s.strip()]


def collision_pause(collisions: int) -> float:
    """Seconds ``setup()`` waits after its ``collisions``-th collision.

    Random, so that two ``setup()`` that collided do not retry in lockstep
    and collide again (seen as a rare failure of two concurrent setups), and
    growing, up to 2.4 s, so that a busy server gets room.
    """
    return random.uniform(0.5, 1.5) * INDEX_POLL_SECONDS * 2 ** min(collisions, 3)


class LayoutGuard(NamedTuple):
    """Another layout of the same table names, which a history must refuse
    to migrate (it would leave tables neither layout's clients can use)."""

    #: The table whose shape tells the layouts apart (a template).
    table: str
    #: A query of one boolean, true on the other layout; ``%(table)s`` is
    #: the rendered table name.
    sql: str
    #: The error's message; ``{table}`` is the rendered table name.
    message: str


class OnlineBuild(NamedTuple):
    """How to apply a migration that builds an index on a populated table
    without locking out its writers (templates, as the migrations are)."""

    #: The table the index is on: the online form is used once it has rows.
    table: str
    #: The index, so that ``setup()`` can tell whether a build finished.
    index_name: str
    #: The ``CREATE INDEX CONCURRENTLY`` form of the migration.
    sql: str


@dataclass(frozen=True)
class Migrations:
    """A layout's history, and the ``setup()`` steps that bring a database to
    its latest version.

    ``templates[v]`` brings a database at version ``v - 1`` to version ``v``;
    each names the layout's objects as placeholders that ``render`` fills in
    for a schema (see :func:`.schema.renderer`). ``versions_table`` is the
    object name of the table of applied versions (one row per version, as
    ``langgraph-checkpoint-postgres`` keeps them). ``lock_key`` is the key of
    the transaction-scoped advisory lock that lets one ``setup()`` migrate
    while the others wait. ``online_builds`` gives, by version, the
    migrations to apply outside a transaction on a populated table.
    ``newest_known``, when set, is a version past the templates that this
    package knows but leaves unapplied (a step another configuration
    takes): a database there is not refused as newer. ``refuses``, when
    set, is another layout of the same tables that ``setup()`` refuses,
    leaving it unchanged.
    """

    templates: Sequence[str]
    versions_table: str
    render: Callable[[str, str | None], str]
    lock_key: int
    online_builds: Mapping[int, OnlineBuild] = field(default_factory=dict)
    newest_known: int | None = None
    refuses: LayoutGuard | None = None

    @property
    def latest(self) -> int:
        """The version of the layout this package knows."""
        return len(self.templates) - 1

    def pending(self, current: int | None) -> list[tuple[int, str]]:
        """Migrations (as templates) to apply to a database at version ``current``.

        ``None`` means a database with no migration recorded yet. A database
        newer than this package is refused rather than guessed at.
        """
        latest = self.latest
        if self.newest_known is not None:
            latest = max(latest, self.newest_known)
        if current is not None and current > latest:
            raise IncompatibleSchemaError(
                f"the database schema is at migration version {current}, newer "
                f"than this package knows (version {latest}); upgrade the "
                "package (or point it at another database) instead of running "
                "setup() against it"
            )
        start = 0 if current is None else current + 1
        return [(v, self.templates[v]) for v in range(start, len(self.templates))]

    def version_check(self, schema: str | None) -> Steps:
        """Raise :class:`IncompatibleSchemaError` if the database is newer
        than this package knows; change nothing. Several histories (the
        store's) are all checked before any of them is migrated, so that a
        refusal leaves the database as it was."""
        versions = self.render("$" + self.versions_table, schema)
        rows = yield Statement(TABLE_EXISTS_SQL, {"table": versions}, True)
        if not (rows and rows[0][0]):
            return None
        current_version = CURRENT_VERSION_SQL.format(versions="$" + self.versions_table)
        rows = yield Statement(self.render(current_version, schema), {}, True)
        self.pending(rows[0][0] if rows else None)
        return None

    def steps(
        self, schema: str | None, *, online: bool, built: Container[int]
    ) -> Steps:
        """The statements of one ``setup()`` transaction.

        Takes the advisory lock, creates the schema and the versions table if
        needed, and applies the pending migrations in order. With ``online``
        (the runner may leave the transaction), it stops before a migration
        in ``online_builds`` that would block writers on a populated table and
        returns its version, for the runner to commit and run
        :meth:`online_steps`, then call this again; a version in ``built`` has
        been applied that way and only gets recorded. Returns ``None`` when
        the database is up to date.
        """
        render = self.render
        versions = "$" + self.versions_table
        yield Statement(SETUP_LOCK_SQL, {"key": self.lock_key})
        if self.refuses is not None:
            table = render(self.refuses.table, schema)
            rows = yield Statement(self.refuses.sql, {"table": table}, True)
            if rows and rows[0][0]:
                raise IncompatibleSchemaError(self.refuses.message.format(table=table))
        if schema is not None:
            rows = yield Statement(SCHEMA_EXISTS_SQL, {"schema": schema}, True)
            # Only create what is missing: CREATE SCHEMA IF NOT EXISTS needs
            # the CREATE privilege even when the schema exists.
            if not (rows and rows[0][0]):
                create = CREATE_SCHEMA_SQL.format(schema=quote_identifier(schema))
                yield Statement(create, {})
        create_versions = CREATE_VERSIONS_SQL.format(versions=versions)
        yield Statement(render(create_versions, schema), {})
        current_version = CURRENT_VERSION_SQL.format(versions=versions)
        rows = yield Statement(render(current_version, schema), {}, True)
        current = rows[0][0] if rows else None
        record = render(RECORD_VERSION_SQL.format(versions=versions), schema)
        for version, template in self.pending(current):
            build = self.online_builds.get(version)
            if online and build is not None and version not in built:
                populated = TABLE_POPULATED_SQL.format(table=build.table)
                rows = yield Statement(render(populated, schema), {}, True)
                if rows and rows[0][0]:
                    return version
            for statement in statements_of(render(template, schema)):
                yield Statement(statement, {})
            yield Statement(record, {"v": version})
        return None

    def online_steps(self, schema: str | None, version: int) -> Steps:
        """Apply migration ``version`` outside a transaction, without blocking
        writers; run with autocommit on, then record the version in a
        transaction (:meth:`steps`).

        Several processes may run this at once. An index that another one is
        building is waited for rather than built again: a second
        ``CREATE INDEX CONCURRENTLY`` would queue for the table lock that the
        first holds, while the first waits for the second's snapshot (the
        server fails one of them; the runner then runs these steps again). An
        index left invalid by an interrupted build is dropped and built again.
        """
        build = self.online_builds[version]
        name = self.render(build.index_name, schema)
        while True:
            rows = yield Statement(INDEX_STATE_SQL, {"index": name}, True)
            if not rows:
                yield Statement(self.render(build.sql, schema), {})
                continue
            valid, building = rows[0]
            if valid:
                return
            if building:
                yield Statement(f"SELECT pg_sleep({INDEX_POLL_SECONDS})", {})
            else:
                yield Statement(DROP_INDEX_ONLINE_SQL.format(index=name), {})
