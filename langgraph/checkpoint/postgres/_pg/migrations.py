"""Rules of ``setup()`` that hold for any layout: the lock, schema and
index-state SQL, and what to do when a step collides with another session."""

from __future__ import annotations

import random

import psycopg

SETUP_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"
CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS {schema}"
SCHEMA_EXISTS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)"
)


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
