"""Everything the Postgres savers share that does no I/O.

The sync saver (:class:`langgraph.checkpoint.postgres.PostgresSaver`) and the
async saver (:class:`langgraph.checkpoint.postgres.aio.AsyncPostgresSaver`)
borrow a connection, execute a :class:`Statement` built here, and hand the rows
back to the decoding methods here. Keeping SQL, migrations and the mapping
between LangGraph objects and rows in one place is what lets both savers stay
thin and behave identically.

The database layout is the one ``langgraph-checkpoint-postgres`` 3.x creates
at migration version 9, so a database can move between that package and this
one in either direction.
"""

from __future__ import annotations

import collections
import functools
import math
import random
import re
import string
from collections.abc import Container, Generator, Iterable, Sequence
from typing import Any, NamedTuple, TypedDict, TypeVar, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from langgraph.checkpoint.postgres._pg import jsonb as _json

T = TypeVar("T")

__all__ = [
    "MIGRATIONS",
    "Batch",
    "BasePostgresSaver",
    "PoolConfig",
    "IncompatibleSchemaError",
    "ListPages",
    "QueuedWrite",
    "Statement",
    "WriteQueue",
]

# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

# SQL in this module names the tables (and indexes it drops) as template
# placeholders, ``$checkpoints`` and so on. `render` fills them in for a
# saver's schema: schema-qualified for a named schema, bare (resolved through
# the connection's search_path, as the 3.x package does) by default.
_OBJECT_NAMES = (
    "checkpoint_migrations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoints_run_id_idx",
    "checkpoints_thread_id_idx",
    "checkpoint_blobs_thread_id_idx",
    "checkpoint_writes_thread_id_idx",
)

#: Postgres truncates longer identifiers, which would merge distinct schemas.
MAX_IDENTIFIER_BYTES = 63


def quote_identifier(name: str) -> str:
    """Quote ``name`` as an SQL identifier (any text is safe; case is kept)."""
    return '"' + name.replace('"', '""') + '"'


def check_schema(schema: str | None) -> str | None:
    """Validate a ``schema=`` argument, with an error that says what to pass."""
    if schema is None:
        return None
    if not isinstance(schema, str):
        raise TypeError(
            f"schema must be a str naming a Postgres schema, not "
            f"{type(schema).__name__} {schema!r}"
        )
    if not schema or "\x00" in schema:
        raise ValueError(
            f"schema {schema!r} is not a usable Postgres schema name: pass a "
            'non-empty name without NUL characters, e.g. schema="tenant_a"'
        )
    if len(schema.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"schema {schema!r} is longer than Postgres' limit of "
            f"{MAX_IDENTIFIER_BYTES} bytes, and Postgres would silently truncate "
            "it: pass a shorter name"
        )
    return schema


