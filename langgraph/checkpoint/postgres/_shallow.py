"""The shallow savers' I/O-free core: their layout, statements and rows.

``langgraph-checkpoint-postgres`` gives its deprecated shallow savers a layout
of their own under the regular table names: ``checkpoints`` holds one row per
(thread, namespace), with no ``checkpoint_id`` column, and ``checkpoint_blobs``
one row per channel, with no ``version`` column; only ``checkpoint_writes``
is shared. So a database serves either the shallow savers or the regular ones,
never both. This module reproduces that layout and the rows those savers
write, so that a database moves between that package and this one, in either
direction.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.types import TASKS

from langgraph.checkpoint.postgres._migrations import SETUP_LOCK_KEY
from langgraph.checkpoint.postgres._pg.migrations import LayoutGuard, Migrations
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._rows import (
    checkpoint_config,
    sorted_writes,
    utf8_text,
)
from langgraph.checkpoint.postgres._sql import render
from langgraph.checkpoint.postgres._validation import (
    as_jsonb,
    as_text,
    check_finite,
    check_limit,
    configurable_of,
    namespace_of,
    thread_id_of,
)
from langgraph.checkpoint.postgres._writes import (
    Batch,
    numbered_params,
    values_pieces,
    write_batch,
)
from langgraph.checkpoint.postgres.base import BasePostgresSaver

# -- layout ------------------------------------------------------------------

#: The shallow layout, version by version, as templates (see `render`).
#: Versions 0-7 are those of the existing package's shallow savers; its
#: index builds (4-6) run CONCURRENTLY there, in setup()'s transaction here,
#: where the tables they index were just created.
SHALLOW_MIGRATION_TEMPLATES: list[str] = [
    "CREATE TABLE IF NOT EXISTS $checkpoint_migrations (v INTEGER PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS $checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns)
)""",
    """CREATE TABLE IF NOT EXISTS $checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel)
)""",
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
    "CREATE INDEX IF NOT EXISTS checkpoints_thread_id_idx ON $checkpoints(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_blobs_thread_id_idx "
    "ON $checkpoint_blobs(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_writes_thread_id_idx "
    "ON $checkpoint_writes(thread_id)",
    "ALTER TABLE $checkpoint_writes "
    "ADD COLUMN IF NOT EXISTS task_path TEXT NOT NULL DEFAULT ''",
]

# Whether `checkpoints` has a `checkpoint_id` column: the regular layout.
REGULAR_LAYOUT_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass(%(table)s)
        AND attname = 'checkpoint_id'
        AND NOT attisdropped
)
"""


@dataclass(frozen=True)
class ShallowMigrations(Migrations):
    """The shallow layout's history, which accepts the versions a regular
    saver's ``setup()`` recorded on it."""

    def pending(self, current: int | None) -> list[tuple[int, str]]:
        # A version past 7 on a shallow layout means a regular saver's
        # setup() ran here too; its migrations leave the shallow tables
        # usable, and the existing package's shallow saver carries on.
        if current is not None and current > self.latest:
            return []
        return super().pending(current)


#: PostgresSaver's layout, which the shallow savers' setup() refuses.
REGULAR_LAYOUT = LayoutGuard(
    "$checkpoints",
    REGULAR_LAYOUT_SQL,
    "{table} has the layout of PostgresSaver (a checkpoint_id column), not the "
    "shallow savers' own layout of the same table names. Use PostgresSaver on "
    'this database, running the graph with durability="exit"; or give the '
    'shallow saver a database or schema="..." of its own',
)


#: What the shallow savers' ``setup()`` runs. Its advisory lock is the
#: regular savers', so that setups of either kind never interleave.
SHALLOW_MIGRATIONS = ShallowMigrations(
    templates=SHALLOW_MIGRATION_TEMPLATES,
    versions_table="checkpoint_migrations",
    render=render,
    lock_key=SETUP_LOCK_KEY,
    refuses=REGULAR_LAYOUT,
)

# -- statements --------------------------------------------------------------

