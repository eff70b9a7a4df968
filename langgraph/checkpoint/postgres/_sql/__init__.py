"""Every SQL statement of the saver, by name, in one folder.

``reads`` (the read query), ``writes`` (the upserts), ``retention`` (deletes,
prune, copy) and ``delta`` (the delta-history walk); the builders of
statement shapes sit beside the statements they build. Each statement names
the saver's objects as placeholders, which :data:`render` fills in.
"""

from __future__ import annotations

from langgraph.checkpoint.postgres._pg.schema import renderer
from langgraph.checkpoint.postgres._sql.delta import DELTA_HISTORY_SQL
from langgraph.checkpoint.postgres._sql.reads import (
    EACH_THREAD,
    NEWEST_FIRST,
    NEWEST_FIRST_IN_NAMESPACE,
    ON_CITUS_SQL,
    ONE_THREAD,
    SELECT_CHECKPOINTS_SQL,
    select_checkpoints,
    select_keys,
)
from langgraph.checkpoint.postgres._sql.retention import (
    COPY_THREAD_SQL,
    DELETE_FOR_RUNS_SQL,
    DELETE_THREAD_SQL,
    PRUNE_KEEP_LATEST_SQL,
    THREADS_OF_RUNS_SQL,
)
from langgraph.checkpoint.postgres._sql.writes import (
    BLOB_FIELDS,
    BLOB_ROW,
    UPSERT_BLOBS_SQL,
    UPSERT_CHECKPOINT_SQL,
    UPSERT_WRITES_SQL,
    WRITE_FIELDS,
    WRITE_ROW,
)

__all__ = [
    "BLOB_FIELDS",
    "BLOB_ROW",
    "COPY_THREAD_SQL",
    "DELETE_FOR_RUNS_SQL",
    "DELETE_THREAD_SQL",
    "DELTA_HISTORY_SQL",
    "EACH_THREAD",
    "NEWEST_FIRST",
    "NEWEST_FIRST_IN_NAMESPACE",
    "ON_CITUS_SQL",
    "ONE_THREAD",
    "PRUNE_KEEP_LATEST_SQL",
    "SELECT_CHECKPOINTS_SQL",
    "THREADS_OF_RUNS_SQL",
    "UPSERT_BLOBS_SQL",
    "UPSERT_CHECKPOINT_SQL",
    "UPSERT_WRITES_SQL",
    "WRITE_FIELDS",
    "WRITE_ROW",
    "render",
    "select_checkpoints",
    "select_keys",
]

# SQL in these modules names the tables (and indexes it drops) as template
# placeholders, ``$checkpoints`` and so on. `render` fills them in for a
# saver's schema: schema-qualified for a named schema, bare (resolved through
# the connection's search_path, as the 3.x package does) by default.
_OBJECT_NAMES = (
    "checkpoint_migrations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoints_run_id_idx",
    "checkpoints_metadata_idx",
    "checkpoints_thread_id_idx",
    "checkpoint_blobs_thread_id_idx",
    "checkpoint_writes_thread_id_idx",
)

#: Fill in the object names of an SQL template for a schema.
#:
#: >>> render("SELECT 1 FROM $checkpoints", "tenant_a")
#: 'SELECT 1 FROM "tenant_a".checkpoints'
render = renderer(_OBJECT_NAMES)
