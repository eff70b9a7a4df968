"""The upserts of ``put`` and ``put_writes``, as VALUES templates."""

from __future__ import annotations

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