# One row per (thread, namespace) that the inner query selects (filtered,
# ordered, limited before the lookups), with what rebuilds its tuple: the
# blob of each channel in channel_versions (keyed by channel alone: a
# channel's latest value overwrites its row), the writes made against the
# checkpoint, and the namespace's writes to TASKS, which the existing
# package returns as the checkpoint's `pending_sends` (LangGraph reads them
# for checkpoints older than format v4). Text comes as UTF-8 bytes and the
# write index as 4 bytes, as in the regular read query.
SELECT_SHALLOW_SQL = f"""
SELECT
    c.thread_id,
    c.checkpoint_ns,
    c.checkpoint,
    c.metadata,
    (
        SELECT array_agg(ARRAY[
            convert_to(bl.channel, 'UTF8'), convert_to(bl.type, 'UTF8'), bl.blob
        ])
        FROM jsonb_object_keys(c.checkpoint -> 'channel_versions') cv (channel)
        JOIN $checkpoint_blobs bl
            ON bl.thread_id = c.thread_id
            AND bl.checkpoint_ns = c.checkpoint_ns
            AND bl.channel = cv.channel
        WHERE bl.type <> 'empty'
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
        WHERE cw.thread_id = c.thread_id
            AND cw.checkpoint_ns = c.checkpoint_ns
            AND cw.checkpoint_id = c.checkpoint ->> 'id'
    ),
    (
        -- Ordered in SQL, by the database's collation, as the existing
        -- package orders them.
        SELECT array_agg(
            ARRAY[convert_to(ps.type, 'UTF8'), ps.blob]
            ORDER BY ps.task_path, ps.task_id, ps.idx
        )
        FROM $checkpoint_writes ps
        WHERE ps.thread_id = c.thread_id
            AND ps.checkpoint_ns = c.checkpoint_ns
            AND ps.channel = '{TASKS}'
    )
FROM (SELECT * FROM $checkpoints c {{where}} {{order}} {{limit}}) c
{{order}}
"""
NEWEST_FIRST = (
    "ORDER BY c.checkpoint ->> 'id' DESC, c.thread_id DESC, c.checkpoint_ns DESC"
)

# Writes of older checkpoints go as the next one is stored. Those of the
# checkpoint it follows stay: before checkpoint format v4, the sends they
# hold are the new checkpoint's pending_sends. So do those of newer ones
# (ids grow with time): on a pool, a run's writes for the next step may
# commit before this put does, and deleting them would lose, say, the
# interrupt the graph is waiting on.
DELETE_STALE_WRITES_SQL = """
DELETE FROM $checkpoint_writes
WHERE thread_id = %(thread_id)s
    AND checkpoint_ns = %(checkpoint_ns)s
    AND checkpoint_id < %(checkpoint_id)s
    AND checkpoint_id <> %(parent_checkpoint_id)s
"""
# A channel's row holds its latest value; "empty" (no payload) when the
# channel has a new version but no value, so that the old one is not read.
UPSERT_SHALLOW_BLOBS_SQL = """
INSERT INTO $checkpoint_blobs (thread_id, checkpoint_ns, channel, type, blob)
VALUES
    {rows}
ON CONFLICT (thread_id, checkpoint_ns, channel) DO UPDATE SET
    type = EXCLUDED.type,
    blob = EXCLUDED.blob
"""
SHALLOW_BLOB_ROW = (
    "(%(thread_id)s, %(checkpoint_ns)s, %(channel_{i})s, %(type_{i})s, %(blob_{i})b)"
)
SHALLOW_BLOB_FIELDS = ("channel", "type", "blob")
UPSERT_SHALLOW_CHECKPOINT_SQL = """
INSERT INTO $checkpoints (thread_id, checkpoint_ns, checkpoint, metadata)
VALUES (%(thread_id)s, %(checkpoint_ns)s, %(checkpoint)s, %(metadata)s)
ON CONFLICT (thread_id, checkpoint_ns) DO UPDATE SET
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata
"""


