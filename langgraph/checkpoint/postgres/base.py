"""BasePostgresSaver: the I/O-free core that both savers call.

The sync saver (:class:`langgraph.checkpoint.postgres.PostgresSaver`) and the
async saver (:class:`langgraph.checkpoint.postgres.aio.AsyncPostgresSaver`)
borrow a connection (through the shared Postgres layer, ``_pg``), execute a
:class:`Statement` built here, and hand the rows back to the decoding methods
here. The pieces live in modules of their own (SQL in ``_sql``, the layout in
``_migrations``, input checks in ``_validation``, rows in ``_rows``, writes in
``_writes``, paging in ``_paging``, retention in ``_retention`` and
``_retention_core``, delta history in ``_delta``); this class puts them
together for each call, which is what lets both savers stay thin and behave
identically.

The database layout is the one ``langgraph-checkpoint-postgres`` 3.x creates
at migration version 9, so a database can move between that package and this
one in either direction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from langgraph.checkpoint.postgres import _delta, _retention
from langgraph.checkpoint.postgres._migrations import MIGRATIONS
from langgraph.checkpoint.postgres._paging import ListPages
from langgraph.checkpoint.postgres._pg.errors import (
    CallTimeoutError,
    ConnectionLostError,
    IncompatibleSchemaError,
    ReadOnlyServerError,
)
from langgraph.checkpoint.postgres._pg.options import PoolConfig, check_timeout
from langgraph.checkpoint.postgres._pg.schema import check_schema
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._retention_core import RetentionCore
from langgraph.checkpoint.postgres._rows import (
    DELTA_SNAPSHOT_MARKER,
    checkpoint_config,
    is_inline,
    move_sends_into_channels,
    sorted_writes,
    utf8_text,
)
from langgraph.checkpoint.postgres._sql import (
    BLOB_FIELDS,
    BLOB_ROW,
    NEWEST_FIRST_IN_NAMESPACE,
    ON_CITUS_SQL,
    ONE_THREAD,
    UPSERT_BLOBS_SQL,
    UPSERT_CHECKPOINT_SQL,
    UPSERT_WRITES_SQL,
    WRITE_FIELDS,
    WRITE_ROW,
    render,
    select_checkpoints,
)
from langgraph.checkpoint.postgres._sweep import (
    RetentionConfig,
    RetentionPolicy,
    SweepResult,
)
from langgraph.checkpoint.postgres._validation import (
    ConfigKeyError,
    as_jsonb,
    as_text,
    check_finite,
    check_limit,
    configurable_of,
    namespace_of,
    thread_id_of,
)
from langgraph.checkpoint.postgres._writes import (
    TASK_WRITES_KEY,
    Batch,
    QueuedWrite,
    WriteQueue,
    numbered_params,
    values_pieces,
    write_batch,
)

__all__ = [
    "MIGRATIONS",
    "Batch",
    "BasePostgresSaver",
    "PoolConfig",
    "IncompatibleSchemaError",
    "ConnectionLostError",
    "ReadOnlyServerError",
    "CallTimeoutError",
    "RetentionConfig",
    "SweepResult",
    "ListPages",
    "QueuedWrite",
    "Statement",
    "WriteQueue",
]


#: Class attributes through which subclasses of langgraph-checkpoint-postgres's
#: saver could change its SQL. This package builds its statements elsewhere
#: and never reads them, so a subclass setting one is refused, not ignored.
UPSTREAM_SQL_ATTRIBUTES = (
    "SELECT_SQL",
    "SELECT_PENDING_SENDS_SQL",
    "MIGRATIONS",
    "UPSERT_CHECKPOINT_BLOBS_SQL",
    "UPSERT_CHECKPOINTS_SQL",
    "UPSERT_CHECKPOINT_WRITES_SQL",
    "INSERT_CHECKPOINT_WRITES_SQL",
)


class BasePostgresSaver(BaseCheckpointSaver[str], RetentionCore):
    """Shared, I/O-free part of the Postgres checkpoint savers.

    Subclasses own a connection (or pool) and implement the I/O: each public
    method asks this class for a :class:`Statement`, executes it, and passes
    the resulting rows to :meth:`_load_tuple`.
    """

    MIGRATIONS = MIGRATIONS
    supports_pipeline: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in UPSTREAM_SQL_ATTRIBUTES if name in vars(cls)]
        if overridden:
            raise TypeError(
                f"{cls.__name__} sets {', '.join(overridden)}, through which "
                "subclasses of langgraph-checkpoint-postgres's saver changed its "
                "SQL; this package does not read them, so the change would be "
                "silently ignored. To keep the tables in another schema, pass "
                'schema="..." to the saver; otherwise remove them'
            )

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
        timeout: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> None:
        super().__init__(serde=serde)
        #: The Postgres schema holding the tables; ``None`` means whichever
        #: the connection's ``search_path`` finds (usually ``public``).
        self.schema = check_schema(schema)
        #: Seconds a database call may wait for the server; ``None``: no limit.
        self.timeout = check_timeout(timeout)
        #: What :meth:`sweep` removes (``None``: no policy; see
        #: :class:`RetentionConfig`).
        self.retention = RetentionPolicy.of(retention)
        # Whether the database has Citus: asked once, at the first list
        # across threads (the one call that reads differently there).
        self._citus: bool | None = None

    def _sql(self, template: str) -> str:
        """``template`` with the tables of this saver's schema filled in."""
        return render(template, self.schema)

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

    # -- statements --------------------------------------------------------

    def _get_tuple_statement(self, config: RunnableConfig) -> Statement:
        configurable = configurable_of(config)
        params = {
            "thread_id": thread_id_of(configurable),
            "checkpoint_ns": namespace_of(configurable),
        }
        wheres = ["c.thread_id = %(thread_id)s", "c.checkpoint_ns = %(checkpoint_ns)s"]
        if checkpoint_id := configurable.get("checkpoint_id"):
            params["checkpoint_id"] = as_text(checkpoint_id, "checkpoint_id")
            wheres.append("c.checkpoint_id = %(checkpoint_id)s")
            selection = select_checkpoints(tuple(wheres), thread=ONE_THREAD)
            return Statement(self._sql(selection), params)
        selection = select_checkpoints(
            tuple(wheres),
            NEWEST_FIRST_IN_NAMESPACE,
            "LIMIT 1",
            ordered=False,
            thread=ONE_THREAD,
        )
        return Statement(self._sql(selection), params)

    def _list_pages(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> ListPages:
        """Plan the ``list()`` queries.

        ``config`` narrows to a thread (every namespace unless
        ``checkpoint_ns`` is given) or a single checkpoint; ``filter`` matches
        metadata by JSON containment; ``before`` keeps checkpoints older than
        the one it names. Newest first.
        """
        wheres: list[str] = []
        params: dict[str, Any] = {}
        if config:  # `{}` lists every thread, as None does (and upstream)
            configurable = configurable_of(config)
            if "thread_id" in configurable:
                wheres.append("c.thread_id = %(thread_id)s")
                params["thread_id"] = thread_id_of(configurable)
            checkpoint_ns = configurable.get("checkpoint_ns")
            if checkpoint_ns is not None:
                wheres.append("c.checkpoint_ns = %(checkpoint_ns)s")
                params["checkpoint_ns"] = as_text(checkpoint_ns, "checkpoint_ns")
            if checkpoint_id := configurable.get("checkpoint_id"):
                wheres.append("c.checkpoint_id = %(checkpoint_id)s")
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
            wheres.append("c.checkpoint_id < %(before)s")
            params["before"] = as_text(before_id, "checkpoint_id")
        limit = check_limit(limit)
        one_namespace = "thread_id" in params and "checkpoint_ns" in params
        return ListPages(self.schema, wheres, params, limit, one_namespace)

    def _on_citus_statement(self) -> Statement | None:
        """The query of whether the database has Citus, or ``None`` when
        that is known already (then :attr:`_citus` says)."""
        return Statement(ON_CITUS_SQL, {}) if self._citus is None else None

    def _put_statement(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Batch, RunnableConfig]:
        """Build the ``put`` statements and the config ``put`` returns.

        Values that JSON holds exactly stay inline in the checkpoint JSONB
        (unless the serializer encrypts);
        every other value of a channel in ``new_versions`` becomes a blob keyed
        by (channel, version). Channels without a value get no row (older
        layouts wrote ``empty`` blobs for them, which readers skip).
        """
        configurable = configurable_of(config)
        thread_id = thread_id_of(configurable)
        checkpoint_ns = namespace_of(configurable)
        parent_id = configurable.get("checkpoint_id")
        if parent_id is not None:
            parent_id = as_text(parent_id, "checkpoint_id")
        checkpoint_id = as_text(checkpoint["id"], "checkpoint_id")

        inline: dict[str, Any] = {}
        stored: dict[str, Any] = {}
        # With an encrypting serializer every value goes to a blob: inline
        # JSON would keep it in plaintext.
        may_inline = not isinstance(self.serde, EncryptedSerializer)
        for channel, value in checkpoint["channel_values"].items():
            if may_inline and is_inline(value):
                inline[channel] = value
            else:
                stored[channel] = value
                if isinstance(value, _DeltaSnapshot):
                    inline[channel] = DELTA_SNAPSHOT_MARKER

        blob_rows: list[tuple[str, str, str, bytes]] = []
        for channel, version in new_versions.items():
            as_text(channel, "channel")
            if channel in stored:
                type_, blob = self.serde.dumps_typed(stored[channel])
                version = as_text(version, "channel version")
                blob_rows.append((channel, version, type_, blob))

        document = {**checkpoint, "channel_values": inline}
        # LangGraph's helper drops NUL from top-level string values (of the
        # metadata argument and of the config's), as the existing package
        # stores them; a NUL nested deeper or in a key is refused below.
        stored_metadata = get_serializable_checkpoint_metadata(config, metadata)
        check_finite(stored_metadata, "metadata")
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "parent_checkpoint_id": parent_id,
            # Channel names are keys of the checkpoint JSON.
            "checkpoint": as_jsonb(document, "checkpoint (a channel name)"),
            "metadata": as_jsonb(stored_metadata, "metadata"),
        }
        # The blobs are stored by the same statement as the checkpoint (the
        # same transaction, for thousands), so a reader never finds one
        # without the other.
        pieces = values_pieces(UPSERT_BLOBS_SQL, BLOB_ROW, len(blob_rows))
        pieces.append(UPSERT_CHECKPOINT_SQL)
        keys: set[tuple[Any, ...]] = {
            ("checkpoint", thread_id, checkpoint_ns, checkpoint_id)
        }
        keys.update(("blob", thread_id, checkpoint_ns, c, v) for c, v, *_ in blob_rows)
        batch = write_batch(
            [self._sql(piece) for piece in pieces],
            numbered_params(params, BLOB_FIELDS, blob_rows),
            frozenset(keys),
            thread_id,
        )
        next_config = checkpoint_config(thread_id, checkpoint_ns, checkpoint_id)
        return batch, next_config

    def _put_writes_statement(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Batch | None:
        """Build the ``put_writes`` statements; ``None`` when there is nothing."""
        configurable = configurable_of(config)
        thread_id = thread_id_of(configurable)
        checkpoint_id = configurable.get("checkpoint_id")
        if not checkpoint_id:
            raise ConfigKeyError(
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
        common = {
            "thread_id": thread_id,
            "checkpoint_ns": namespace_of(configurable),
            "checkpoint_id": as_text(checkpoint_id, "checkpoint_id"),
            "task_id": as_text(task_id, "task_id"),
            "task_path": as_text(task_path, "task_path"),
        }
        rows: list[tuple[int, str, str, bytes]] = []
        for idx, (channel, value) in by_idx.items():
            type_, blob = self.serde.dumps_typed(value)
            rows.append((idx, as_text(channel, "channel"), type_, blob))
        pieces = values_pieces(UPSERT_WRITES_SQL, WRITE_ROW, len(rows))
        # The rows of one task's writes to one checkpoint.
        key = ("writes", *(common[name] for name in TASK_WRITES_KEY))
        return write_batch(
            [self._sql(piece) for piece in pieces],
            numbered_params(common, WRITE_FIELDS, rows),
            frozenset({key}),
            thread_id,
        )

    def _delete_thread_statement(self, thread_id: str) -> Statement:
        return _retention.delete_thread_statement(self.schema, thread_id)

    def _threads_of_runs_statement(self, run_ids: Sequence[str]) -> Statement | None:
        """The query of the threads ``delete_for_runs`` deletes from (which
        it runs first); ``None`` for no run ids."""
        ids = _retention.run_ids_of(run_ids)
        if not ids:
            return None
        return _retention.threads_of_runs_statement(self.schema, ids)

    def _delete_for_runs_statements(
        self, threads_query: Statement, thread_rows: Sequence[Sequence[Any]]
    ) -> list[Statement]:
        """The ``delete_for_runs`` statements, one per thread that
        ``threads_query`` found (``thread_rows``)."""
        run_ids = threads_query.params["run_ids"]
        threads = (row[0] for row in thread_rows)
        return _retention.delete_for_runs_statements(self.schema, run_ids, threads)

    def _copy_thread_statement(
        self, source_thread_id: str, target_thread_id: str
    ) -> Statement:
        return _retention.copy_thread_statement(
            self.schema, source_thread_id, target_thread_id
        )

    def _delta_history_statement(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Statement:
        return _delta.delta_history_statement(self.schema, config, channels)

    def _load_delta_history(
        self, rows: Sequence[Sequence[Any]], channels: Sequence[str]
    ) -> dict[str, DeltaChannelHistory]:
        """Assemble ``get_delta_channel_history``'s result from the walk's rows."""
        return _delta.load_delta_history(self.serde, rows, channels)

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
            blobs,
            writes,
            sends,
        ) = row
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, document)
        channel_values: dict[str, Any] = checkpoint.get("channel_values") or {}
        if blobs:
            for channel, type_, payload in blobs:
                channel_values[channel.decode()] = loads((type_.decode(), payload))
        checkpoint["channel_values"] = channel_values
        if sends:
            move_sends_into_channels(
                checkpoint,
                [
                    loads((utf8_text(type_), payload))
                    for *_, type_, payload in sorted_writes(sends)
                ],
            )
        pending_writes: list[PendingWrite] = [
            (task_id.decode(), channel.decode(), loads((utf8_text(type_), payload)))
            for _, task_id, _, channel, type_, payload in sorted_writes(writes)
        ]
        return CheckpointTuple(
            config=checkpoint_config(thread_id, checkpoint_ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, metadata),
            parent_config=(
                checkpoint_config(thread_id, checkpoint_ns, parent_id)
                if parent_id
                else None
            ),
            pending_writes=pending_writes,
        )

    def _load_tuples(self, rows: Iterable[Sequence[Any]]) -> list[CheckpointTuple]:
        return [self._load_tuple(row) for row in rows]
