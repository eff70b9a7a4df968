"""The statements of a retention sweep (``sweep()``): which threads it
visits, the locks that keep sweepers apart, and the guard that spares a
thread written to meanwhile. The deletes themselves are ``retention``'s."""

from __future__ import annotations

# A page of the threads a sweep visits, in thread_id order from
# %(after)s on, each with its newest checkpoint id: one pass over the primary
# key, which yields threads in order, so a page stops reading once it has
# %(limit)s threads. `{where}` bounds the scan (or not, on the first page);
# `{wanted}` is the condition a thread must meet (see `candidates_sql`).
_CANDIDATES = """
SELECT t.thread_id, t.newest
FROM (
    SELECT thread_id, max(newest) AS newest, max(saved) AS most
    FROM (
        SELECT thread_id, checkpoint_ns, max(checkpoint_id) AS newest,
            count(*) AS saved
        FROM $checkpoints
        {where}
        GROUP BY thread_id, checkpoint_ns
    ) per_namespace
    GROUP BY thread_id
) t
WHERE {wanted}
ORDER BY t.thread_id
LIMIT %(limit)s
"""

# A thread's age is the `ts` LangGraph wrote into its newest checkpoint (an
# ISO-8601 UTC time, which compares as text): idle threads are those whose
# newest checkpoint is older than %(ttl_minutes)s, by the server's clock. A
# checkpoint without `ts` never counts as idle.
_IDLE = """(
    SELECT c.checkpoint ->> 'ts'
    FROM $checkpoints c
    WHERE c.thread_id = t.thread_id AND c.checkpoint_id = t.newest
    LIMIT 1
) < to_char(
    (now() - %(ttl_minutes)s * interval '1 minute') AT TIME ZONE 'UTC',
    'YYYY-MM-DD"T"HH24:MI:SS.US'
)"""

# Some namespace holds more checkpoints than the policy keeps.
_OVER_KEEP = "t.most > %(keep)s"


def candidates_sql(*, first_page: bool, idle: bool, over_keep: bool) -> str:
    """SQL: a page of threads to sweep (``thread_id``, newest checkpoint id).

    ``idle`` keeps threads whose newest checkpoint is older than
    ``%(ttl_minutes)s``; ``over_keep`` those with a namespace holding more
    than ``%(keep)s`` checkpoints (a thread pruned already is not visited
    again). Pages after the first start past ``%(after)s``.
    """
    wanted = [sql for sql, on in ((_IDLE, idle), (_OVER_KEEP, over_keep)) if on]
    return _CANDIDATES.format(
        where="" if first_page else "WHERE thread_id > %(after)s",
        wanted=" AND ".join(wanted) or "TRUE",
    )


# The threads of a batch this sweeper may sweep: those whose lock (one per
# thread, for the length of the batch's transaction) no other sweeper holds.
# Asked apart from the deletes, so that on Citus the locks are taken on the
# coordinator, where every sweeper's statements start.
LOCK_THREADS_SQL = """
SELECT thread_id
FROM unnest(%(thread_ids)s::text[]) WITH ORDINALITY AS t(thread_id, n)
WHERE pg_try_advisory_xact_lock(%(lock_key)s, hashtext(thread_id))
ORDER BY n
"""

# A sweep that selected a thread as idle deletes from it only if it still
# has no checkpoint newer than the one it was selected by (the guard of
# `retention.delete_thread_sql` and the prune statements).
UNCHANGED_SINCE_SELECTED = """(
    SELECT max(checkpoint_id) FROM $checkpoints WHERE thread_id = %(thread_id)s
) = %(newest)s"""

# Set for the batch's transaction only: a sweep gives up a thread whose rows
# a live writer has locked rather than wait (it is in use, hence not idle),
# before Postgres would look for a deadlock (after `deadlock_timeout`, 1 s
# by default); and it never pays for compiling its statements (JIT), which
# takes longer than they run.
SWEEP_SETTINGS_SQL = """
SELECT set_config('lock_timeout', %(lock_timeout)s, true),
    set_config('jit', 'off', true)
"""
