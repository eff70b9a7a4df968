"""The floor of each read and write workload: psycopg alone, one statement.

A workload's floor is the least any checkpointer could take for its call on
this machine and server: the same bytes read, or the same rows written, by
one bare prepared statement (with its commit, for a write), and nothing
decoded or encoded in the timed call. The worker (``bench/workloads.py``)
times it interleaved with the workload, in bursts inside the same slices, so
that the report can give each workload's latency as a multiple of a floor
measured at the same moments; an async workload gets an async connection.

- A read (``get_tuple``, ``list``) is floored by a ``SELECT`` by primary key
  of one ``bytea`` per checkpoint, copied by the server from the rows the
  saver itself stored: the checkpoint's keys, its JSONB (as text), and the
  blobs and pending writes its read query returns (see :data:`COPY_SQL`).
  ``get_tuple`` reads one such row (the same checkpoint: the latest, or the
  same random ids); ``list`` the same number of rows, newest first.
- A ``put`` is floored by one ``INSERT`` of the checkpoint's row and its blob
  rows (a ``WITH`` of two ``INSERT``\\ s), built from the same checkpoints
  with the same serializer, into tables shaped like the saver's; a
  ``put_writes`` by one ``INSERT`` of the task's three write rows.

Each side's worker copies its own data, so each side's floor returns the
bytes that side's query returns; the baseline and ours store the same
checkpoints alike, so the two floors differ by little.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

Params = tuple[Any, ...]

READ_TABLE = """
CREATE TABLE bench_floor_read (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
)"""

# One row per checkpoint of the thread: what the saver's read query returns
# for it, as the bytes of one column. Both packages keep the layout of
# langgraph-checkpoint-postgres 3.x (tables `checkpoints`, `checkpoint_blobs`,
# `checkpoint_writes`), so the same statement serves either side. The blobs
# are those the checkpoint's channel_versions point at (an inline value has
# none), the writes those of the checkpoint, each with the columns the read
# returns (the write index as 4 bytes).
COPY_SQL = """
INSERT INTO bench_floor_read (thread_id, checkpoint_ns, checkpoint_id, data)
SELECT
    c.thread_id,
    c.checkpoint_ns,
    c.checkpoint_id,
    convert_to(
        concat(
            c.thread_id, c.checkpoint_ns, c.checkpoint_id,
            c.parent_checkpoint_id, c.checkpoint::text, c.metadata::text
        ),
        'UTF8'
    )
    || coalesce((
        SELECT string_agg(
            convert_to(b.channel || b.type, 'UTF8') || coalesce(b.blob, ''), ''
        )
        FROM jsonb_each_text(c.checkpoint -> 'channel_versions') cv
        JOIN checkpoint_blobs b
            ON b.thread_id = c.thread_id
            AND b.checkpoint_ns = c.checkpoint_ns
            AND b.channel = cv.key
            AND b.version = cv.value
        WHERE b.type <> 'empty'
    ), '')
    || coalesce((
        SELECT string_agg(
            convert_to(
                w.task_path || w.task_id || w.channel || coalesce(w.type, ''),
                'UTF8'
            ) || int4send(w.idx) || w.blob,
            ''
        )
        FROM checkpoint_writes w
        WHERE w.thread_id = c.thread_id
            AND w.checkpoint_ns = c.checkpoint_ns
            AND w.checkpoint_id = c.checkpoint_id
    ), '')
