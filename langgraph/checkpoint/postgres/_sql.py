"""Every SQL statement of the saver, by name.

Reads, writes, deletes, retention and the delta-history walk; the builders
of statement shapes sit beside the statements they build.
"""

from __future__ import annotations

import functools

from langgraph.checkpoint.postgres._pg.schema import renderer

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

#: Fill in the object names of an SQL template for a schema.
#:
#: >>> render("SELECT 1 FROM $checkpoints", "tenant_a")
#: 'SELECT 1 FROM "tenant_a".checkpoints'
render = renderer(_OBJECT_NAMES)


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
# Writes come unsorted: `sorted_writes` puts them in `writes_sort_key`
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
NEWEST_FIRST = "ORDER BY c.checkpoint_id DESC, c.thread_id DESC, c.checkpoint_ns DESC"
NEWEST_FIRST_IN_NAMESPACE = "ORDER BY c.checkpoint_id DESC"


@functools.lru_cache(maxsize=256)
def select_checkpoints(
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


# Keep, per namespace of each thread, the newest checkpoint (its head) and
# what reading it back needs:
# - before format v4 a checkpoint reads its pending sends from its parent's
#   `__pregel_tasks` writes, so that parent stays too, with its writes;
# - for every delta channel a kept checkpoint does not hold itself, the chain
#   of ancestors back to the nearest one that stores the channel's value (a
#   snapshot), so that replaying their writes rebuilds the same state.
# A subgraph call's namespace ("node:task_id") goes entirely with the root
# checkpoint the call started from; a `checkpointer=True` subgraph's (no ":")
# outlives its calls and keeps its head. A run saves in the background, so a
# call can commit before that root checkpoint: until the root exists, the
# call's namespace is kept like any other.
# Delete every other checkpoint with its writes, and the blobs no kept
# checkpoint references. Writes go by the checkpoints deleted, not by those
# kept: a run saves a superstep's writes in the background too, where they
# can commit before their checkpoint does. A kept checkpoint whose parent is
# not kept is left with no parent, as in langgraph-checkpoint-postgres,
# rather than one that is gone.
#
# Every CTE reads the tables as the statement found them, blind to what the
# others change, so each works from `kept` and the tables; kept rows are only
# updated and the others only deleted, since a statement may not change a row
# twice. Lookups in the tables say `thread_id = ANY(...)` even where a join
# names the thread already: should the planner hash one side instead of
# looking rows up by key, it then reads the threads' rows, not the table's.
PRUNE_KEEP_LATEST_SQL = f"""
WITH RECURSIVE latest AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns)
        thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata
    FROM $checkpoints
    WHERE thread_id = ANY(%(thread_ids)s::text[])
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), chain AS (
    -- Only a head with delta counters starts a walk. Besides sparing the
    -- others, this keeps the planner's estimate of the walk (ten rounds of
    -- its first rows, each with a lookup per channel) low: past
    -- `jit_above_cost` Postgres compiles the statement before running it,
    -- which takes longer than pruning a thread of thousands of checkpoints.
    SELECT l.thread_id, l.checkpoint_ns, l.checkpoint_id, l.parent_checkpoint_id,
        ARRAY(
            SELECT ch
            FROM jsonb_object_keys(l.metadata -> 'counters_since_delta_snapshot') ch
            WHERE NOT {_populated("l", "ch")}
        ) AS missing
    FROM latest l
    WHERE jsonb_typeof(l.metadata -> 'counters_since_delta_snapshot') = 'object'
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
), wanted AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM latest
    UNION
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM chain
    UNION
    -- The parent a pre-v4 head reads its pending sends from, named even if
    -- it is not saved: its writes, and the head's link to it, are what count.
    SELECT l.thread_id, l.checkpoint_ns, l.parent_checkpoint_id, (
        SELECT x.parent_checkpoint_id FROM $checkpoints x
        WHERE x.thread_id = l.thread_id
            AND x.checkpoint_ns = l.checkpoint_ns
            AND x.checkpoint_id = l.parent_checkpoint_id
        LIMIT 1
    )
    FROM latest l
    WHERE (l.checkpoint ->> 'v')::int < 4
        AND EXISTS (
            SELECT 1 FROM $checkpoint_writes ps
            WHERE ps.thread_id = ANY(%(thread_ids)s::text[])
                AND ps.thread_id = l.thread_id
                AND ps.checkpoint_ns = l.checkpoint_ns
                AND ps.checkpoint_id = l.parent_checkpoint_id
                AND ps.channel = '__pregel_tasks'
        )
), kept_roots AS MATERIALIZED (
    -- The root namespace has no ":": what it wants, it keeps. Apart, so that
    -- looking a call's root checkpoint up reads these few rows only.
    SELECT thread_id, checkpoint_id FROM wanted WHERE checkpoint_ns = ''
), namespaces AS (
    -- Every namespace, with whether it goes, rather than only those that
    -- go: the planner would guess those few (it has no statistics on a CTE)
    -- and might then scan them once per wanted row; all of them, it sizes
    -- as `latest`, and hashes.
    SELECT l.thread_id, l.checkpoint_ns,
        r.checkpoint_id IS NOT NULL AND k.checkpoint_id IS NULL AS dropped
    FROM latest l
    LEFT JOIN $checkpoints r
        ON strpos(l.checkpoint_ns, ':') > 0
        AND r.thread_id = ANY(%(thread_ids)s::text[])
        AND r.thread_id = l.thread_id
        AND r.checkpoint_ns = ''
        AND r.checkpoint_id = l.metadata -> 'parents' ->> ''
    LEFT JOIN kept_roots k
        ON k.thread_id = r.thread_id AND k.checkpoint_id = r.checkpoint_id
), kept AS (
    SELECT w.*
    FROM wanted w
    JOIN namespaces n
        ON n.thread_id = w.thread_id AND n.checkpoint_ns = w.checkpoint_ns
    WHERE NOT n.dropped
), deleted_checkpoints AS (
    DELETE FROM $checkpoints c
    WHERE c.thread_id = ANY(%(thread_ids)s::text[]) AND {_not_kept("c")}
), deleted_writes AS (
    -- The writes of the checkpoints deleted_checkpoints deletes, found the
    -- same way rather than from rows it would return: the planner has no
    -- statistics on those, and may pair every write with each of them.
    DELETE FROM $checkpoint_writes w
    WHERE w.thread_id = ANY(%(thread_ids)s::text[])
        AND (w.thread_id, w.checkpoint_ns, w.checkpoint_id) IN (
            SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id
            FROM $checkpoints c
            WHERE c.thread_id = ANY(%(thread_ids)s::text[]) AND {_not_kept("c")}
        )
), dropped_writes AS (
    -- The rest of a dropped namespace: writes whose checkpoint is not saved
    -- (deleted_writes has the others: a statement may not delete a row twice).
    DELETE FROM $checkpoint_writes w
    USING namespaces n
    WHERE n.dropped
        AND w.thread_id = ANY(%(thread_ids)s::text[])
        AND w.thread_id = n.thread_id
        AND w.checkpoint_ns = n.checkpoint_ns
        AND NOT EXISTS (
            SELECT 1 FROM $checkpoints c
            WHERE c.thread_id = ANY(%(thread_ids)s::text[])
                AND c.thread_id = w.thread_id
                AND c.checkpoint_ns = w.checkpoint_ns
                AND c.checkpoint_id = w.checkpoint_id
        )
), orphaned AS (
    -- Compared with the ids kept in their own namespace, as an array: a join
    -- of `kept` with itself, whose size the planner can only guess, may
    -- compare every kept row with every other.
    SELECT thread_id, checkpoint_ns, checkpoint_id
    FROM (
        SELECT k.*, array_agg(k.checkpoint_id)
            OVER (PARTITION BY k.thread_id, k.checkpoint_ns) AS kept_ids
        FROM kept k
    ) k
    WHERE k.parent_checkpoint_id <> ALL(k.kept_ids)
), unparented AS (
    UPDATE $checkpoints c
    SET parent_checkpoint_id = NULL
    FROM orphaned o
    WHERE c.thread_id = ANY(%(thread_ids)s::text[])
        AND c.thread_id = o.thread_id
        AND c.checkpoint_ns = o.checkpoint_ns
        AND c.checkpoint_id = o.checkpoint_id
), referenced AS (
    -- The blobs kept checkpoints reference, as rows: each blob of the thread
    -- is then one hashed lookup, not a look at every kept checkpoint.
    SELECT k.thread_id, k.checkpoint_ns, v.key AS channel, v.value AS version
    FROM kept k
    CROSS JOIN LATERAL (
        SELECT x.checkpoint -> 'channel_versions' AS versions
        FROM $checkpoints x
        WHERE x.thread_id = k.thread_id
            AND x.checkpoint_ns = k.checkpoint_ns
            AND x.checkpoint_id = k.checkpoint_id
        LIMIT 1
    ) kc
    CROSS JOIN LATERAL jsonb_each_text(
        CASE jsonb_typeof(kc.versions) WHEN 'object' THEN kc.versions END
    ) v
)
DELETE FROM $checkpoint_blobs b
WHERE b.thread_id = ANY(%(thread_ids)s::text[])
    AND NOT EXISTS (
        SELECT 1 FROM referenced r
        WHERE r.thread_id = b.thread_id
            AND r.checkpoint_ns = b.checkpoint_ns
            AND r.channel = b.channel
            AND r.version = b.version
    )
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
