"""The statements of ``delete_thread``, ``prune``, ``delete_for_runs`` and
``copy_thread``."""

from __future__ import annotations

from langgraph.checkpoint.postgres._sql.fragments import populated

# Every statement here that changes rows is about one thread, named by the
# `thread_id` parameter in each table it reads or writes: on Citus it then
# runs on that thread's shard alone (a statement whose tables are not all
# pinned to one shard fans out, and one writing several shards commits in
# two phases). An operation on several threads runs one statement per thread
# in one transaction.

# The row a deleting statement returns: checkpoints, writes, blobs removed.
_COUNTS = """SELECT
    (SELECT count(*) FROM deleted_checkpoints),
    (SELECT count(*) FROM deleted_writes),
    (SELECT count(*) FROM deleted_blobs)"""


def delete_thread_sql(guard: str = "TRUE") -> str:
    """SQL: delete every row of the thread ``%(thread_id)s`` if ``guard`` (a
    condition on the thread's tables) holds; returns one row: how many
    checkpoints, writes and blobs went."""
    return f"""
WITH go AS MATERIALIZED (
    SELECT {guard} AS ok
), deleted_writes AS (
    DELETE FROM $checkpoint_writes
    WHERE thread_id = %(thread_id)s AND (SELECT ok FROM go)
    RETURNING 1
), deleted_blobs AS (
    DELETE FROM $checkpoint_blobs
    WHERE thread_id = %(thread_id)s AND (SELECT ok FROM go)
    RETURNING 1
), deleted_checkpoints AS (
    DELETE FROM $checkpoints
    WHERE thread_id = %(thread_id)s AND (SELECT ok FROM go)
    RETURNING 1
)
{_COUNTS}
"""


DELETE_THREAD_SQL = delete_thread_sql()


def _delete_unreferenced_blobs(scope: str) -> str:
    """SQL: delete the blobs matching ``scope`` (a condition on ``b`` within
    the thread ``%(thread_id)s``) that no checkpoint in the CTE ``kept``
    references.

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
            ON kc.thread_id = %(thread_id)s
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


_THREAD = "%(thread_id)s"


# Keep, per namespace of the thread, the newest checkpoint (its head), or
# the newest N, and what reading them back needs:
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
def _prune_sql(latest: str, heads: str, guard: str) -> str:
    """SQL: prune the thread ``%(thread_id)s`` down to the checkpoints
    ``latest`` (a CTE body: the newest of each namespace to keep, with
    ``heads``, the newest alone), if ``guard`` holds; returns how many
    checkpoints, writes and blobs went, as :func:`delete_thread_sql` does."""
    return f"""