def check_timeout(timeout: float | None) -> float | None:
    """Validate a ``timeout=`` argument (seconds, or ``None`` for no limit)."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not timeout > 0
        or not math.isfinite(timeout)
    ):
        raise ValueError(
            f"timeout must be a positive number of seconds or None, not {timeout!r}"
        )
    return float(timeout)


@functools.lru_cache(maxsize=1024)
def render(template: str, schema: str | None) -> str:
    """Fill in the object names of an SQL ``template`` for ``schema``.

    >>> render("SELECT 1 FROM $checkpoints", "tenant_a")
    'SELECT 1 FROM "tenant_a".checkpoints'
    >>> render("SELECT 1 FROM $checkpoints", None)
    'SELECT 1 FROM checkpoints'
    """
    prefix = "" if schema is None else quote_identifier(schema) + "."
    return string.Template(template).substitute(
        {name: prefix + name for name in _OBJECT_NAMES}
    )


#: Migrations by version number, as templates (see `render`): entry ``v``
#: brings a database at version ``v - 1`` to version ``v``. Versions 0-9
#: reproduce, step by step, the layout of ``langgraph-checkpoint-postgres`` 3.x
#: so that databases it created are recognised as ours; our own changes are
#: additive and start at 10. Every statement is idempotent and runs inside a
#: transaction; `ONLINE_INDEX_BUILDS` says how to apply some of them to a
#: populated table without blocking writers.
MIGRATION_TEMPLATES: list[str] = [
    # 0
    "CREATE TABLE IF NOT EXISTS $checkpoint_migrations (v INTEGER PRIMARY KEY)",
    # 1
    """CREATE TABLE IF NOT EXISTS $checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
)""",
    # 2
    """CREATE TABLE IF NOT EXISTS $checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
)""",
    # 3
    """CREATE TABLE IF NOT EXISTS $checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
)""",
    # 4: "empty" blobs carry no payload.
    "ALTER TABLE $checkpoint_blobs ALTER COLUMN blob DROP NOT NULL",
    # 5: a version that changed nothing in the layout.
    "SELECT 1",
    # 6-8: single-column thread_id indexes, as the 3.x layout has them.
    "CREATE INDEX IF NOT EXISTS checkpoints_thread_id_idx ON $checkpoints(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_blobs_thread_id_idx "
    "ON $checkpoint_blobs(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_writes_thread_id_idx "
    "ON $checkpoint_writes(thread_id)",
    # 9
    "ALTER TABLE $checkpoint_writes "
    "ADD COLUMN IF NOT EXISTS task_path TEXT NOT NULL DEFAULT ''",
    # 10 (ours): delete_for_runs finds a run's checkpoints without a scan.
    "CREATE INDEX IF NOT EXISTS checkpoints_run_id_idx "
    "ON $checkpoints ((metadata ->> 'run_id'))",
    # 11 (ours): the single-column thread_id indexes of 6-8 duplicate the
    # leading column of each primary key, which serves the same lookups; they
    # only slow every write. Nothing depends on them.
    "DROP INDEX IF EXISTS $checkpoints_thread_id_idx, "
    "$checkpoint_blobs_thread_id_idx, $checkpoint_writes_thread_id_idx",
]

#: The migrations as they run in the default schema (what
#: ``langgraph-checkpoint-postgres`` calls ``MIGRATIONS``).
MIGRATIONS: list[str] = [render(t, None) for t in MIGRATION_TEMPLATES]

#: Migrations that build an index, by version: the index and the
#: ``CONCURRENTLY`` form of the migration. On a table that already holds rows
#: ``setup()`` runs that form outside any transaction instead, so writers are
#: not locked out while the index is built. (Dropping an index, as 11 does,
#: takes only a moment and stays in the transaction.)
ONLINE_INDEX_BUILDS: dict[int, tuple[str, str]] = {
    10: (
        "$checkpoints_run_id_idx",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_run_id_idx "
        "ON $checkpoints ((metadata ->> 'run_id'))",
    ),
}

#: Key of the transaction-scoped advisory lock that serialises ``setup()``
#: across processes (an arbitrary constant; "lgcp" in ASCII).
SETUP_LOCK_KEY = 0x6C676370

SETUP_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"
CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS {schema}"
SCHEMA_EXISTS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)"
)
CURRENT_VERSION_SQL = "SELECT max(v) FROM $checkpoint_migrations"
RECORD_VERSION_SQL = "INSERT INTO $checkpoint_migrations (v) VALUES (%(v)s)"
TABLE_POPULATED_SQL = "SELECT EXISTS (SELECT 1 FROM $checkpoints)"
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


def collision_pause(collisions: int) -> float:
    """Seconds ``setup()`` waits after its ``collisions``-th collision.

    Random, so that two ``setup()`` that collided do not retry in lockstep
    and collide again (seen as a rare failure of two concurrent setups), and
    growing, up to 2.4 s, so that a busy server gets room.
    """
    return random.uniform(0.5, 1.5) * INDEX_POLL_SECONDS * 2 ** min(collisions, 3)


class PoolConfig(TypedDict, total=False):
    """Settings of the pool that ``from_conn_string(..., pool_config=...)`` opens.

    Each key is the psycopg_pool ``ConnectionPool`` argument of the same name;
    ``check=True`` tests a connection before handing it out, so that one the
    server or a load balancer dropped while idle is replaced, not used.
    """

    min_size: int
    max_size: int
    max_idle: float
    max_lifetime: float
    timeout: float
    check: bool


#: Connection settings the savers' own connections and pools use.
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


def pool_arguments(pool_config: PoolConfig) -> dict[str, Any]:
    """Check ``pool_config`` and turn it into pool constructor arguments."""
    unknown = set(pool_config) - set(PoolConfig.__annotations__)
    if unknown:
        raise ValueError(
            f"unknown pool_config keys {sorted(unknown)}: use "
            + ", ".join(sorted(PoolConfig.__annotations__))
        )
    arguments: dict[str, Any] = {k: v for k, v in pool_config.items() if k != "check"}
    if "max_size" in arguments and "min_size" not in arguments:
        # psycopg_pool's default min_size (4) would exceed a smaller max_size.
        arguments["min_size"] = min(4, arguments["max_size"])
    arguments["kwargs"] = dict(CONNECTION_KWARGS)
    return arguments


class IncompatibleSchemaError(RuntimeError):
    """The database was migrated by a newer version of this package."""


class ConnectionLostError(psycopg.OperationalError):
    """The connection to the server broke (terminated, dropped, or reset).

    A saver on a pool retries the call once on a fresh connection, so this
    reaches the caller only from a saver on a single connection, or when the
    retry failed too.
    """


class CallTimeoutError(psycopg.OperationalError, TimeoutError):
    """The server did not answer within the saver's ``timeout``.

    The connection the call used is closed, since it may be mid-message; a
    pool replaces it.
    """


def connection_lost_message(error: object, *, pooled: bool) -> str:
    """What to tell a caller whose connection broke during a call."""
    if pooled:
        return (
            f"the connection to the database was lost twice in a row ({error}); "
            "the saver retried once on a fresh connection from the pool. Check "
            "that the server is up and reachable"
        )
    return (
        f"the connection to the database was lost ({error}); a saver on a "
        "single connection cannot reconnect. Give the saver a pool, which "
        "replaces lost connections and lets the saver retry: "
        "from_conn_string(uri, pool_config={'max_size': 10, 'check': True}), "
        "or PostgresSaver(ConnectionPool(uri, ...))"
    )


def timeout_message(timeout: float) -> str:
    return (
        f"the database did not answer within the saver's timeout of {timeout:g} "
        "s; the connection was closed. The server may be down, overloaded, or "
        "unreachable (a half-open connection); raise `timeout=` if calls are "
        "legitimately slower"
    )


def replacement_error(
    error: psycopg.OperationalError,
    *,
    timed_out: bool,
    timeout: float | None,
    broken: bool,
    pooled: bool,
) -> psycopg.OperationalError | None:
    """What a call that failed with ``error`` raises instead, if anything.

    :class:`CallTimeoutError` when the saver cut the call off at ``timeout``;
    :class:`ConnectionLostError` when the connection broke under it (the
    signal the savers retry on); ``None`` to let ``error`` through.
    """
    if timed_out:
        return CallTimeoutError(timeout_message(timeout or 0))
    if broken and not isinstance(error, ConnectionLostError):
        return ConnectionLostError(connection_lost_message(error, pooled=pooled))
    return None


# --------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------

# One row per checkpoint of `{selection}` (a query on `checkpoints` that
# filters, orders and limits), with everything needed to rebuild its tuple:
# the blobs its channel_versions point at, its pending writes, and, for
# checkpoints older than format v4, the sends its parent scheduled. The
# selection runs first so that only the rows returned pay for the lookups.
#
# Each of the three comes as one scalar subquery aggregating one array of
# rows: a two-dimensional bytea array, text as UTF-8 bytes (`convert_to`,
# which, unlike a `::bytea` cast, keeps backslashes as they are) and the
# write index as its 4-byte binary form (`int4send`). Against a lateral join
# per kind aggregating one array per column, the server plans the query in
# about two thirds of the time and runs it faster (fewer aggregates, and no
# work at all for the sends of a v4 checkpoint), which counts where the
# query is not prepared (a streamed `list()` page): ~10% less server CPU.
# Writes come unsorted: `_sorted_writes` puts them in `writes_sort_key`
# order, which costs less in Python than sorting aggregates here.
SELECT_CHECKPOINTS_SQL = """
SELECT
    c.thread_id,
    c.checkpoint_ns,
    c.checkpoint_id,
    c.parent_checkpoint_id,
    c.checkpoint,
    c.metadata,
    (
        SELECT array_agg(ARRAY[
            convert_to(bl.channel, 'UTF8'), convert_to(bl.type, 'UTF8'), bl.blob
        ])
        FROM jsonb_each_text(c.checkpoint -> 'channel_versions') cv
        CROSS JOIN LATERAL (
            -- LIMIT keeps this a primary-key lookup per channel: as a plain
            -- join the planner may hash every blob of the thread.
            SELECT x.channel, x.type, x.blob
            FROM $checkpoint_blobs x
            WHERE x.thread_id = c.thread_id
                AND x.checkpoint_ns = c.checkpoint_ns
                AND x.channel = cv.key
                AND x.version = cv.value
            LIMIT 1
        ) bl
        WHERE bl.type <> 'empty'
            -- A channel whose value is inline has no blob: no lookup for it.
            -- Only an inline `true` may be the marker of a blob (a delta
            -- snapshot); no writer stores a blob beside another inline value.
            AND coalesce(c.checkpoint -> 'channel_values' -> cv.key, 'true') = 'true'
    ),
    (
        SELECT array_agg(ARRAY[
            convert_to(cw.task_path, 'UTF8'),
            convert_to(cw.task_id, 'UTF8'),
            int4send(cw.idx),
            convert_to(cw.channel, 'UTF8'),
            convert_to(cw.type, 'UTF8'),
            cw.blob
        ])
        FROM $checkpoint_writes cw
        WHERE cw.thread_id = c.thread_id
            AND cw.checkpoint_ns = c.checkpoint_ns
            AND cw.checkpoint_id = c.checkpoint_id
    ),
    CASE WHEN (c.checkpoint ->> 'v')::int < 4 THEN (
        SELECT array_agg(ARRAY[
            convert_to(ps.task_path, 'UTF8'),
            convert_to(ps.task_id, 'UTF8'),
            int4send(ps.idx),
            convert_to(ps.type, 'UTF8'),
            ps.blob
        ])
        FROM $checkpoint_writes ps
        WHERE ps.thread_id = c.thread_id
            AND ps.checkpoint_ns = c.checkpoint_ns
            AND ps.checkpoint_id = c.parent_checkpoint_id
            AND ps.channel = '__pregel_tasks'
    ) END
