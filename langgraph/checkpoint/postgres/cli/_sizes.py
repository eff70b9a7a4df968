"""What a thread's rows weigh: one measure for ``threads``, ``stats``,
``prune`` and ``sweep``, so that they print the same bytes for a thread.

A row's bytes are the stored sizes of all its columns (``pg_column_size``:
compressed as stored, read without detoasting, so cheap on large blobs);
tuple headers and index entries are not counted.
"""

from __future__ import annotations

#: The saver's tables, by what the output calls their rows, with every
#: column of a row.
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "checkpoints": (
        "checkpoints",
        (
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "parent_checkpoint_id",
            "type",
            "checkpoint",
            "metadata",
        ),
    ),
    "writes": (
        "checkpoint_writes",
        (
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "task_path",
            "idx",
            "channel",
            "type",
            "blob",
        ),
    ),
    "blobs": (
        "checkpoint_blobs",
        ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob"),
    ),
}


def row_bytes(kind: str) -> str:
    """The SQL expression of the bytes of one row of ``TABLES[kind]``.

    >>> row_bytes("blobs").count("pg_column_size")
    6
    """
    _table, columns = TABLES[kind]
    return " + ".join(f"coalesce(pg_column_size({c}), 0)" for c in columns)