WITH RECURSIVE go AS MATERIALIZED (
    SELECT {guard} AS ok
), latest AS ({latest}
), heads AS ({heads}
), chain AS (
    -- Only a kept checkpoint with delta counters starts a walk. Besides sparing the
    -- others, this keeps the planner's estimate of the walk (ten rounds of
    -- its first rows, each with a lookup per channel) low: past
    -- `jit_above_cost` Postgres compiles the statement before running it,
    -- which takes longer than pruning a thread of thousands of checkpoints.
    SELECT l.thread_id, l.checkpoint_ns, l.checkpoint_id, l.parent_checkpoint_id,
        ARRAY(
            SELECT ch
            FROM jsonb_object_keys(l.metadata -> 'counters_since_delta_snapshot') ch
            WHERE NOT {populated("l", "ch", _THREAD)}
        ) AS missing
    FROM latest l
    WHERE jsonb_typeof(l.metadata -> 'counters_since_delta_snapshot') = 'object'
    UNION ALL
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
        ARRAY(
            SELECT ch FROM unnest(c.missing) ch
            WHERE NOT {populated("p", "ch", _THREAD)}
        )
    FROM chain c
    JOIN $checkpoints p
        ON p.thread_id = %(thread_id)s
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
        WHERE x.thread_id = %(thread_id)s
            AND x.checkpoint_ns = l.checkpoint_ns
            AND x.checkpoint_id = l.parent_checkpoint_id
        LIMIT 1
    )
    FROM latest l
    WHERE (l.checkpoint ->> 'v')::int < 4
        AND EXISTS (
            SELECT 1 FROM $checkpoint_writes ps
            WHERE ps.thread_id = %(thread_id)s
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
    SELECT l.thread_id, l.checkpoint_ns, l.checkpoint_id AS head,
        r.checkpoint_id IS NOT NULL AND k.checkpoint_id IS NULL AS dropped
    FROM heads l
    LEFT JOIN $checkpoints r
        ON strpos(l.checkpoint_ns, ':') > 0
        AND r.thread_id = %(thread_id)s
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
    WHERE c.thread_id = %(thread_id)s AND (SELECT ok FROM go) AND {_not_kept("c")}
    RETURNING 1
), deleted_writes AS (
    -- The writes of the checkpoints deleted_checkpoints deletes, found the
    -- same way rather than from rows it would return: the planner has no
    -- statistics on those, and may pair every write with each of them.
    DELETE FROM $checkpoint_writes w
    WHERE w.thread_id = %(thread_id)s
        AND (SELECT ok FROM go)
        AND (w.thread_id, w.checkpoint_ns, w.checkpoint_id) IN (
            SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id
            FROM $checkpoints c
            WHERE c.thread_id = %(thread_id)s AND {_not_kept("c")}
        )
    RETURNING 1
), dropped_writes AS (
    -- Writes whose checkpoint is not saved (deleted_writes has the others: a
    -- statement may not delete a row twice): the rest of a dropped namespace,
    -- and writes older than their namespace's head that nothing keeps. Those
    -- a graph saved while a sweep deleted their checkpoint: none will come
    -- to read them, whereas a write saved before its checkpoint is newer
    -- than the head (checkpoint ids grow with time).
    DELETE FROM $checkpoint_writes w
    USING namespaces n
    WHERE (SELECT ok FROM go)
        AND w.thread_id = %(thread_id)s
        AND w.thread_id = n.thread_id
        AND w.checkpoint_ns = n.checkpoint_ns
        AND (n.dropped OR (w.checkpoint_id < n.head AND {_not_kept("w")}))
        AND NOT EXISTS (
            SELECT 1 FROM $checkpoints c
            WHERE c.thread_id = %(thread_id)s
                AND c.thread_id = w.thread_id
                AND c.checkpoint_ns = w.checkpoint_ns
                AND c.checkpoint_id = w.checkpoint_id
        )
    RETURNING 1
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
    WHERE c.thread_id = %(thread_id)s
        AND (SELECT ok FROM go)
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
        WHERE x.thread_id = %(thread_id)s
            AND x.checkpoint_ns = k.checkpoint_ns
            AND x.checkpoint_id = k.checkpoint_id
        LIMIT 1
    ) kc
    CROSS JOIN LATERAL jsonb_each_text(
        CASE jsonb_typeof(kc.versions) WHEN 'object' THEN kc.versions END
    ) v
), deleted_blobs AS (
    DELETE FROM $checkpoint_blobs b
    WHERE b.thread_id = %(thread_id)s
        AND (SELECT ok FROM go)
        AND NOT EXISTS (
            SELECT 1 FROM referenced r
            WHERE r.thread_id = b.thread_id
                AND r.checkpoint_ns = b.checkpoint_ns
                AND r.channel = b.channel
                AND r.version = b.version
        )
    RETURNING 1
), all_deleted_writes AS (
    SELECT 1 FROM deleted_writes UNION ALL SELECT 1 FROM dropped_writes
)
{_COUNTS.replace("FROM deleted_writes", "FROM all_deleted_writes")}
"""


# The newest checkpoint of each namespace of the thread.
_NEWEST = """
    SELECT DISTINCT ON (thread_id, checkpoint_ns)
        thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata
    FROM $checkpoints
    WHERE thread_id = %(thread_id)s
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC"""

# The newest %(keep)s checkpoints of each namespace of the thread; `heads`
# picks the newest of them.
_NEWEST_N = """
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata, newest_first
    FROM (
        SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id,
            c.parent_checkpoint_id, c.checkpoint, c.metadata,
            row_number() OVER (
                PARTITION BY c.checkpoint_ns ORDER BY c.checkpoint_id DESC
            ) AS newest_first
        FROM $checkpoints c
        WHERE c.thread_id = %(thread_id)s
    ) ranked
    WHERE newest_first <= %(keep)s"""


def prune_keep_latest_sql(guard: str = "TRUE") -> str:
    """SQL: ``prune`` keeping the newest checkpoint of each namespace."""
    return _prune_sql(_NEWEST, "SELECT * FROM latest", guard)


def prune_keep_last_sql(guard: str = "TRUE") -> str:
    """SQL: ``prune`` keeping the newest ``%(keep)s`` checkpoints of each
    namespace."""
    return _prune_sql(_NEWEST_N, "SELECT * FROM latest WHERE newest_first = 1", guard)


PRUNE_KEEP_LATEST_SQL = prune_keep_latest_sql()
PRUNE_KEEP_LAST_SQL = prune_keep_last_sql()


# The threads holding checkpoints of the runs (found across every shard), to
# delete from one by one.
THREADS_OF_RUNS_SQL = """
SELECT DISTINCT thread_id FROM $checkpoints
WHERE metadata ->> 'run_id' = ANY(%(run_ids)s::text[])
"""

# Delete the checkpoints of the runs in one thread, in every namespace, with
# their writes and the blobs that only they referenced.
DELETE_FOR_RUNS_SQL = f"""
WITH doomed AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id
    FROM $checkpoints
    WHERE thread_id = %(thread_id)s
        AND metadata ->> 'run_id' = ANY(%(run_ids)s::text[])
), kept AS (
    SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id
    FROM $checkpoints c
    WHERE c.thread_id = %(thread_id)s
    EXCEPT
    SELECT thread_id, checkpoint_ns, checkpoint_id FROM doomed
), deleted_writes AS (
    DELETE FROM $checkpoint_writes w
    USING doomed d
    WHERE w.thread_id = %(thread_id)s
        AND w.checkpoint_ns = d.checkpoint_ns
        AND w.checkpoint_id = d.checkpoint_id
), deleted_checkpoints AS (
    DELETE FROM $checkpoints c
    USING doomed d
    WHERE c.thread_id = %(thread_id)s
        AND c.checkpoint_ns = d.checkpoint_ns
        AND c.checkpoint_id = d.checkpoint_id
)
{
    _delete_unreferenced_blobs(
        "b.thread_id = %(thread_id)s"
        " AND b.checkpoint_ns IN (SELECT checkpoint_ns FROM doomed)"
    )
}
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
