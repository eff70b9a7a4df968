"""The delta-channel history walk."""

from __future__ import annotations

from langgraph.checkpoint.postgres._sql.fragments import populated

# Every table reference names the thread by its parameter, not by a join
# column: Citus then runs the whole walk on the thread's shard (it refuses a
# recursive CTE without a filter on the distribution column).
_THREAD = "%(thread_id)s"

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
            WHERE NOT {populated("p", "ch", _THREAD)}
        ) AS left_after
    FROM target t
    JOIN $checkpoints p
        ON p.thread_id = %(thread_id)s
        AND p.checkpoint_ns = t.checkpoint_ns
        AND p.checkpoint_id = t.parent_checkpoint_id
    UNION ALL
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
        w.depth + 1,
        w.left_after,
        ARRAY(
            SELECT ch FROM unnest(w.left_after) ch
            WHERE NOT {populated("p", "ch", _THREAD)}
        )
    FROM walk w
    JOIN $checkpoints p
        ON p.thread_id = %(thread_id)s
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
    ON c.thread_id = %(thread_id)s
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
        WHERE x.thread_id = %(thread_id)s
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
    WHERE x.thread_id = %(thread_id)s
        AND x.checkpoint_ns = c.checkpoint_ns
        AND x.checkpoint_id = c.checkpoint_id
        AND x.channel = ANY(w.wanted)
) cw
ORDER BY w.depth
"""