FROM ({selection}) c
"""

# The order of `list()`. Within one (thread, namespace) the checkpoint id
# alone orders the rows, and saying so spares the server a sort of the
# page's wide result rows (the primary key already yields them in order).
_NEWEST_FIRST = "ORDER BY c.checkpoint_id DESC, c.thread_id DESC, c.checkpoint_ns DESC"
_NEWEST_FIRST_IN_NAMESPACE = "ORDER BY c.checkpoint_id DESC"

#: Rows ``list()`` fetches per round trip. It streams: between pages it holds
#: no connection and no lock, so the caller's loop body may use the saver.
LIST_PAGE_SIZE = 100

#: Rows of a ``list()``'s first page: small, so that the first item comes
#: soon and decoding starts early (each page is decoded while the server
#: prepares the next).
FIRST_PAGE_SIZE = 20


@functools.lru_cache(maxsize=256)
def _select_checkpoints(
    wheres: tuple[str, ...], order: str = "", limit: str = "", *, ordered: bool = True
) -> str:
    """The read query of the checkpoints matching ``wheres``, picked by the
    ORDER BY clause ``order`` and ``limit``; the result comes in ``order``
    too, unless ``ordered`` is false (a single row needs no ordering)."""
    # Cached: the few shapes of read query are built once, not per call.
    where = f"WHERE {' AND '.join(wheres)}" if wheres else ""
    selection = f"SELECT * FROM $checkpoints c {where} {order} {limit}"
    sql = SELECT_CHECKPOINTS_SQL.format(selection=selection)
    return sql + order if ordered else sql


def _utf8(data: bytes | None) -> Any:
    """Text of a nullable column the read query sent as UTF-8 bytes; ``None``
    stays ``None`` (a write's type tag may be null; the serializer decides)."""
    return None if data is None else data.decode()


def _write_order(row: Sequence[bytes]) -> tuple[bytes, bytes, int]:
    # UTF-8 bytes compare in code point order, as `writes_sort_key` requires
    # whatever the database's collation; the index is a signed 4-byte int.
    return row[0], row[1], int.from_bytes(row[2], "big", signed=True)


def _sorted_writes(rows: Sequence[Sequence[bytes]] | None) -> list[Sequence[bytes]]:
    """The read query's write rows (task path, task id, idx, ...), in
    `writes_sort_key` order.

    (task id, idx) is unique within a checkpoint, so the order never depends
    on the payload columns.
    """
    return sorted(rows, key=_write_order) if rows else []


# `put` and `put_writes` each send one statement: every row is an entry of
# a VALUES list, numbered parameters (`channel_0`, `channel_1`, ...) carry
# what differs between rows, and one parameter what they share (thread,
# namespace, checkpoint, task). A put stores its blobs in a WITH clause of
# the checkpoint upsert. Measured against one statement per row in a
# pipeline (the previous design), this saves about 80 us of client CPU per
# call, psycopg's pipeline bookkeeping, and waits on the socket twice instead
# of up to nine times, which matters under LangGraph's writer threads (each
# wait may cost a GIL handoff). Against a statement unnesting arrays of rows,
# it keeps each payload a binary bytea parameter (%b) that the server need
# not unpack from an array. A VALUES list holds at most `MAX_VALUES_ROWS`
# rows, so that the SQL shapes stay few; more rows take several lists.

#: Rows one VALUES list carries.
MAX_VALUES_ROWS = 32

#: INSERTs up to which a write (or a group of writes) may be prepared.
MAX_PREPARED_PIECES = 8

#: INSERTs one statement carries (about 134 parameters each, well under the
#: 65,535 Postgres allows); a write with more runs as several statements in
#: one transaction.
MAX_STATEMENT_PIECES = 100

# Blobs are immutable per (channel, version), so an existing one is kept.
UPSERT_BLOBS_SQL = """
INSERT INTO $checkpoint_blobs
    (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES
    {rows}
ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
"""
BLOB_ROW = (
    "(%(thread_id)s, %(checkpoint_ns)s, %(channel_{i})s, %(version_{i})s, "
    "%(type_{i})s, %(blob_{i})b)"
)
BLOB_FIELDS = ("channel", "version", "type", "blob")

# A checkpoint written again under the same id replaces its content.
UPSERT_CHECKPOINT_SQL = """
INSERT INTO $checkpoints
    (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
     checkpoint, metadata)
VALUES
    (%(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s,
     %(parent_checkpoint_id)s, %(checkpoint)s, %(metadata)s)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata
"""

# Writes to the special channels (negative idx) replace what a retried task
# wrote before; ordinary writes are idempotent, so the first one stays. One
# statement may not touch a row twice: `_put_writes_statement` keeps one
# write per idx.
UPSERT_WRITES_SQL = """
INSERT INTO $checkpoint_writes AS cw
    (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
     idx, channel, type, blob)
VALUES
    {rows}
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = EXCLUDED.channel,
    type = EXCLUDED.type,
    blob = EXCLUDED.blob
WHERE cw.idx < 0
"""
WRITE_ROW = (
    "(%(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, "
    "%(task_path)s, %(idx_{i})s, %(channel_{i})s, %(type_{i})s, %(blob_{i})b)"
)
WRITE_FIELDS = ("idx", "channel", "type", "blob")
_TASK_WRITES_KEY = ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id")


@functools.lru_cache(maxsize=1024)
def _values_sql(template: str, row: str, start: int, count: int) -> str:
    """``template`` with rows ``start`` to ``start + count - 1`` of ``row``."""
    rows = (row.format(i=i) for i in range(start, start + count))
    return template.replace("{rows}", ",\n    ".join(rows))


def _values_pieces(template: str, row: str, count: int) -> list[str]:
    """INSERTs of ``count`` rows, numbered from 0, ``MAX_VALUES_ROWS`` each."""
    return [
        _values_sql(template, row, start, min(MAX_VALUES_ROWS, count - start))
        for start in range(0, count, MAX_VALUES_ROWS)
    ]


def _numbered(
    common: dict[str, Any], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """Parameters of VALUES rows: ``common`` plus ``field_i`` of row i."""
    params = dict(common)
    for i, row in enumerate(rows):
        for field, value in zip(fields, row):
            params[f"{field}_{i}"] = value
    return params


@functools.lru_cache(maxsize=1024)
def _joined(pieces: tuple[str, ...]) -> str:
    """One statement running every INSERT of ``pieces``: all but the last in
    a WITH clause (Postgres runs data-modifying WITH parts to completion)."""
    *first, last = pieces
    if not first:
        return last
    parts = ",\n".join(f"w{i} AS ({piece})" for i, piece in enumerate(first))
    return f"WITH {parts}\n{last}"


_PLACEHOLDER = re.compile(r"%\((\w+)\)")


@functools.lru_cache(maxsize=1024)
def _prefixed(piece: str, prefix: str) -> str:
    """``piece`` with ``prefix`` before each parameter name."""
    return _PLACEHOLDER.sub(rf"%({prefix}\1)", piece)


DELETE_THREADS_SQL = """
WITH deleted_writes AS (
    DELETE FROM $checkpoint_writes WHERE thread_id = ANY(%(thread_ids)s::text[])
), deleted_blobs AS (
    DELETE FROM $checkpoint_blobs WHERE thread_id = ANY(%(thread_ids)s::text[])
)
DELETE FROM $checkpoints WHERE thread_id = ANY(%(thread_ids)s::text[])
"""


def _populated(checkpoint: str, channel: str) -> str:
    """SQL: whether ``channel`` has a stored value at checkpoint row ``checkpoint``.

    A value is stored inline in the checkpoint JSON (or marked there, for a
    delta snapshot) or as a non-empty blob at the channel's version: exactly
    the channels :meth:`BasePostgresSaver._load_tuple` puts in
    ``channel_values``.
    """
    # A scalar subquery (not EXISTS, which the planner may turn into a join
    # hashing every blob of the thread) keeps this one primary-key lookup.
    return f"""(
        ({checkpoint}.checkpoint -> 'channel_values') ? {channel}
        OR (
            SELECT pb.type <> 'empty' FROM $checkpoint_blobs pb
            WHERE pb.thread_id = {checkpoint}.thread_id
                AND pb.checkpoint_ns = {checkpoint}.checkpoint_ns
                AND pb.channel = {channel}
                AND pb.version
                    = {checkpoint}.checkpoint -> 'channel_versions' ->> {channel}
            LIMIT 1
        ) IS TRUE
    )"""


def _delete_unreferenced_blobs(scope: str) -> str:
    """SQL: delete the blobs matching ``scope`` (a condition on ``b``) that no
    checkpoint in the CTE ``kept`` references.

    It runs as the last part of a statement whose earlier CTEs delete
    checkpoints; those deletions are not visible within the statement, so
    what survives must be named (``kept``) rather than read back.
    """
    return f"""
DELETE FROM $checkpoint_blobs b
WHERE {scope}
    AND NOT EXISTS (
        SELECT 1
        FROM kept k
        JOIN $checkpoints kc
            ON kc.thread_id = k.thread_id
            AND kc.checkpoint_ns = k.checkpoint_ns
            AND kc.checkpoint_id = k.checkpoint_id
        WHERE k.thread_id = b.thread_id
            AND k.checkpoint_ns = b.checkpoint_ns
            AND kc.checkpoint -> 'channel_versions' ->> b.channel = b.version
    )
"""


def _not_kept(row: str) -> str:
    """SQL: the checkpoint (or write) ``row`` belongs to is not in ``kept``."""
    return f"""NOT EXISTS (
        SELECT 1 FROM kept k
        WHERE k.thread_id = {row}.thread_id
            AND k.checkpoint_ns = {row}.checkpoint_ns
            AND k.checkpoint_id = {row}.checkpoint_id
    )"""


# Keep, per namespace of each thread, the newest checkpoint and, for every
# delta channel it does not hold itself, the chain of ancestors back to the
# nearest one that stores the channel's value (a snapshot), so that replaying
# their writes rebuilds the same state. Delete every other checkpoint, their
# writes, and the blobs no kept checkpoint references.
PRUNE_KEEP_LATEST_SQL = f"""
WITH RECURSIVE latest AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns) *
    FROM $checkpoints
    WHERE thread_id = ANY(%(thread_ids)s::text[])
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), chain AS (
    SELECT l.thread_id, l.checkpoint_ns, l.checkpoint_id, l.parent_checkpoint_id,
        ARRAY(
            SELECT ch
            FROM jsonb_object_keys(
                CASE jsonb_typeof(l.metadata -> 'counters_since_delta_snapshot')
                WHEN 'object' THEN l.metadata -> 'counters_since_delta_snapshot'
                END
            ) ch
            WHERE NOT {_populated("l", "ch")}
        ) AS missing
    FROM latest l
    UNION ALL
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
        ARRAY(
            SELECT ch FROM unnest(c.missing) ch WHERE NOT {_populated("p", "ch")}
        )
    FROM chain c
    JOIN $checkpoints p
        ON p.thread_id = c.thread_id
        AND p.checkpoint_ns = c.checkpoint_ns
        AND p.checkpoint_id = c.parent_checkpoint_id
    WHERE cardinality(c.missing) > 0
), kept AS (
    SELECT DISTINCT thread_id, checkpoint_ns, checkpoint_id FROM chain
), deleted_writes AS (
    DELETE FROM $checkpoint_writes w
    WHERE w.thread_id = ANY(%(thread_ids)s::text[]) AND {_not_kept("w")}
), deleted_checkpoints AS (
    DELETE FROM $checkpoints c
    WHERE c.thread_id = ANY(%(thread_ids)s::text[]) AND {_not_kept("c")}
)
{_delete_unreferenced_blobs("b.thread_id = ANY(%(thread_ids)s::text[])")}
"""

_DOOMED_NAMESPACES = (
    "(b.thread_id, b.checkpoint_ns) IN (SELECT thread_id, checkpoint_ns FROM doomed)"
)

# Delete the checkpoints a run created, in every thread and namespace, with
# their writes and the blobs that only they referenced.
DELETE_FOR_RUNS_SQL = f"""
WITH doomed AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id
    FROM $checkpoints
    WHERE metadata ->> 'run_id' = ANY(%(run_ids)s::text[])
), kept AS (
    SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id
    FROM $checkpoints c
    WHERE c.thread_id IN (SELECT thread_id FROM doomed)
    EXCEPT
    SELECT thread_id, checkpoint_ns, checkpoint_id FROM doomed
), deleted_writes AS (
    DELETE FROM $checkpoint_writes w
    USING doomed d
    WHERE w.thread_id = d.thread_id
        AND w.checkpoint_ns = d.checkpoint_ns
        AND w.checkpoint_id = d.checkpoint_id
), deleted_checkpoints AS (
    DELETE FROM $checkpoints c
    USING doomed d
    WHERE c.thread_id = d.thread_id
        AND c.checkpoint_ns = d.checkpoint_ns
        AND c.checkpoint_id = d.checkpoint_id
)
{_delete_unreferenced_blobs(_DOOMED_NAMESPACES)}
"""

# Copy every checkpoint, blob and write of a thread, in every namespace, to
# another thread id, keeping ids, parents and metadata. Rows the target
# already has are kept.
COPY_THREAD_SQL = """
WITH copied_checkpoints AS (
    INSERT INTO $checkpoints
        (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
         checkpoint, metadata)
    SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
        checkpoint, metadata
    FROM $checkpoints
    WHERE thread_id = %(source)s
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING
), copied_blobs AS (
    INSERT INTO $checkpoint_blobs
        (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT %(target)s, checkpoint_ns, channel, version, type, blob
    FROM $checkpoint_blobs
    WHERE thread_id = %(source)s
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO $checkpoint_writes
    (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
     type, blob)
SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
    type, blob
FROM $checkpoint_writes
WHERE thread_id = %(source)s
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING
"""

# The ancestors of one checkpoint, nearest first, walked in one query for as
# long as some requested channel has no stored value yet. For each ancestor:
# the channels still wanted when it is reached (`wanted`), and after it
# (`left`); the values of those it stores (wanted minus left); and its
# writes to the wanted channels in `writes_sort_key` order.
DELTA_HISTORY_SQL = f"""
WITH RECURSIVE target AS (
    SELECT thread_id, checkpoint_ns, parent_checkpoint_id
    FROM $checkpoints
    WHERE thread_id = %(thread_id)s
        AND checkpoint_ns = %(checkpoint_ns)s
        AND (%(checkpoint_id)s::text IS NULL OR checkpoint_id = %(checkpoint_id)s)
    ORDER BY checkpoint_id DESC
    LIMIT 1
), walk AS (
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
        1 AS depth,
        %(channels)b::text[] AS wanted,
        ARRAY(
            SELECT ch FROM unnest(%(channels)b::text[]) ch
            WHERE NOT {_populated("p", "ch")}
        ) AS left_after
    FROM target t
    JOIN $checkpoints p
        ON p.thread_id = t.thread_id
        AND p.checkpoint_ns = t.checkpoint_ns
        AND p.checkpoint_id = t.parent_checkpoint_id
    UNION ALL
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
        w.depth + 1,
        w.left_after,
        ARRAY(
            SELECT ch FROM unnest(w.left_after) ch
            WHERE NOT {_populated("p", "ch")}
        )
    FROM walk w
    JOIN $checkpoints p
        ON p.thread_id = w.thread_id
        AND p.checkpoint_ns = w.checkpoint_ns
        AND p.checkpoint_id = w.parent_checkpoint_id
    WHERE cardinality(w.left_after) > 0
)
SELECT
    w.depth,
    s.channels,
    s.inline_values,
    s.types,
    s.blobs,
    cw.task_ids,
    cw.channels,
    cw.types,
    cw.blobs
FROM walk w
JOIN $checkpoints c
    ON c.thread_id = w.thread_id
    AND c.checkpoint_ns = w.checkpoint_ns
    AND c.checkpoint_id = w.checkpoint_id
CROSS JOIN LATERAL (
    SELECT
        array_agg(ch) AS channels,
        array_agg(c.checkpoint -> 'channel_values' -> ch) AS inline_values,
        array_agg(bl.type) AS types,
        array_agg(bl.blob) AS blobs
    FROM unnest(w.wanted) ch
    LEFT JOIN LATERAL (
        SELECT x.type, x.blob
        FROM $checkpoint_blobs x
        WHERE x.thread_id = c.thread_id
            AND x.checkpoint_ns = c.checkpoint_ns
            AND x.channel = ch
            AND x.version = c.checkpoint -> 'channel_versions' ->> ch
            AND x.type <> 'empty'
        LIMIT 1
    ) bl ON true
    WHERE ch <> ALL(w.left_after)
) s
CROSS JOIN LATERAL (
    SELECT
        array_agg(x.task_id ORDER BY
            x.task_path COLLATE "C", x.task_id COLLATE "C", x.idx
        ) AS task_ids,
        array_agg(x.channel ORDER BY
            x.task_path COLLATE "C", x.task_id COLLATE "C", x.idx
        ) AS channels,
        array_agg(x.type ORDER BY
            x.task_path COLLATE "C", x.task_id COLLATE "C", x.idx
        ) AS types,
        array_agg(x.blob ORDER BY
            x.task_path COLLATE "C", x.task_id COLLATE "C", x.idx
        ) AS blobs
    FROM $checkpoint_writes x
    WHERE x.thread_id = c.thread_id
        AND x.checkpoint_ns = c.checkpoint_ns
        AND x.checkpoint_id = c.checkpoint_id
        AND x.channel = ANY(w.wanted)
) cw
ORDER BY w.depth
"""

#: Strategies ``prune`` accepts.
PRUNE_STRATEGIES = ("keep_latest", "delete")


class Statement(NamedTuple):
    """A SQL statement and its parameters, ready for ``cursor.execute``.

    ``fetch`` marks a statement whose rows the caller wants back (setup steps
    use it; other statements are simply fetched or not by the method running
    them).
    """

    sql: str
    params: dict[str, Any]
    fetch: bool = False


class Batch(NamedTuple):
    """A write (``put``, ``put_writes``, or a group of them): INSERTs that run
    as one statement, all-or-nothing.

    ``keys`` name the rows the INSERTs write. Writes are combined only when
    no two share a key: one statement may not update a row twice, and the
    parts of a statement run in no set order, where separate writes would
    run one after the other.
    """

    pieces: tuple[str, ...]
    params: dict[str, Any]
    keys: frozenset[tuple[Any, ...]]
    #: ``cursor.execute(prepare=...)``: ``None`` lets psycopg decide (by the
    #: connection's ``prepare_threshold``); ``False`` for large writes.
    prepare: bool | None = None

    def statements(self) -> list[Statement]:
        """The statements to run in one transaction: one, unless the batch
        carries more than ``MAX_STATEMENT_PIECES`` INSERTs."""
        return [
            Statement(_joined(tuple(pieces)), self.params)
            for pieces in _chunks(self.pieces, MAX_STATEMENT_PIECES)
        ]


def _write_batch(
    pieces: Sequence[str], params: dict[str, Any], keys: frozenset[tuple[Any, ...]]
) -> Batch:
    # Writes of a few INSERTs come in few shapes, which psycopg may prepare
    # (its cache of prepared statements is bounded); larger ones are too
    # varied. Prepared, a group costs the server what its writes would cost
    # alone; unprepared, planning it takes about 0.4 ms (measured).
    prepare = None if len(pieces) <= MAX_PREPARED_PIECES else False
    return Batch(tuple(pieces), params, keys, prepare)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class QueuedWrite:
    """A write batch waiting for the shared connection, and how it ended."""

    __slots__ = ("batch", "done", "error")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.done = False
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error

    def outcome(self) -> None:
        """Return once stored; raise what storing it raised."""
        if self.error is not None:
            raise self.error
        if not self.done:  # cannot happen: an interrupted run puts it back
            raise RuntimeError("the write was not run")


class WriteQueue:
    """Writes of a saver with one shared connection, committed in groups.

    LangGraph stores a checkpoint and the writes of the next step from
    background threads (or tasks), so several writes often wait for the one
    connection at once. Whoever gets to run takes every write waiting and
    commits them in one statement: one WAL flush instead of one each. Each
    write is still all-or-nothing, and its caller returns only after the
    commit that holds it. If a group fails, its writes run again one by one,
    so that a bad write fails only its own caller; so do the writes of a
    group in which two write one row, in the order they were made.
    """

    def __init__(self) -> None:
        # deque: append and popleft are atomic across threads.
        self._waiting: collections.deque[QueuedWrite] = collections.deque()

    def add(self, batch: Batch) -> QueuedWrite:
        """Queue ``batch``; the returned entry tells when it is stored."""
        entry = QueuedWrite(batch)
        self._waiting.append(entry)
        return entry

    def take(self) -> list[QueuedWrite]:
        """Every write waiting now, oldest first."""
        group: list[QueuedWrite] = []
        while self._waiting:
            group.append(self._waiting.popleft())
        return group

    def put_back(self, group: Sequence[QueuedWrite], mine: QueuedWrite) -> None:
        """Queue again, first, the writes of ``group`` that did not run.

        For a run that was interrupted (a cancelled task, KeyboardInterrupt):
        the next caller to run commits them. ``mine``, the interrupted
        caller's own write, is dropped: its caller sees the interruption.
        """
        for entry in reversed(group):
            if not entry.done and entry is not mine:
                self._waiting.appendleft(entry)

    @staticmethod
    def combined(group: Sequence[QueuedWrite]) -> Batch | None:
        """``group`` as one statement, or ``None`` when its writes must run
        one by one: two of them write one row, or they exceed one statement."""
        if sum(len(entry.batch.pieces) for entry in group) > MAX_STATEMENT_PIECES:
            return None
        keys: set[tuple[Any, ...]] = set()
        pieces: list[str] = []
        params: dict[str, Any] = {}
        for number, entry in enumerate(group):
            batch = entry.batch
            if not keys.isdisjoint(batch.keys):
                return None
            keys |= batch.keys
            # Each write's parameters get their own names in the statement.
            prefix = f"g{number}_"
            pieces += (_prefixed(piece, prefix) for piece in batch.pieces)
            params.update((prefix + name, v) for name, v in batch.params.items())
        return _write_batch(pieces, params, frozenset(keys))


#: A sequence of statements decided as it runs: the saver executes each
#: statement it yields and sends back the rows (for ``fetch`` statements), so
#: that the decisions stay here, free of I/O. The generator's return value
#: tells the saver what to do next.
Steps = Generator[Statement, "list[Any] | None", Any]


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

# JSONB numbers are exact decimals; far beyond any real value, an integer
# goes to a blob (and the serializer says whether it can hold it).
_INT_LIMIT = 10**1000

# Marker left in the checkpoint JSON for a channel whose value is a
# `_DeltaSnapshot` blob, so that SQL can find snapshot checkpoints without
# reading blobs (the convention of the 3.x layout).
_DELTA_SNAPSHOT_MARKER = True


def _is_inline(value: Any) -> bool:
    """Whether ``value`` round-trips unchanged through the checkpoint JSONB.

    Exact types only: a ``str`` or ``int`` subclass (an enum member, say) goes
    to a blob so that it comes back as itself. Strings with NUL, floats that
    JSON cannot hold or that JSONB would normalise (NaN, infinities, -0.0,
    exponents such as ``1e20``, which JSONB prints as an integer) go to blobs
    too.
    """
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is str:
        return "\x00" not in value
    if kind is int:
        return -_INT_LIMIT < value < _INT_LIMIT
    if kind is float:
        if not math.isfinite(value) or (value == 0.0 and math.copysign(1, value) < 0):
            return False
        return b"e" not in _json.dumps(value)
    return False


def _text(value: Any, field: str) -> str:
    """``value`` as the text stored in column ``field``, which cannot hold NUL."""
    text = str(value)
    if "\x00" in text:
        raise ValueError(
            f"{field} {text!r} contains a NUL character (\\x00), which Postgres "
            f"text columns cannot store: remove it from the {field}"
        )
    return text


# A JSON escape of U+0000 (which JSONB cannot store), not preceded by an odd
# number of backslashes (which would make it the literal text "\u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _jsonb(value: Any, what: str) -> Jsonb:
    """Encode ``value`` for a JSONB column now, refusing what JSONB would
    reject or alter, with an error that names ``what`` holds it."""
    data = _json.dumps(value)
    if b"\\u0000" in data and _NUL_ESCAPE.search(data):
        raise ValueError(
            f"the {what} contains a NUL character (\\x00) in a key or string, "
            "which Postgres JSONB cannot store: remove it (or encode the value, "
            "e.g. as base64)"
        )
    return _json.jsonb_text(data)


def _check_finite(value: Any, path: str) -> None:
    """Refuse NaN and infinities, which orjson would write as null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value!r}, which JSON cannot hold (it would be stored "
                "as null): store it as a string, e.g. str(value)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")


def _thread_id(configurable: dict[str, Any]) -> str:
    try:
        thread_id = configurable["thread_id"]
    except KeyError:
        raise ValueError(
            'config["configurable"] has no "thread_id": pass '
            '{"configurable": {"thread_id": ...}} to identify the thread'
        ) from None
    return _text(thread_id, "thread_id")


def _namespace(configurable: dict[str, Any]) -> str:
    return _text(configurable.get("checkpoint_ns") or "", "checkpoint_ns")


def _configurable(config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable")
    if not isinstance(configurable, dict):
        raise ValueError(
            'config has no "configurable" dict: pass '
            '{"configurable": {"thread_id": ...}}'
        )
    return configurable


def _checkpoint_config(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str
) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


# --------------------------------------------------------------------------
# The saver base
# --------------------------------------------------------------------------


class BasePostgresSaver(BaseCheckpointSaver[str]):
    """Shared, I/O-free part of the Postgres checkpoint savers.

    Subclasses own a connection (or pool) and implement the I/O: each public
    method asks this class for a :class:`Statement`, executes it, and passes
    the resulting rows to :meth:`_load_tuple`.
    """

    MIGRATIONS = MIGRATIONS
    supports_pipeline: bool = False

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(serde=serde)
        #: The Postgres schema holding the tables; ``None`` means whichever
        #: the connection's ``search_path`` finds (usually ``public``).
        self.schema = check_schema(schema)
        #: Seconds a database call may wait for the server; ``None``: no limit.
        self.timeout = check_timeout(timeout)

    def _sql(self, template: str) -> str:
        """``template`` with the tables of this saver's schema filled in."""
        return render(template, self.schema)

    # -- versions ----------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """Return the channel version after ``current``.

        Versions are strings that compare correctly as strings: a 32-digit
        zero-padded counter, a dot, and a random fraction, so that two forks
        of one checkpoint never produce the same version.

        >>> saver = BasePostgresSaver()
        >>> v1 = saver.get_next_version(None)
        >>> v1.startswith("00000000000000000000000000000001.")
        True
        >>> saver.get_next_version(v1) > v1
        True
        """
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(str(current).split(".", 1)[0])
        return f"{counter + 1:032}.{random.random():016}"

    # -- migrations ----------------------------------------------------------

    @staticmethod
    def _pending_migrations(current: int | None) -> list[tuple[int, str]]:
        """Migrations (as templates) to apply to a database at version ``current``.

        ``None`` means a database with no migration recorded yet. A database
        newer than this package is refused rather than guessed at.
        """
        latest = len(MIGRATION_TEMPLATES) - 1
        if current is not None and current > latest:
            raise IncompatibleSchemaError(
                f"the database schema is at migration version {current}, newer "
                f"than this package knows (version {latest}); upgrade the "
                "package (or point it at another database) instead of running "
                "setup() against it"
            )
        start = 0 if current is None else current + 1
        return [(v, MIGRATION_TEMPLATES[v]) for v in range(start, latest + 1)]

    def _migration_steps(self, *, online: bool, built: Container[int]) -> Steps:
        """The statements of one ``setup()`` transaction.

        Takes the advisory lock, creates the schema and migration table if
        needed, and applies the pending migrations in order. With ``online``
        (the saver may leave the transaction), it stops before a migration in
        `ONLINE_INDEX_BUILDS` that would block writers on a populated table and
        returns its version, for the saver to commit and run
        :meth:`_online_migration_steps`, then call this again; a version in
        ``built`` has been applied that way and only gets recorded. Returns
        ``None`` when the database is up to date.
        """
        yield Statement(SETUP_LOCK_SQL, {"key": SETUP_LOCK_KEY})
        if self.schema is not None:
            rows = yield Statement(SCHEMA_EXISTS_SQL, {"schema": self.schema}, True)
            # Only create what is missing: CREATE SCHEMA IF NOT EXISTS needs
            # the CREATE privilege even when the schema exists.
            if not (rows and rows[0][0]):
                create = CREATE_SCHEMA_SQL.format(schema=quote_identifier(self.schema))
                yield Statement(create, {})
        yield Statement(self._sql(MIGRATION_TEMPLATES[0]), {})
        rows = yield Statement(self._sql(CURRENT_VERSION_SQL), {}, True)
        current = rows[0][0] if rows else None
        for version, template in self._pending_migrations(current):
            if online and version in ONLINE_INDEX_BUILDS and version not in built:
                rows = yield Statement(self._sql(TABLE_POPULATED_SQL), {}, True)
                if rows and rows[0][0]:
                    return version
            yield Statement(self._sql(template), {})
            yield Statement(self._sql(RECORD_VERSION_SQL), {"v": version})
        return None

    def _online_migration_steps(self, version: int) -> Steps:
        """Apply migration ``version`` outside a transaction, without blocking
        writers; run with autocommit on, then record the version in a
        transaction (:meth:`_migration_steps`).

        Several processes may run this at once. An index that another one is
        building is waited for rather than built again: a second
        ``CREATE INDEX CONCURRENTLY`` would queue for the table lock that the
        first holds, while the first waits for the second's snapshot (the
        server fails one of them; the saver then runs these steps again). An
        index left invalid by an interrupted build is dropped and built again.
        """
        index, build = ONLINE_INDEX_BUILDS[version]
        name = self._sql(index)
        while True:
            rows = yield Statement(INDEX_STATE_SQL, {"index": name}, True)
            if not rows:
                yield Statement(self._sql(build), {})
                continue
            valid, building = rows[0]
            if valid:
                return
            if building:
                yield Statement(f"SELECT pg_sleep({INDEX_POLL_SECONDS})", {})
            else:
                yield Statement(DROP_INDEX_ONLINE_SQL.format(index=name), {})

    # -- statements --------------------------------------------------------

    def _get_tuple_statement(self, config: RunnableConfig) -> Statement:
        configurable = _configurable(config)
        params = {
            "thread_id": _thread_id(configurable),
            "checkpoint_ns": _namespace(configurable),
        }
        wheres = ["c.thread_id = %(thread_id)s", "c.checkpoint_ns = %(checkpoint_ns)s"]
        if checkpoint_id := configurable.get("checkpoint_id"):
            params["checkpoint_id"] = _text(checkpoint_id, "checkpoint_id")
            wheres.append("c.checkpoint_id = %(checkpoint_id)s")
            return Statement(self._sql(_select_checkpoints(tuple(wheres))), params)
        selection = _select_checkpoints(
            tuple(wheres), _NEWEST_FIRST_IN_NAMESPACE, "LIMIT 1", ordered=False
        )
        return Statement(self._sql(selection), params)

    def _list_pages(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> ListPages:
        """Plan the ``list()`` queries.

        ``config`` narrows to a thread (every namespace unless
        ``checkpoint_ns`` is given) or a single checkpoint; ``filter`` matches
        metadata by JSON containment; ``before`` keeps checkpoints older than
        the one it names. Newest first.
        """
        wheres: list[str] = []
        params: dict[str, Any] = {}
        if config is not None:
            configurable = _configurable(config)
            if "thread_id" in configurable:
                wheres.append("c.thread_id = %(thread_id)s")
                params["thread_id"] = _thread_id(configurable)
            checkpoint_ns = configurable.get("checkpoint_ns")
            if checkpoint_ns is not None:
                wheres.append("c.checkpoint_ns = %(checkpoint_ns)s")
                params["checkpoint_ns"] = _text(checkpoint_ns, "checkpoint_ns")
            if checkpoint_id := configurable.get("checkpoint_id"):
                wheres.append("c.checkpoint_id = %(checkpoint_id)s")
                params["checkpoint_id"] = _text(checkpoint_id, "checkpoint_id")
        if filter:
            wheres.append("c.metadata @> %(filter)s")
            params["filter"] = _jsonb(filter, "filter")
        if before is not None:
            before_id = _configurable(before).get("checkpoint_id")
            if not before_id:
                raise ValueError(
                    'before["configurable"] has no "checkpoint_id": pass the '
                    "config of the checkpoint to list before"
                )
            wheres.append("c.checkpoint_id < %(before)s")
            params["before"] = _text(before_id, "checkpoint_id")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValueError(f"limit must be a non-negative int, not {limit!r}")
        one_namespace = "thread_id" in params and "checkpoint_ns" in params
        return ListPages(self, wheres, params, limit, one_namespace)

    def _put_statement(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Batch, RunnableConfig]:
        """Build the ``put`` statements and the config ``put`` returns.

        Values that JSON holds exactly stay inline in the checkpoint JSONB
        (unless the serializer encrypts);
        every other value of a channel in ``new_versions`` becomes a blob keyed
        by (channel, version). Channels without a value get no row (older
        layouts wrote ``empty`` blobs for them, which readers skip).
        """
        configurable = _configurable(config)
        thread_id = _thread_id(configurable)
        checkpoint_ns = _namespace(configurable)
        parent_id = configurable.get("checkpoint_id")
        if parent_id is not None:
            parent_id = _text(parent_id, "checkpoint_id")
        checkpoint_id = _text(checkpoint["id"], "checkpoint_id")

        inline: dict[str, Any] = {}
        stored: dict[str, Any] = {}
        # With an encrypting serializer every value goes to a blob: inline
        # JSON would keep it in plaintext.
        may_inline = not isinstance(self.serde, EncryptedSerializer)
        for channel, value in checkpoint["channel_values"].items():
            if may_inline and _is_inline(value):
                inline[channel] = value
            else:
                stored[channel] = value
                if isinstance(value, _DeltaSnapshot):
                    inline[channel] = _DELTA_SNAPSHOT_MARKER

        blob_rows: list[tuple[str, str, str, bytes]] = []
        for channel, version in new_versions.items():
            _text(channel, "channel")
            if channel in stored:
                type_, blob = self.serde.dumps_typed(stored[channel])
                version = _text(version, "channel version")
                blob_rows.append((channel, version, type_, blob))

        document = {**checkpoint, "channel_values": inline}
        # LangGraph's helper below drops NUL from top-level strings; refuse
        # them first, as the serialized check refuses them everywhere else.
        for key, value in metadata.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(
                    f"metadata[{key!r}] contains a NUL character (\\x00), which "
                    "Postgres JSONB cannot store: remove it (or encode the value, "
                    "e.g. as base64)"
                )
        stored_metadata = get_serializable_checkpoint_metadata(config, metadata)
        _check_finite(stored_metadata, "metadata")
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "parent_checkpoint_id": parent_id,
            # Channel names are keys of the checkpoint JSON.
            "checkpoint": _jsonb(document, "checkpoint (a channel name)"),
            "metadata": _jsonb(stored_metadata, "metadata"),
        }
        # The blobs are stored by the same statement as the checkpoint (the
        # same transaction, for thousands), so a reader never finds one
        # without the other.
        pieces = _values_pieces(UPSERT_BLOBS_SQL, BLOB_ROW, len(blob_rows))
        pieces.append(UPSERT_CHECKPOINT_SQL)
        keys: set[tuple[Any, ...]] = {
            ("checkpoint", thread_id, checkpoint_ns, checkpoint_id)
        }
        keys.update(("blob", thread_id, checkpoint_ns, c, v) for c, v, *_ in blob_rows)
        batch = _write_batch(
            [self._sql(piece) for piece in pieces],
            _numbered(params, BLOB_FIELDS, blob_rows),
            frozenset(keys),
        )
        next_config = _checkpoint_config(thread_id, checkpoint_ns, checkpoint_id)
        return batch, next_config

    def _put_writes_statement(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Batch | None:
        """Build the ``put_writes`` statements; ``None`` when there is nothing."""
        configurable = _configurable(config)
        thread_id = _thread_id(configurable)
        checkpoint_id = configurable.get("checkpoint_id")
        if not checkpoint_id:
            raise ValueError(
                'config["configurable"] has no "checkpoint_id": writes belong '
                "to a checkpoint; pass the config that put() returned"
            )
        # A special channel has one fixed index; within one batch its last
        # write wins, as it would across batches.
        by_idx: dict[int, tuple[str, Any]] = {}
        for position, (channel, value) in enumerate(writes):
            by_idx[WRITES_IDX_MAP.get(channel, position)] = (channel, value)
        if not by_idx:
            return None
        common = {
            "thread_id": thread_id,
            "checkpoint_ns": _namespace(configurable),
            "checkpoint_id": _text(checkpoint_id, "checkpoint_id"),
            "task_id": _text(task_id, "task_id"),
            "task_path": _text(task_path, "task_path"),
        }
        rows: list[tuple[int, str, str, bytes]] = []
        for idx, (channel, value) in by_idx.items():
            type_, blob = self.serde.dumps_typed(value)
            rows.append((idx, _text(channel, "channel"), type_, blob))
        pieces = _values_pieces(UPSERT_WRITES_SQL, WRITE_ROW, len(rows))
        # The rows of one task's writes to one checkpoint.
        key = ("writes", *(common[name] for name in _TASK_WRITES_KEY))
        return _write_batch(
            [self._sql(piece) for piece in pieces],
            _numbered(common, WRITE_FIELDS, rows),
            frozenset({key}),
        )

    def _delete_thread_statement(self, thread_id: str) -> Statement:
        return Statement(
            self._sql(DELETE_THREADS_SQL),
            {"thread_ids": [_text(thread_id, "thread_id")]},
        )

    def _delete_for_runs_statement(self, run_ids: Sequence[str]) -> Statement | None:
        """Build the ``delete_for_runs`` statement; ``None`` for no run ids."""
        ids = _id_list(run_ids, "run_ids", "delete_for_runs")
        if not ids:
            return None
        return Statement(self._sql(DELETE_FOR_RUNS_SQL), {"run_ids": ids})

    def _copy_thread_statement(
        self, source_thread_id: str, target_thread_id: str
    ) -> Statement:
        return Statement(
            self._sql(COPY_THREAD_SQL),
            {
                "source": _text(source_thread_id, "thread_id"),
                "target": _text(target_thread_id, "thread_id"),
            },
        )

    def _prune_statement(
        self, thread_ids: Sequence[str], strategy: str
    ) -> Statement | None:
        """Build the ``prune`` statement; ``None`` for no thread ids."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}: use one of "
                + ", ".join(repr(s) for s in PRUNE_STRATEGIES)
            )
        ids = _id_list(thread_ids, "thread_ids", "prune")
        if not ids:
            return None
        sql = PRUNE_KEEP_LATEST_SQL if strategy == "keep_latest" else DELETE_THREADS_SQL
        return Statement(self._sql(sql), {"thread_ids": ids})

    def _delta_history_statement(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Statement:
        configurable = _configurable(config)
        checkpoint_id = configurable.get("checkpoint_id")
        return Statement(
            self._sql(DELTA_HISTORY_SQL),
            {
                "thread_id": _thread_id(configurable),
                "checkpoint_ns": _namespace(configurable),
                "checkpoint_id": (
                    _text(checkpoint_id, "checkpoint_id") if checkpoint_id else None
                ),
                "channels": list(dict.fromkeys(channels)),
            },
        )

    def _load_delta_history(
        self, rows: Sequence[Sequence[Any]], channels: Sequence[str]
    ) -> dict[str, DeltaChannelHistory]:
        """Assemble ``get_delta_channel_history``'s result from the walk's rows.

        ``rows`` are the visited ancestors, nearest first. Writes come out
        oldest first, each ancestor's in ``writes_sort_key`` order; the seed is
        the value at the nearest ancestor that stores one.
        """
        loads = self.serde.loads_typed
        writes: dict[str, list[PendingWrite]] = {ch: [] for ch in channels}
        seeds: dict[str, Any] = {}
        for row in reversed(rows):
            (
                _depth,
                seed_channels,
                seed_inline,
                seed_types,
                seed_payloads,
                task_ids,
                write_channels,
                write_types,
                write_payloads,
            ) = row
            for channel, inline, type_, payload in zip(
                seed_channels or (),
                seed_inline or (),
                seed_types or (),
                seed_payloads or (),
            ):
                seeds[channel] = inline if type_ is None else loads((type_, payload))
            for task_id, channel, type_, payload in zip(
                task_ids or (),
                write_channels or (),
                write_types or (),
                write_payloads or (),
            ):
                writes[channel].append((task_id, channel, loads((type_, payload))))
        result: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            entry: DeltaChannelHistory = {"writes": writes[channel]}
            if channel in seeds:
                entry["seed"] = seeds[channel]
            result[channel] = entry
        return result

    # -- rows to tuples ----------------------------------------------------

    def _load_tuple(self, row: Sequence[Any]) -> CheckpointTuple:
        """Rebuild a :class:`CheckpointTuple` from a row of the checkpoint query."""
        (
            thread_id,
            checkpoint_ns,
            checkpoint_id,
            parent_id,
            document,
            metadata,
            blobs,
            writes,
            sends,
        ) = row
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, document)
        channel_values: dict[str, Any] = checkpoint.get("channel_values") or {}
        if blobs:
            for channel, type_, payload in blobs:
                channel_values[channel.decode()] = loads((type_.decode(), payload))
        checkpoint["channel_values"] = channel_values
        if sends:
            _move_sends_into_channels(
                checkpoint,
                [
                    loads((_utf8(type_), payload))
                    for *_, type_, payload in _sorted_writes(sends)
                ],
            )
        pending_writes: list[PendingWrite] = [
            (task_id.decode(), channel.decode(), loads((_utf8(type_), payload)))
            for _, task_id, _, channel, type_, payload in _sorted_writes(writes)
        ]
        return CheckpointTuple(
            config=_checkpoint_config(thread_id, checkpoint_ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, metadata),
            parent_config=(
                _checkpoint_config(thread_id, checkpoint_ns, parent_id)
                if parent_id
                else None
            ),
            pending_writes=pending_writes,
        )

    def _load_tuples(self, rows: Iterable[Sequence[Any]]) -> list[CheckpointTuple]:
        return [self._load_tuple(row) for row in rows]