@functools.lru_cache(maxsize=256)
def select_shallow(wheres: tuple[str, ...], *, listing: bool) -> str:
    """The shallow read query of the rows matching ``wheres``: newest first
    and limited by ``%(limit)s`` when ``listing``. Cached: the shapes are few."""
    where = f"WHERE {' AND '.join(wheres)}" if wheres else ""
    order = NEWEST_FIRST if listing else ""
    limit = "LIMIT %(limit)s" if listing else ""
    return SELECT_SHALLOW_SQL.format(where=where, order=order, limit=limit)


# -- deprecation -------------------------------------------------------------


def warn_deprecated(name: str, replacement: str, call: str) -> None:
    """Warn that the shallow saver ``name`` is deprecated for ``replacement``
    (whose graphs run by ``call``), from the caller's line.

    The warning is attributed to the first frame outside this package and
    ``contextlib``, so that it names the user's line whether the saver was
    built directly or by ``from_conn_string`` (and so that Python's default
    filters, which show DeprecationWarning for ``__main__`` only, show it).
    """
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and _is_internal(frame.f_code.co_filename):
        level, frame = level + 1, frame.f_back
    warnings.warn(
        f"{name} is deprecated, as in langgraph-checkpoint-postgres: use "
        f'{replacement} and run the graph with durability="exit" (e.g. '
        f'{call}(inputs, config, durability="exit")), which writes one '
        "checkpoint per run; prune(thread_ids) removes older ones",
        DeprecationWarning,
        stacklevel=level,
    )


def _is_internal(filename: str) -> bool:
    return filename.startswith(_PACKAGE_DIR) or filename.endswith("contextlib.py")


_PACKAGE_DIR = os.path.dirname(__file__) + os.sep

# -- the core ----------------------------------------------------------------


