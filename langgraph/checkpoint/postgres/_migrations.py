"""The saver's migrations: its database layout, version by version."""

from __future__ import annotations

from langgraph.checkpoint.postgres._pg.migrations import (
    LayoutGuard,
    Migrations,
    OnlineBuild,
)
from langgraph.checkpoint.postgres._sql import render

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
    # only slow every write. Nothing depends on them. One index per statement:
    # Citus refuses to drop several distributed objects in one command.
    "DROP INDEX IF EXISTS $checkpoints_thread_id_idx;\n-- next statement\n"
    "DROP INDEX IF EXISTS $checkpoint_blobs_thread_id_idx;\n-- next statement\n"
    "DROP INDEX IF EXISTS $checkpoint_writes_thread_id_idx",
    # 12 (ours): list(filter=...) matches metadata by containment
    # (`metadata @> filter`), which without an index reads every checkpoint
    # of every thread. jsonb_path_ops indexes a hash of each path-and-value
    # and answers only @>, so it is smaller and quicker to keep up than the
    # default jsonb_ops, which also indexes every key alone for ?, ?| and ?&
    # (which no statement of ours uses).
    "CREATE INDEX IF NOT EXISTS checkpoints_metadata_idx "
    "ON $checkpoints USING gin (metadata jsonb_path_ops)",
]

#: The migrations as they run in the default schema (what
#: ``langgraph-checkpoint-postgres`` calls ``MIGRATIONS``).
MIGRATIONS: list[str] = [render(t, None) for t in MIGRATION_TEMPLATES]

#: Migrations that build an index, by version: the table, the index and the
#: ``CONCURRENTLY`` form of the migration. On a table that already holds rows
#: ``setup()`` runs that form outside any transaction instead, so writers are
#: not locked out while the index is built. (Dropping an index, as 11 does,
#: takes only a moment and stays in the transaction.)
ONLINE_INDEX_BUILDS: dict[int, OnlineBuild] = {
    10: OnlineBuild(
        "$checkpoints",
        "$checkpoints_run_id_idx",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_run_id_idx "
        "ON $checkpoints ((metadata ->> 'run_id'))",
    ),
    12: OnlineBuild(
        "$checkpoints",
        "$checkpoints_metadata_idx",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_metadata_idx "
        "ON $checkpoints USING gin (metadata jsonb_path_ops)",
    ),
}


#: Key of the transaction-scoped advisory lock that serialises ``setup()``
#: across processes (an arbitrary constant; "lgcp" in ASCII).
SETUP_LOCK_KEY = 0x6C676370

# Whether `checkpoints` exists without a `checkpoint_id` column: the shallow
# savers' layout of the same table names.
SHALLOW_LAYOUT_SQL = """
SELECT to_regclass(%(table)s) IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass(%(table)s)
        AND attname = 'checkpoint_id'
        AND NOT attisdropped
)
"""


#: The shallow savers' layout, which PostgresSaver's setup() refuses.
SHALLOW_LAYOUT = LayoutGuard(
    "$checkpoints",
    SHALLOW_LAYOUT_SQL,
    "{table} has the layout of the shallow savers (no checkpoint_id column), "
    "not PostgresSaver's layout of the same table names: give PostgresSaver a "
    'database or schema="..." of its own (and run graphs with '
    'durability="exit" to keep one checkpoint per run), or keep using '
    "ShallowPostgresSaver on this one",
)


#: What the savers' ``setup()`` runs.
SAVER_MIGRATIONS = Migrations(
    templates=MIGRATION_TEMPLATES,
    versions_table="checkpoint_migrations",
    render=render,
    lock_key=SETUP_LOCK_KEY,
    online_builds=ONLINE_INDEX_BUILDS,
    refuses=SHALLOW_LAYOUT,
)