class ListPages:
    """Keyset pagination of one ``list()`` call; holds no connection.

    The savers loop: ``next_statement()``, execute it, ``receive()`` the
    page's row count and last row, until ``next_statement()`` returns
    ``None``. Each page resumes after the last row of the previous one,
    ordered by (checkpoint_id, thread_id, checkpoint_ns) descending, so the
    next page's query is known as soon as a page's last row arrives, before
    the page is decoded.
    """

    def __init__(
        self,
        saver: BasePostgresSaver,
        wheres: list[str],
        params: dict[str, Any],
        limit: int | None,
        one_namespace: bool,
    ) -> None:
        self._saver = saver
        self._wheres = wheres
        self._params = params
        self._remaining = limit
        # Within one (thread, namespace), checkpoint ids are unique and the
        # primary key serves `checkpoint_id < last` directly.
        self._one_namespace = one_namespace
        self._after: tuple[str, str, str] | None = None
        self._page_size = 0
        self._done = False

    def next_statement(self) -> Statement | None:
        """The query for the next page, or ``None`` when there is no more."""
        if self._done or self._remaining == 0:
            return None
        size = LIST_PAGE_SIZE if self._after is not None else FIRST_PAGE_SIZE
        if self._remaining is not None:
            size = min(size, self._remaining)
        wheres = list(self._wheres)
        params = dict(self._params)
        if self._after is not None:
            params["after_id"], params["after_thread"], params["after_ns"] = self._after
            if self._one_namespace:
                wheres.append("c.checkpoint_id < %(after_id)s")
            else:
                wheres.append(
                    "(c.checkpoint_id, c.thread_id, c.checkpoint_ns)"
                    " < (%(after_id)s, %(after_thread)s, %(after_ns)s)"
                )
        order = _NEWEST_FIRST_IN_NAMESPACE if self._one_namespace else _NEWEST_FIRST
        if size in (FIRST_PAGE_SIZE, LIST_PAGE_SIZE):
            # A literal, so that the server can keep one plan of the prepared
            # query. With a parameter it estimates the generic plan's row
            # count without the limit, finds it costlier than a plan made
            # for the value and so plans every page anew (~0.3 ms each).
            limit = f"LIMIT {size}"
        else:
            # A size cut by the caller's `limit`: one query shape for all.
            limit = "LIMIT %(page_size)s"
            params["page_size"] = size
        selection = _select_checkpoints(tuple(wheres), order, limit)
        self._page_size = size
        return Statement(self._saver._sql(selection), params)

    def receive(self, count: int, last: Sequence[Any] | None) -> None:
        """Note that the page brought ``count`` rows, ending with the result
        row ``last`` (``None`` for an empty page)."""
        if count < self._page_size:
            self._done = True
        if last is not None:
            thread_id, checkpoint_ns, checkpoint_id = last[:3]
            self._after = (checkpoint_id, thread_id, checkpoint_ns)
        if self._remaining is not None:
            self._remaining -= count


def _id_list(ids: Sequence[Any], name: str, method: str) -> list[str]:
    """Validate a list of thread or run ids; a bare string is a common slip."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(
            f"{method}() takes a list of ids as {name}, not {type(ids).__name__} "
            f"{ids!r}: wrap a single id in a list, e.g. {method}([{ids!r}])"
        )
    field = name[:-1]  # "thread_ids" -> "thread_id"
    return [_text(i, field) for i in ids]


def _move_sends_into_channels(checkpoint: Checkpoint, sends: list[Any]) -> None:
    """Give a pre-v4 checkpoint its pending sends in the v4 layout.

    Before format v4 the sends scheduled by a superstep were stored as writes
    of the parent checkpoint on ``__pregel_tasks``; current LangGraph expects
    them as that channel's value, at a version no newer than the others.
    """
    versions = checkpoint["channel_versions"]
    checkpoint["channel_values"][TASKS] = sends
    versions[TASKS] = max(versions.values()) if versions else f"{1:032}.0"
    if "pending_sends" in checkpoint:
        # An empty list here would otherwise hide what we just restored.
        cast(dict[str, Any], checkpoint)["pending_sends"] = []