class BaseShallowSaver(BasePostgresSaver):
    """Statements and row decoding of the shallow savers, free of I/O.

    As in ``langgraph-checkpoint-postgres``, a shallow saver keeps only the
    latest checkpoint of each (thread, namespace): ``put`` replaces it,
    ``get_tuple`` returns it whatever ``checkpoint_id`` the config names, and
    its tuples have no ``parent_config``.
    """

    def _get_tuple_statement(self, config: RunnableConfig) -> Statement:
        configurable = configurable_of(config)
        params = {
            "thread_id": thread_id_of(configurable),
            "checkpoint_ns": namespace_of(configurable),
        }
        # Checked like every id, though only the latest checkpoint exists:
        # it is returned whichever the config names, as the existing package
        # does (returning None would make LangGraph start the thread afresh,
        # over its stored state).
        if (checkpoint_id := configurable.get("checkpoint_id")) is not None:
            as_text(checkpoint_id, "checkpoint_id")
        wheres = ("c.thread_id = %(thread_id)s", "c.checkpoint_ns = %(checkpoint_ns)s")
        return Statement(self._sql(select_shallow(wheres, listing=False)), params)

    def _list_statement(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Statement:
        """The ``list()`` query: the stored checkpoints that match, newest first.

        Arguments mean what they mean for ``PostgresSaver.list``; a
        ``checkpoint_id`` (in ``config``, or ``before``'s) is compared with
        the stored checkpoint's id (the existing package fails in the server).
        """
        wheres: list[str] = []
        params: dict[str, Any] = {"limit": check_limit(limit)}
        if config:
            configurable = configurable_of(config)
            if "thread_id" in configurable:
                wheres.append("c.thread_id = %(thread_id)s")
                params["thread_id"] = thread_id_of(configurable)
            if (checkpoint_ns := configurable.get("checkpoint_ns")) is not None:
                wheres.append("c.checkpoint_ns = %(checkpoint_ns)s")
                params["checkpoint_ns"] = as_text(checkpoint_ns, "checkpoint_ns")
            if checkpoint_id := configurable.get("checkpoint_id"):
                wheres.append("c.checkpoint ->> 'id' = %(checkpoint_id)s")
                params["checkpoint_id"] = as_text(checkpoint_id, "checkpoint_id")
        if filter:
            wheres.append("c.metadata @> %(filter)s")
            params["filter"] = as_jsonb(filter, "filter")
        if before is not None:
            before_id = configurable_of(before).get("checkpoint_id")
            if not before_id:
                raise ValueError(
                    'before["configurable"] has no "checkpoint_id": pass the '
                    "config of the checkpoint to list before"
                )
            wheres.append("c.checkpoint ->> 'id' < %(before)s")
            params["before"] = as_text(before_id, "checkpoint_id")
        statement = select_shallow(tuple(wheres), listing=True)
        return Statement(self._sql(statement), params)

    def _put_statement(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Batch, RunnableConfig]:
        """Build ``put``: one statement that drops the writes of older
        checkpoints, stores the channels of ``new_versions`` and replaces the
        namespace's checkpoint row; and the config ``put`` returns.

        Every value goes to a blob, none inline: the existing package reads
        channel values from blobs only.
        """
        configurable = configurable_of(config)
        thread_id = thread_id_of(configurable)
        checkpoint_ns = namespace_of(configurable)
        parent_id = configurable.get("checkpoint_id")
        checkpoint_id = as_text(checkpoint["id"], "checkpoint_id")

        values = checkpoint["channel_values"]
        blob_rows: list[tuple[str, str, bytes | None]] = []
        for channel in new_versions:
            as_text(channel, "channel")
            if channel in values:
                blob_rows.append((channel, *self.serde.dumps_typed(values[channel])))
            else:
                blob_rows.append((channel, "empty", None))

        document = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        stored_metadata = get_serializable_checkpoint_metadata(config, metadata)
        check_finite(stored_metadata, "metadata")
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            # "" keeps `<>` free of NULL, which would make it match nothing.
            "parent_checkpoint_id": as_text(parent_id or "", "checkpoint_id"),
            "checkpoint": as_jsonb(document, "checkpoint (a channel name)"),
            "metadata": as_jsonb(stored_metadata, "metadata"),
        }
        pieces = [DELETE_STALE_WRITES_SQL]
        pieces += values_pieces(
            UPSERT_SHALLOW_BLOBS_SQL, SHALLOW_BLOB_ROW, len(blob_rows)
        )
        pieces.append(UPSERT_SHALLOW_CHECKPOINT_SQL)
        # The shallow savers run each write alone (keys only matter to
        # grouping), in one statement or, past ~3,000 channels, one
        # transaction (Batch.statements).
        batch = write_batch(
            [self._sql(piece) for piece in pieces],
            numbered_params(params, SHALLOW_BLOB_FIELDS, blob_rows),
            frozenset({("shallow-namespace", thread_id, checkpoint_ns)}),
        )
        return batch, checkpoint_config(thread_id, checkpoint_ns, checkpoint_id)

    def _load_tuple(self, row: Sequence[Any]) -> CheckpointTuple:
        """Rebuild a :class:`CheckpointTuple` from a row of the shallow query."""
        thread_id, checkpoint_ns, document, metadata, blobs, writes, sends = row
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, document)
        checkpoint["channel_values"] = {
            channel.decode(): loads((type_.decode(), payload))
            for channel, type_, payload in blobs or ()
        }
        # Always present, as the existing package returns it.
        checkpoint["pending_sends"] = [  # type: ignore[typeddict-unknown-key]
            loads((utf8_text(type_), payload)) for type_, payload in sends or ()
        ]
        pending_writes: list[PendingWrite] = [
            (task_id.decode(), channel.decode(), loads((utf8_text(type_), payload)))
            for _, task_id, _, channel, type_, payload in sorted_writes(writes)
        ]
        return CheckpointTuple(
            config=checkpoint_config(thread_id, checkpoint_ns, checkpoint["id"]),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, metadata),
            parent_config=None,
            pending_writes=pending_writes,
        )


#: As in the existing package, the shallow savers' ``MIGRATIONS`` list their
#: own layout (for reading only: ``setup()`` runs `SHALLOW_MIGRATIONS`). Set
#: here, not in the class body, where BasePostgresSaver refuses it from
#: subclasses that would expect it to change the SQL.
BaseShallowSaver.MIGRATIONS = [render(t, None) for t in SHALLOW_MIGRATION_TEMPLATES]
