"""Everything the Postgres savers share that does no I/O.

The sync saver (:class:`langgraph.checkpoint.postgres.PostgresSaver`) and the
async saver (:class:`langgraph.checkpoint.postgres.aio.AsyncPostgresSaver`)
borrow a connection, execute a :class:`Statement` built here, and hand the rows
back to the decoding methods here. Keeping SQL, migrations and the mapping
between LangGraph objects and rows in one place is what lets both savers stay
thin and behave identically.

The database layout is the one ``langgraph-checkpoint-postgres`` 3.x creates
at migration version 9, so a database can move between that package and this
one in either direction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot

from langgraph.checkpoint.postgres import _json

__all__ = [
    "MIGRATIONS",
    "BasePostgresSaver",
    "IncompatibleSchemaError",
    "Statement",
]

# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

#: Migrations by version number: entry ``v`` brings a database at version
#: ``v - 1`` to version ``v``. Versions 0-9 reproduce, step by step, the layout
#: of ``langgraph-checkpoint-postgres`` 3.x so that databases it created are
#: recognised as ours; our own changes are additive and start at 10. Every
#: statement is idempotent and runs inside a transaction (no ``CONCURRENTLY``).
MIGRATIONS: list[str] = [
    # 0
    "CREATE TABLE IF NOT EXISTS checkpoint_migrations (v INTEGER PRIMARY KEY)",
    # 1
    """CREATE TABLE IF NOT EXISTS checkpoints (
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
    """CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
)""",
    # 3
    """CREATE TABLE IF NOT EXISTS checkpoint_writes (
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
    "ALTER TABLE checkpoint_blobs ALTER COLUMN blob DROP NOT NULL",
    # 5: a version that changed nothing in the layout.
    "SELECT 1",
    # 6-8: single-column thread_id indexes, as the 3.x layout has them.
    "CREATE INDEX IF NOT EXISTS checkpoints_thread_id_idx ON checkpoints(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_blobs_thread_id_idx "
    "ON checkpoint_blobs(thread_id)",
    "CREATE INDEX IF NOT EXISTS checkpoint_writes_thread_id_idx "
    "ON checkpoint_writes(thread_id)",
    # 9
    "ALTER TABLE checkpoint_writes "
    "ADD COLUMN IF NOT EXISTS task_path TEXT NOT NULL DEFAULT ''",
]

#: Key of the transaction-scoped advisory lock that serialises ``setup()``
#: across processes (an arbitrary constant; "lgcp" in ASCII).
SETUP_LOCK_KEY = 0x6C676370

SETUP_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
CURRENT_VERSION_SQL = "SELECT max(v) FROM checkpoint_migrations"
RECORD_VERSION_SQL = "INSERT INTO checkpoint_migrations (v) VALUES (%s)"


class IncompatibleSchemaError(RuntimeError):
    """The database was migrated by a newer version of this package."""


# --------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------

# One row per checkpoint, with everything needed to rebuild its tuple: the
# blobs its channel_versions point at, its pending writes, and, for
# checkpoints older than format v4, the sends its parent scheduled. The
# arrays come back column-wise (no text/bytea casts, which would mangle
# backslashes in channel names).
SELECT_CHECKPOINTS_SQL = """
SELECT
    c.thread_id,
    c.checkpoint_ns,
    c.checkpoint_id,
    c.parent_checkpoint_id,
    c.checkpoint,
    c.metadata,
    b.channels,
    b.types,
    b.blobs,
    w.task_ids,
    w.channels,
    w.types,
    w.blobs,
    s.types,
    s.blobs
FROM checkpoints c
CROSS JOIN LATERAL (
    SELECT
        array_agg(bl.channel) AS channels,
        array_agg(bl.type) AS types,
        array_agg(bl.blob) AS blobs
    FROM jsonb_each_text(c.checkpoint -> 'channel_versions') cv
    JOIN checkpoint_blobs bl
        ON bl.thread_id = c.thread_id
        AND bl.checkpoint_ns = c.checkpoint_ns
        AND bl.channel = cv.key
        AND bl.version = cv.value
    WHERE bl.type <> 'empty'
) b
CROSS JOIN LATERAL (
    SELECT
        array_agg(cw.task_id ORDER BY cw.task_path, cw.task_id, cw.idx) AS task_ids,
        array_agg(cw.channel ORDER BY cw.task_path, cw.task_id, cw.idx) AS channels,
        array_agg(cw.type ORDER BY cw.task_path, cw.task_id, cw.idx) AS types,
        array_agg(cw.blob ORDER BY cw.task_path, cw.task_id, cw.idx) AS blobs
    FROM checkpoint_writes cw
    WHERE cw.thread_id = c.thread_id
        AND cw.checkpoint_ns = c.checkpoint_ns
        AND cw.checkpoint_id = c.checkpoint_id
) w
CROSS JOIN LATERAL (
    SELECT
        array_agg(ps.type ORDER BY ps.task_path, ps.task_id, ps.idx) AS types,
        array_agg(ps.blob ORDER BY ps.task_path, ps.task_id, ps.idx) AS blobs
    FROM checkpoint_writes ps
    WHERE (c.checkpoint ->> 'v')::int < 4
        AND ps.thread_id = c.thread_id
        AND ps.checkpoint_ns = c.checkpoint_ns
        AND ps.checkpoint_id = c.parent_checkpoint_id
        AND ps.channel = '__pregel_tasks'
) s
"""

# Blobs are immutable per (channel, version), so an existing one is kept;
# a checkpoint written again under the same id replaces its content.
# One statement, hence one transaction, even on an autocommit connection.
UPSERT_CHECKPOINT_SQL = """
WITH new_blobs AS (
    INSERT INTO checkpoint_blobs
        (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT %(thread_id)s, %(checkpoint_ns)s, ch, ver, ty, bl
    FROM unnest(
        %(channels)s::text[], %(versions)s::text[], %(types)s::text[],
        %(blobs)s::bytea[]
    ) AS t(ch, ver, ty, bl)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO checkpoints
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
# wrote before; ordinary writes are idempotent, so the first one stays.
UPSERT_WRITES_SQL = """
INSERT INTO checkpoint_writes
    (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
     idx, channel, type, blob)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s,
    %(task_path)s, ix, ch, ty, bl
FROM unnest(
    %(idxs)s::int[], %(channels)s::text[], %(types)s::text[], %(blobs)s::bytea[]
) AS t(ix, ch, ty, bl)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = EXCLUDED.channel,
    type = EXCLUDED.type,
    blob = EXCLUDED.blob
WHERE checkpoint_writes.idx < 0
"""

DELETE_THREAD_SQL = """
WITH deleted_writes AS (
    DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s
), deleted_blobs AS (
    DELETE FROM checkpoint_blobs WHERE thread_id = %(thread_id)s
)
DELETE FROM checkpoints WHERE thread_id = %(thread_id)s
"""


class Statement(NamedTuple):
    """A SQL statement and its parameters, ready for ``cursor.execute``."""

    sql: str
    params: dict[str, Any]


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

# JSONB holds 64-bit-safe integers exactly; orjson refuses larger ones.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

# Marker left in the checkpoint JSON for a channel whose value is a
# `_DeltaSnapshot` blob, so that SQL can find snapshot checkpoints without
# reading blobs (the convention of the 3.x layout).
_DELTA_SNAPSHOT_MARKER = True


def _is_inline(value: Any) -> bool:
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
        return _INT_MIN <= value <= _INT_MAX
    if kind is float:
        if not math.isfinite(value) or (value == 0.0 and math.copysign(1, value) < 0):
            return False
        return b"e" not in _json.dumps(value)
    return False


def _thread_id(configurable: dict[str, Any]) -> str:
    try:
        thread_id = configurable["thread_id"]
    except KeyError:
        raise ValueError(
            'config["configurable"] has no "thread_id": pass '
            '{"configurable": {"thread_id": ...}} to identify the thread'
        ) from None
    return str(thread_id)


def _configurable(config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable")
    if not isinstance(configurable, dict):
        raise ValueError(
            'config has no "configurable" dict: pass '
            '{"configurable": {"thread_id": ...}}'
        )
    return configurable


def _checkpoint_config(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str
) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


# --------------------------------------------------------------------------
# The saver base
# --------------------------------------------------------------------------


class BasePostgresSaver(BaseCheckpointSaver[str]):
    """Shared, I/O-free part of the Postgres checkpoint savers.

    Subclasses own a connection (or pool) and implement the I/O: each public
    method asks this class for a :class:`Statement`, executes it, and passes
    the resulting rows to :meth:`_load_tuple`.
    """

    MIGRATIONS = MIGRATIONS
    supports_pipeline: bool = False

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)

    # -- versions ----------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """Return the channel version after ``current``.

        Versions are strings that compare correctly as strings: a 32-digit
        zero-padded counter, a dot, and a random fraction, so that two forks
        of one checkpoint never produce the same version.

        >>> saver = BasePostgresSaver()
        >>> v1 = saver.get_next_version(None)
        >>> v1.startswith("00000000000000000000000000000001.")
        True
        >>> saver.get_next_version(v1) > v1
        True
        """
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(str(current).split(".", 1)[0])
        return f"{counter + 1:032}.{random.random():016}"

    # -- migrations --------------------------------------------------------

    @staticmethod
    def _pending_migrations(current: int | None) -> list[tuple[int, str]]:
        """Migrations to apply to a database at version ``current``.

        ``None`` means a database with no migration recorded yet. A database
        newer than this package is refused rather than guessed at.
        """
        latest = len(MIGRATIONS) - 1
        if current is not None and current > latest:
            raise IncompatibleSchemaError(
                f"the database schema is at migration version {current}, newer "
                f"than this package knows (version {latest}); upgrade the "
                "package (or point it at another database) instead of running "
                "setup() against it"
            )
        start = 0 if current is None else current + 1
        return [(v, MIGRATIONS[v]) for v in range(start, latest + 1)]

    # -- statements --------------------------------------------------------

    def _get_tuple_statement(self, config: RunnableConfig) -> Statement:
        configurable = _configurable(config)
        params = {
            "thread_id": _thread_id(configurable),
            "checkpoint_ns": configurable.get("checkpoint_ns") or "",
        }
        where = "WHERE c.thread_id = %(thread_id)s AND c.checkpoint_ns = %(checkpoint_ns)s"
        if checkpoint_id := configurable.get("checkpoint_id"):
            params["checkpoint_id"] = str(checkpoint_id)
            return Statement(
                f"{SELECT_CHECKPOINTS_SQL}{where} "
                "AND c.checkpoint_id = %(checkpoint_id)s",
                params,
            )
        return Statement(
            f"{SELECT_CHECKPOINTS_SQL}{where} ORDER BY c.checkpoint_id DESC LIMIT 1",
            params,
        )

    def _list_statement(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Statement:
        """Build the ``list()`` query.

        ``config`` narrows to a thread (every namespace unless
        ``checkpoint_ns`` is given) or a single checkpoint; ``filter`` matches
        metadata by JSON containment; ``before`` keeps checkpoints older than
        the one it names. Newest first.
        """
        wheres: list[str] = []
        params: dict[str, Any] = {}
        if config is not None:
            configurable = _configurable(config)
            if "thread_id" in configurable:
                wheres.append("c.thread_id = %(thread_id)s")
                params["thread_id"] = _thread_id(configurable)
            checkpoint_ns = configurable.get("checkpoint_ns")
            if checkpoint_ns is not None:
                wheres.append("c.checkpoint_ns = %(checkpoint_ns)s")
                params["checkpoint_ns"] = checkpoint_ns
            if checkpoint_id := configurable.get("checkpoint_id"):
                wheres.append("c.checkpoint_id = %(checkpoint_id)s")
                params["checkpoint_id"] = str(checkpoint_id)
        if filter:
            wheres.append("c.metadata @> %(filter)s")
            params["filter"] = _json.jsonb(filter)
        if before is not None:
            before_id = _configurable(before).get("checkpoint_id")
            if not before_id:
                raise ValueError(
                    'before["configurable"] has no "checkpoint_id": pass the '
                    "config of the checkpoint to list before"
                )
            wheres.append("c.checkpoint_id < %(before)s")
            params["before"] = str(before_id)
        sql = SELECT_CHECKPOINTS_SQL
        if wheres:
            sql += "WHERE " + " AND ".join(wheres)
        sql += " ORDER BY c.checkpoint_id DESC"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"limit must be a non-negative int, not {limit!r}")
            sql += " LIMIT %(limit)s"
            params["limit"] = limit
        return Statement(sql, params)

    def _put_statement(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Statement, RunnableConfig]:
        """Build the ``put`` statement and the config ``put`` returns.

        Values that JSON holds exactly stay inline in the checkpoint JSONB;
        every other value of a channel in ``new_versions`` becomes a blob keyed
        by (channel, version). A channel in ``new_versions`` with no value gets
        an ``empty`` blob, as the 3.x layout records it.
        """
        configurable = _configurable(config)
        thread_id = _thread_id(configurable)
        checkpoint_ns = configurable.get("checkpoint_ns") or ""
        parent_id = configurable.get("checkpoint_id")

        inline: dict[str, Any] = {}
        stored: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            if _is_inline(value):
                inline[channel] = value
            else:
                stored[channel] = value
                if isinstance(value, _DeltaSnapshot):
                    inline[channel] = _DELTA_SNAPSHOT_MARKER

        channels: list[str] = []
        versions: list[str] = []
        types: list[str] = []
        blobs: list[bytes | None] = []
        for channel, version in new_versions.items():
            if channel in stored:
                type_, blob = self.serde.dumps_typed(stored[channel])
                payload: bytes | None = blob
            else:
                type_, payload = "empty", None
            channels.append(channel)
            versions.append(str(version))
            types.append(type_)
            blobs.append(payload)

        document = {**checkpoint, "channel_values": inline}
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": parent_id,
            "checkpoint": _json.jsonb(document),
            "metadata": _json.jsonb(
                get_serializable_checkpoint_metadata(config, metadata)
            ),
            "channels": channels,
            "versions": versions,
            "types": types,
            "blobs": blobs,
        }
        next_config = _checkpoint_config(thread_id, checkpoint_ns, checkpoint["id"])
        return Statement(UPSERT_CHECKPOINT_SQL, params), next_config

    def _put_writes_statement(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Statement | None:
        """Build the ``put_writes`` statement; ``None`` when there is nothing."""
        configurable = _configurable(config)
        thread_id = _thread_id(configurable)
        checkpoint_id = configurable.get("checkpoint_id")
        if not checkpoint_id:
            raise ValueError(
                'config["configurable"] has no "checkpoint_id": writes belong '
                "to a checkpoint; pass the config that put() returned"
            )
        # A special channel has one fixed index; within one batch its last
        # write wins, as it would across batches.
        by_idx: dict[int, tuple[str, Any]] = {}
        for position, (channel, value) in enumerate(writes):
            by_idx[WRITES_IDX_MAP.get(channel, position)] = (channel, value)
        if not by_idx:
            return None
        idxs: list[int] = []
        channels: list[str] = []
        types: list[str] = []
        blobs: list[bytes] = []
        for idx, (channel, value) in by_idx.items():
            type_, blob = self.serde.dumps_typed(value)
            idxs.append(idx)
            channels.append(channel)
            types.append(type_)
            blobs.append(blob)
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": configurable.get("checkpoint_ns") or "",
            "checkpoint_id": str(checkpoint_id),
            "task_id": str(task_id),
            "task_path": task_path,
            "idxs": idxs,
            "channels": channels,
            "types": types,
            "blobs": blobs,
        }
        return Statement(UPSERT_WRITES_SQL, params)

    def _delete_thread_statement(self, thread_id: str) -> Statement:
        return Statement(DELETE_THREAD_SQL, {"thread_id": str(thread_id)})

    # -- rows to tuples ----------------------------------------------------

    def _load_tuple(self, row: Sequence[Any]) -> CheckpointTuple:
        """Rebuild a :class:`CheckpointTuple` from a row of the checkpoint query."""
        (
            thread_id,
            checkpoint_ns,
            checkpoint_id,
            parent_id,
            document,
            metadata,
            blob_channels,
            blob_types,
            blob_payloads,
            write_task_ids,
            write_channels,
            write_types,
            write_payloads,
            send_types,
            send_payloads,
        ) = row
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, document)
        channel_values: dict[str, Any] = checkpoint.get("channel_values") or {}
        if blob_channels:
            for channel, type_, payload in zip(
                blob_channels, blob_types, blob_payloads
            ):
                channel_values[channel] = loads((type_, payload))
        checkpoint["channel_values"] = channel_values
        if send_types:
            _move_sends_into_channels(
                checkpoint, [loads(s) for s in zip(send_types, send_payloads)]
            )
        pending_writes: list[PendingWrite] = []
        if write_task_ids:
            pending_writes = [
                (task_id, channel, loads((type_, payload)))
                for task_id, channel, type_, payload in zip(
                    write_task_ids, write_channels, write_types, write_payloads
                )
            ]
        return CheckpointTuple(
            config=_checkpoint_config(thread_id, checkpoint_ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, metadata),
            parent_config=(
                _checkpoint_config(thread_id, checkpoint_ns, parent_id)
                if parent_id
                else None
            ),
            pending_writes=pending_writes,
        )

    def _load_tuples(self, rows: Iterable[Sequence[Any]]) -> list[CheckpointTuple]:
        return [self._load_tuple(row) for row in rows]


def _move_sends_into_channels(checkpoint: Checkpoint, sends: list[Any]) -> None:
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