FROM checkpoints c
WHERE c.thread_id = %s AND c.checkpoint_ns = ''
"""

SELECT_ONE = (
    "SELECT data FROM bench_floor_read"
    " WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s"
)
# LIMIT NULL is no limit: one statement serves list(limit=20) and a whole list.
SELECT_MANY = (
    "SELECT data FROM bench_floor_read"
    " WHERE thread_id = %s AND checkpoint_ns = ''"
    " ORDER BY checkpoint_id DESC LIMIT %s"
)

PUT_TABLES = (
    """CREATE TABLE bench_floor_checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
)""",
    """CREATE TABLE bench_floor_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
)""",
)

WRITES_TABLE = """CREATE TABLE bench_floor_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    task_path TEXT NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
)"""

#: Channel values a checkpoint keeps inline (both packages store no blob
#: for them).
INLINE = (str, int, float, bool, type(None))


@dataclass
class Floor:
    """One workload's floor: a statement and the parameters of each call.

    ``params`` gives the next call's parameters (new keys for a write, the
    next id for a random read); ``reads`` says whether the call fetches
    rows. ``bytes_per_call`` is the payload a call moves, for the report.
    """

    sql: str
    params: Callable[[], Params]
    reads: bool
    bytes_per_call: float

    def op(self, conn: psycopg.Connection[Any]) -> Callable[[], None]:
        """The timed call on ``conn``, with a kept cursor (results in binary,
        as the savers read theirs)."""
        cursor = conn.cursor(binary=True)
        sql, params, reads = self.sql, self.params, self.reads

        def call() -> None:
            cursor.execute(sql, params(), prepare=True)
            if reads:
                cursor.fetchall()

        return call

    def aop(self, conn: psycopg.AsyncConnection[Any]) -> Callable[[], Awaitable[None]]:
        """Async twin of :meth:`op`."""
        cursor = conn.cursor(binary=True)
        sql, params, reads = self.sql, self.params, self.reads

        async def call() -> None:
            await cursor.execute(sql, params(), prepare=True)
            if reads:
                await cursor.fetchall()

        return call


def connect(uri: str) -> psycopg.Connection[Any]:
    """The floor's own connection: autocommit, every statement prepared."""
    return psycopg.connect(uri, autocommit=True, prepare_threshold=0)


async def aconnect(uri: str) -> psycopg.AsyncConnection[Any]:
    """Async twin of :func:`connect`."""
    return await psycopg.AsyncConnection.connect(
        uri, autocommit=True, prepare_threshold=0
    )


# -- reads -------------------------------------------------------------------


def read_floor(
    uri: str,
    thread_id: str,
    *,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    seed: int = 0,
) -> Floor:
    """The floor of a read of ``thread_id``, whose checkpoints the saver has
    stored: ``get_tuple`` of the latest checkpoint, or of one of ``ids``
    picked at random as the workload picks them (``random.Random(seed)``),
    or, with ``limit`` (0: no limit), a list of the newest checkpoints.
    """
    with connect(uri) as conn:
        conn.execute(READ_TABLE)
        conn.execute(COPY_SQL, (thread_id,))
        rows = conn.execute(
            "SELECT checkpoint_id, octet_length(data) FROM bench_floor_read"
            " WHERE thread_id = %s ORDER BY checkpoint_id DESC",
            (thread_id,),
        ).fetchall()
        # Statistics, as the saver's tables have after the fill's VACUUM.
        conn.execute("VACUUM ANALYZE bench_floor_read")
    if not rows:
        raise RuntimeError(f"no checkpoints of {thread_id!r} to copy")
    sizes = {str(key): int(size) for key, size in rows}
    if limit is not None:
        count = len(rows) if limit == 0 else min(limit, len(rows))
        many: Params = (thread_id, None if limit == 0 else limit)
        return Floor(
            SELECT_MANY,
            lambda: many,
            reads=True,
            bytes_per_call=sum(int(size) for _, size in rows[:count]),
        )
    if ids is None:
        latest: Params = (thread_id, str(rows[0][0]))
        return Floor(SELECT_ONE, lambda: latest, reads=True, bytes_per_call=rows[0][1])
    keys = list(ids)
    rng = random.Random(seed)

    def next_id() -> Params:
        return thread_id, rng.choice(keys)

    mean = sum(sizes[key] for key in keys) / len(keys)
    return Floor(SELECT_ONE, next_id, reads=True, bytes_per_call=mean)


