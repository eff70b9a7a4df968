"""Citus: distribute the saver's tables by ``thread_id`` across worker nodes.

Every operation of a running graph names one thread, so sharding the three
tables by ``thread_id`` (colocated: a thread's checkpoints, blobs and writes
live on the same shard) lets each of them run on one worker. The versions
table becomes a reference table (a copy on every node), since ``setup()``
reads it.

Run ``setup()`` first (it creates the tables, on the coordinator), then
:func:`distribute_tables` once; both are safe to run again::

    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.citus import distribute_tables

    with PostgresSaver.from_conn_string(COORDINATOR_URI) as saver:
        saver.setup()
    distribute_tables(COORDINATOR_URI)   # ['checkpoints', ...] the first time

``docs/beyond-one-server.md`` says which operations stay on one shard.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection

from langgraph.checkpoint.postgres._pg.migrate import run_steps
from langgraph.checkpoint.postgres._pg.migrate_async import (
    run_steps as arun_steps,
)
from langgraph.checkpoint.postgres._pg.schema import check_schema
from langgraph.checkpoint.postgres._pg.statement import Statement, Steps
from langgraph.checkpoint.postgres._sql import render

__all__ = ["CitusNotInstalledError", "adistribute_tables", "distribute_tables"]

#: The tables sharded by ``thread_id``; the first is the one the others are
#: colocated with.
DISTRIBUTED_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

#: The table copied to every node.
REFERENCE_TABLES = ("checkpoint_migrations",)

#: Key of the advisory lock that lets one caller distribute at a time
#: ("lgcd" in ASCII); a second caller then finds the work done.
DISTRIBUTE_LOCK_KEY = 0x6C676364

_CITUS_INSTALLED_SQL = "SELECT 1 FROM pg_extension WHERE extname = 'citus'"

_TABLE_EXISTS_SQL = "SELECT to_regclass(%(table)s) IS NOT NULL"

# The Citus kind of a table: 'h' hash-distributed, 'n' reference (Citus 13
# keeps reference tables with method 'n' and replication model 't'), or no
# row for a plain (or Citus-local) table.
_PARTITION_METHOD_SQL = """
SELECT p.partmethod
FROM pg_dist_partition p
WHERE p.logicalrelid = to_regclass(%(table)s)
"""

# The first table starts (or joins) a colocation group of its shard count;
# the others are colocated with it, which implies its shard count (Citus
# refuses both arguments at once).
_DISTRIBUTE_FIRST_SQL = """
SELECT create_distributed_table(%(table)s, 'thread_id', shard_count => %(shard_count)s)
"""

_DISTRIBUTE_FIRST_DEFAULT_COUNT_SQL = """
SELECT create_distributed_table(%(table)s, 'thread_id')
"""

_DISTRIBUTE_COLOCATED_SQL = """
SELECT create_distributed_table(
    %(table)s, 'thread_id', colocate_with => %(colocate_with)s
)
"""

_REFERENCE_SQL = "SELECT create_reference_table(%(table)s)"

_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"


class CitusNotInstalledError(RuntimeError):
    """The database has no ``citus`` extension (not a Citus coordinator)."""


def distribution_steps(schema: str | None, shard_count: int | None) -> Steps:
    """The statements that distribute the saver's tables, decided as they
    run; returns the names of the tables changed (none when all already are).

    Each table is one statement: Citus refuses a command that changes several
    distributed objects at once.
    """
    rows = yield Statement(_CITUS_INSTALLED_SQL, {}, True)
    if not rows:
        raise CitusNotInstalledError(
            "the database has no citus extension: distribute_tables() runs on a "
            "Citus coordinator (CREATE EXTENSION citus, with the workers added "
            "by citus_add_node); on plain PostgreSQL there is nothing to do"
        )
    yield Statement(_LOCK_SQL, {"key": DISTRIBUTE_LOCK_KEY})
    changed: list[str] = []
    params: dict[str, Any]
    colocate_with = render("$checkpoints", schema)
    for name in DISTRIBUTED_TABLES + REFERENCE_TABLES:
        table = render("$" + name, schema)
        rows = yield Statement(_TABLE_EXISTS_SQL, {"table": table}, True)
        if not (rows and rows[0][0]):
            raise RuntimeError(
                f"table {table} does not exist: run the saver's setup() on the "
                "coordinator before distribute_tables()"
            )
        rows = yield Statement(_PARTITION_METHOD_SQL, {"table": table}, True)
        if rows:
            continue  # already distributed (or a reference table)
        if name in REFERENCE_TABLES:
            yield Statement(_REFERENCE_SQL, {"table": table})
        elif name != DISTRIBUTED_TABLES[0]:
            params = {"table": table, "colocate_with": colocate_with}
            yield Statement(_DISTRIBUTE_COLOCATED_SQL, params)
        elif shard_count is None:
            yield Statement(_DISTRIBUTE_FIRST_DEFAULT_COUNT_SQL, {"table": table})
        else:
            params = {"table": table, "shard_count": shard_count}
            yield Statement(_DISTRIBUTE_FIRST_SQL, params)
        changed.append(name)
    return changed


def _check_shard_count(shard_count: int | None) -> int | None:
    if shard_count is None:
        return None
    if isinstance(shard_count, bool) or not isinstance(shard_count, int):
        raise TypeError(
            f"shard_count must be a positive int or None, not {shard_count!r}"
        )
    if shard_count < 1:
        raise ValueError(
            f"shard_count must be at least 1, not {shard_count}; leave it out "
            "to use the cluster's citus.shard_count (32 by default)"
        )
    return shard_count


def distribute_tables(
    conn: Connection[Any] | str,
    *,
    schema: str | None = None,
    shard_count: int | None = None,
) -> list[str]:
    """Distribute the saver's tables on a Citus coordinator; idempotent.

    ``conn`` is a connection to the coordinator, or its conninfo. The three
    tables are sharded by ``thread_id`` and colocated; ``checkpoint_migrations``
    becomes a reference table. Rows already in the tables move to the shards.
    ``shard_count`` defaults to the cluster's ``citus.shard_count``. Returns
    the names of the tables it changed: ``[]`` when all were distributed.
    Runs in one transaction.

    >>> distribute_tables("postgresql://coordinator/db")  # doctest: +SKIP
    ['checkpoints', 'checkpoint_blobs', 'checkpoint_writes', 'checkpoint_migrations']
    """
    schema = check_schema(schema)
    shard_count = _check_shard_count(shard_count)
    if isinstance(conn, str):
        with Connection.connect(conn, autocommit=True) as owned:
            return distribute_tables(owned, schema=schema, shard_count=shard_count)
    with conn.transaction():
        result: list[str] = run_steps(conn, distribution_steps(schema, shard_count))
    return result


async def adistribute_tables(
    conn: AsyncConnection[Any] | str,
    *,
    schema: str | None = None,
    shard_count: int | None = None,
) -> list[str]:
    """Async twin of :func:`distribute_tables`.

    >>> await adistribute_tables("postgresql://coordinator/db")  # doctest: +SKIP
    ['checkpoints', 'checkpoint_blobs', 'checkpoint_writes', 'checkpoint_migrations']
    """
    schema = check_schema(schema)
    shard_count = _check_shard_count(shard_count)
    if isinstance(conn, str):
        async with await AsyncConnection.connect(conn, autocommit=True) as owned:
            return await adistribute_tables(
                owned, schema=schema, shard_count=shard_count
            )
    async with conn.transaction():
        result: list[str] = await arun_steps(
            conn, distribution_steps(schema, shard_count)
        )
    return result
