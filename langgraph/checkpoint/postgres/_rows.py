"""Values and rows: which channel values stay inline in the checkpoint JSON,
and the helpers that rebuild a checkpoint from a row of the read query."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.serde.types import TASKS

from langgraph.checkpoint.postgres._pg import jsonb as _json


def utf8_text(data: bytes | None) -> Any:
    """Text of a nullable column the read query sent as UTF-8 bytes; ``None``
    stays ``None`` (a write's type tag may be null; the serializer decides)."""
    return None if data is None else data.decode()


def _write_order(row: Sequence[bytes]) -> tuple[bytes, bytes, int]:
    # UTF-8 bytes compare in code point order, as `writes_sort_key` requires
    # whatever the database's collation; the index is a signed 4-byte int.
    return row[0], row[1], int.from_bytes(row[2], "big", signed=True)


def sorted_writes(rows: Sequence[Sequence[bytes]] | None) -> list[Sequence[bytes]]:
    """The read query's write rows (task path, task id, idx, ...), in
    `writes_sort_key` order.

    (task id, idx) is unique within a checkpoint, so the order never depends
    on the payload columns.
    """
    return sorted(rows, key=_write_order) if rows else []


# JSONB numbers are exact decimals; far beyond any real value, an integer
# goes to a blob (and the serializer says whether it can hold it).
_INT_LIMIT = 10**1000

# Marker left in the checkpoint JSON for a channel whose value is a
# `_DeltaSnapshot` blob, so that SQL can find snapshot checkpoints without
# reading blobs (the convention of the 3.x layout).
DELTA_SNAPSHOT_MARKER = True


def is_inline(value: Any) -> bool:
    """Whether ``value`` round-trips unchanged through the checkpoint JSONB.

    Exact types only: a ``str`` or ``int`` subclass (an enum member, say) goes
    to a blob so that it comes back as itself. Strings with NUL, floats that
    JSON cannot hold or that JSONB would normalise (NaN, infinities, -0.0,
    exponents such as ``1e20``, which JSONB prints as an integer) go to blobs
    too.
    """
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is str:
        return "\x00" not in value
    if kind is int:
        return -_INT_LIMIT < value < _INT_LIMIT
    if kind is float:
        if not math.isfinite(value) or (value == 0.0 and math.copysign(1, value) < 0):
            return False
        return b"e" not in _json.dumps(value)
    return False


def checkpoint_config(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str
) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def move_sends_into_channels(checkpoint: Checkpoint, sends: list[Any]) -> None:
    """Give a pre-v4 checkpoint its pending sends in the v4 layout.

    Before format v4 the sends scheduled by a superstep were stored as writes
    of the parent checkpoint on ``__pregel_tasks``; current LangGraph expects
    them as that channel's value, at a version no newer than the others.
    """
    versions = checkpoint["channel_versions"]
    checkpoint["channel_values"][TASKS] = sends
    versions[TASKS] = max(versions.values()) if versions else f"{1:032}.0"
    if "pending_sends" in checkpoint:
        # An empty list here would otherwise hide what we just restored.
        cast(dict[str, Any], checkpoint)["pending_sends"] = []