# -- writes ------------------------------------------------------------------

#: What a put's floor is built from: (config, checkpoint, metadata,
#: new_versions), as ``ThreadWriter.next()`` returns them.
PutArgs = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, str]]


def put_floor(uri: str, checkpoints: Sequence[PutArgs]) -> Floor:
    """The floor of ``put``: the rows of ``checkpoints`` (cycled), a
    checkpoint's row and its blob rows stored by one prepared statement.

    The payloads are serialized here, untimed, as the saver would (blobs by
    ``JsonPlusSerializer``, the rest as JSON); each call gets new keys.
    """
    serde = JsonPlusSerializer()
    payloads: list[tuple[list[Any], list[Any]]] = []
    for _, checkpoint, metadata, new_versions in checkpoints:
        values = dict(checkpoint["channel_values"])
        blobs: list[Any] = []
        for channel in sorted(new_versions):
            if channel in values and not isinstance(values[channel], INLINE):
                kind, data = serde.dumps_typed(values.pop(channel))
                blobs.append((channel, kind, data))
        document = json.dumps(dict(checkpoint, channel_values=values))
        payloads.append((blobs, [document, json.dumps(metadata)]))
    shapes = {len(blobs) for blobs, _ in payloads}
    if len(shapes) != 1 or 0 in shapes:
        raise RuntimeError(f"checkpoints with varying blob counts: {shapes}")
    (blob_count,) = shapes
    blob_rows = ", ".join(["(%s, '', %s, %s, %s, %s)"] * blob_count)
    sql = (
        "WITH blobs AS (INSERT INTO bench_floor_blobs"
        " (thread_id, checkpoint_ns, channel, version, type, blob)"
        f" VALUES {blob_rows})"
        " INSERT INTO bench_floor_checkpoints (thread_id, checkpoint_ns,"
        " checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)"
        " VALUES (%s, '', %s, %s, 'json', %s::jsonb, %s::jsonb)"
    )
    with connect(uri) as conn:
        for ddl in PUT_TABLES:
            conn.execute(ddl)
    count = 0

    def params() -> Params:
        nonlocal count
        count += 1
        blobs, (document, metadata) = payloads[count % len(payloads)]
        key = f"{count:032d}"
        row: list[Any] = []
        for channel, kind, data in blobs:
            row += ["floor", channel, f"{key}.0.5", kind, data]
        row += ["floor", key, f"{count - 1:032d}", document, metadata]
        return tuple(row)

    size = sum(
        sum(len(data) for _, _, data in blobs) + sum(len(text) for text in rest)
        for blobs, rest in payloads
    ) / len(payloads)
    return Floor(sql, params, reads=False, bytes_per_call=size)


def writes_floor(uri: str, writes: Sequence[tuple[str, Any]]) -> Floor:
    """The floor of ``put_writes``: a task's ``writes`` stored as rows by one
    prepared ``INSERT``, each call for a new task id."""
    serde = JsonPlusSerializer()
    rows = [(channel, *serde.dumps_typed(value)) for channel, value in writes]
    values = ", ".join(["('floor', '', 'floor', %s, %s, %s, %s, %s, '')"] * len(rows))
    sql = (
        "INSERT INTO bench_floor_writes (thread_id, checkpoint_ns, checkpoint_id,"
        f" task_id, idx, channel, type, blob, task_path) VALUES {values}"
    )
    with connect(uri) as conn:
        conn.execute(WRITES_TABLE)
    count = 0

    def params() -> Params:
        nonlocal count
        count += 1
        task = f"{count:036d}"  # as long as the uuid a task id is
        out: list[Any] = []
        for index, (channel, kind, data) in enumerate(rows):
            out += [task, index, channel, kind, data]
        return tuple(out)

    size = sum(len(data) for _, _, data in rows)
    return Floor(sql, params, reads=False, bytes_per_call=size)
