"""The read query of the savers: checkpoints with their blobs, writes and sends."""

from __future__ import annotations

import functools

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
#
# `{thread}` is the thread the lookups read: the selection's own column, or,
# when the selection is one thread, the parameter naming it. Named so, every
# table the query reads is restricted to that thread on its own, which is
# what lets Citus send the whole query to the one shard holding the thread
# (it does not carry `c.thread_id = ...` into correlated subqueries, and
# refuses them across shards). Plain Postgres plans both forms alike.
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
            WHERE x.thread_id = {thread}
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
        WHERE cw.thread_id = {thread}
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
        WHERE ps.thread_id = {thread}
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


#: The lookups' thread when the selection is one thread (its parameter).
ONE_THREAD = "%(thread_id)s"

#: The lookups' thread when the selection spans threads.
EACH_THREAD = "c.thread_id"


@functools.lru_cache(maxsize=256)
def select_checkpoints(
    wheres: tuple[str, ...],
    order: str = "",
    limit: str = "",
    *,
    ordered: bool = True,
    thread: str = EACH_THREAD,
) -> str:
    """The read query of the checkpoints matching ``wheres``, picked by the
    ORDER BY clause ``order`` and ``limit``; the result comes in ``order``
    too, unless ``ordered`` is false (a single row needs no ordering).
    ``thread`` is :data:`ONE_THREAD` when ``wheres`` select one thread by
    its parameter, :data:`EACH_THREAD` otherwise."""
    # Cached: the few shapes of read query are built once, not per call.
    selection = _selection("*", wheres, order, limit)
    sql = SELECT_CHECKPOINTS_SQL.format(selection=selection, thread=thread)
    return sql + order if ordered else sql


@functools.lru_cache(maxsize=64)
def select_keys(wheres: tuple[str, ...], order: str, limit: str) -> str:
    """The keys (thread, namespace, id) of the checkpoints matching
    ``wheres``, in ``order``, at most ``limit``: the first half of a read
    done in two, across Citus shards."""
    keys = "c.thread_id, c.checkpoint_ns, c.checkpoint_id"
    return _selection(keys, wheres, order, limit)


def _selection(columns: str, wheres: tuple[str, ...], order: str, limit: str) -> str:
    """``columns`` of the checkpoints ``c`` matching ``wheres``, in ``order``,
    at most ``limit``."""
    where = f"WHERE {' AND '.join(wheres)}" if wheres else ""
    return f"SELECT {columns} FROM $checkpoints c {where} {order} {limit}"


#: Whether the database has Citus (then a list across threads is read in
#: two, see ``ListPages.next_keys_statement``).
ON_CITUS_SQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
