"""Write batches: how ``put`` and ``put_writes`` become one statement, and
how the writes waiting for one shared connection are grouped."""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from langgraph.checkpoint.postgres._pg.statement import Statement

T = TypeVar("T")


# `put` and `put_writes` each send one statement: every row is an entry of
# a VALUES list, numbered parameters (`channel_0`, `channel_1`, ...) carry
# what differs between rows, and one parameter what they share (thread,
# namespace, checkpoint, task). A put stores its blobs in a WITH clause of
# the checkpoint upsert. Measured against one statement per row in a
# pipeline (the previous design), this saves about 80 us of client CPU per
# call, psycopg's pipeline bookkeeping, and waits on the socket twice instead
# of up to nine times, which matters under LangGraph's writer threads (each
# wait may cost a GIL handoff). Against a statement unnesting arrays of rows,
# it keeps each payload a binary bytea parameter (%b) that the server need
# not unpack from an array. A VALUES list holds at most `MAX_VALUES_ROWS`
# rows, so that the SQL shapes stay few; more rows take several lists.

#: Rows one VALUES list carries.
MAX_VALUES_ROWS = 32

#: INSERTs up to which a write (or a group of writes) may be prepared.
MAX_PREPARED_PIECES = 8

#: INSERTs one statement carries (about 134 parameters each, well under the
#: 65,535 Postgres allows); a write with more runs as several statements in
#: one transaction.
MAX_STATEMENT_PIECES = 100


TASK_WRITES_KEY = ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id")


@functools.lru_cache(maxsize=1024)
def _values_sql(template: str, row: str, start: int, count: int) -> str:
    """``template`` with rows ``start`` to ``start + count - 1`` of ``row``."""
    rows = (row.format(i=i) for i in range(start, start + count))
    return template.replace("{rows}", ",\n    ".join(rows))


def values_pieces(template: str, row: str, count: int) -> list[str]:
    """INSERTs of ``count`` rows, numbered from 0, ``MAX_VALUES_ROWS`` each."""
    return [
        _values_sql(template, row, start, min(MAX_VALUES_ROWS, count - start))
        for start in range(0, count, MAX_VALUES_ROWS)
    ]


def numbered_params(
    common: dict[str, Any], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """Parameters of VALUES rows: ``common`` plus ``field_i`` of row i."""
    params = dict(common)
    for i, row in enumerate(rows):
        for field, value in zip(fields, row):
            params[f"{field}_{i}"] = value
    return params


@functools.lru_cache(maxsize=1024)
def _joined(pieces: tuple[str, ...]) -> str:
    """One statement running every INSERT of ``pieces``: all but the last in
    a WITH clause (Postgres runs data-modifying WITH parts to completion)."""
    *first, last = pieces
    if not first:
        return last
    parts = ",\n".join(f"w{i} AS ({piece})" for i, piece in enumerate(first))
    return f"WITH {parts}\n{last}"


_PLACEHOLDER = re.compile(r"%\((\w+)\)")


@functools.lru_cache(maxsize=1024)
def _prefixed(piece: str, prefix: str) -> str:
    """``piece`` with ``prefix`` before each parameter name."""
    return _PLACEHOLDER.sub(rf"%({prefix}\1)", piece)


class Batch(NamedTuple):
    """A write (``put``, ``put_writes``, or a group of them): INSERTs that run
    as one statement, all-or-nothing.

    ``keys`` name the rows the INSERTs write. Writes are combined only when
    no two share a key: one statement may not update a row twice, and the
    parts of a statement run in no set order, where separate writes would
    run one after the other.
    """

    pieces: tuple[str, ...]
    params: dict[str, Any]
    keys: frozenset[tuple[Any, ...]]
    #: ``cursor.execute(prepare=...)``: ``None`` lets psycopg decide (by the
    #: connection's ``prepare_threshold``); ``False`` for large writes.
    prepare: bool | None = None
    #: The thread every row belongs to: writes are grouped only with writes
    #: of the same thread (see :class:`WriteQueue`).
    thread: str | None = None

    def statements(self) -> list[Statement]:
        """The statements to run in one transaction: one, unless the batch
        carries more than ``MAX_STATEMENT_PIECES`` INSERTs."""
        return [
            Statement(_joined(tuple(pieces)), self.params)
            for pieces in _chunks(self.pieces, MAX_STATEMENT_PIECES)
        ]


def write_batch(
    pieces: Sequence[str],
    params: dict[str, Any],
    keys: frozenset[tuple[Any, ...]],
    thread: str | None = None,
) -> Batch:
    # Writes of a few INSERTs come in few shapes, which psycopg may prepare
    # (its cache of prepared statements is bounded); larger ones are too
    # varied. Prepared, a group costs the server what its writes would cost
    # alone; unprepared, planning it takes about 0.4 ms (measured).
    prepare = None if len(pieces) <= MAX_PREPARED_PIECES else False
    return Batch(tuple(pieces), params, keys, prepare, thread)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class QueuedWrite:
    """A write batch waiting for the shared connection, and how it ended."""

    __slots__ = ("batch", "done", "error")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.done = False
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error

    def outcome(self) -> None:
        """Return once stored; raise what storing it raised."""
        if self.error is not None:
            raise self.error
        if not self.done:  # cannot happen: an interrupted run puts it back
            raise RuntimeError("the write was not run")


class WriteQueue:
    """Writes of a saver with one shared connection, committed in groups.

    LangGraph stores a checkpoint and the writes of the next step from
    background threads (or tasks), so several writes often wait for the one
    connection at once. Whoever gets to run takes every write waiting and
    commits them in one statement: one WAL flush instead of one each. Each
    write is still all-or-nothing, and its caller returns only after the
    commit that holds it. If a group fails, its writes run again one by one,
    so that a bad write fails only its own caller; so do the writes of a
    group in which two write one row, in the order they were made.

    A group holds the writes of one thread only (the oldest waiting write's):
    on Citus a statement touching two threads spans two shards, which makes
    its commit a two-phase one. A graph's own writes (a checkpoint and the
    next step's task writes) are of one thread, so they still group; the
    other threads' writes wait for the next group.
    """

    def __init__(self) -> None:
        # deque: append and popleft are atomic across threads.
        self._waiting: collections.deque[QueuedWrite] = collections.deque()

    def add(self, batch: Batch) -> QueuedWrite:
        """Queue ``batch``; the returned entry tells when it is stored."""
        entry = QueuedWrite(batch)
        self._waiting.append(entry)
        return entry

    def take(self, mine: QueuedWrite) -> list[QueuedWrite]:
        """The writes waiting now of the thread of ``mine`` (``mine``
        included, unless another group already took it), oldest first; the
        others stay queued, in order, for their own callers to take.

        Called by one taker at a time (the saver's leading lock); writes may
        be added meanwhile.
        """
        thread = mine.batch.thread
        group: list[QueuedWrite] = []
        others: list[QueuedWrite] = []
        # Only the writes waiting now: an add() during the scan stays behind.
        for _ in range(len(self._waiting)):
            entry = self._waiting.popleft()
            same = entry is mine or (
                thread is not None and entry.batch.thread == thread
            )
            (group if same else others).append(entry)
        self._waiting.extendleft(reversed(others))
        return group

    def put_back(self, group: Sequence[QueuedWrite], mine: QueuedWrite) -> None:
        """Queue again, first, the writes of ``group`` that did not run.

        For a run that was interrupted (a cancelled task, KeyboardInterrupt):
        the next caller to run commits them. ``mine``, the interrupted
        caller's own write, is dropped: its caller sees the interruption.
        """
        for entry in reversed(group):
            if not entry.done and entry is not mine:
                self._waiting.appendleft(entry)

    @staticmethod
    def combined(group: Sequence[QueuedWrite]) -> Batch | None:
        """``group`` as one statement, or ``None`` when its writes must run
        one by one: two of them write one row, or they exceed one statement."""
        if sum(len(entry.batch.pieces) for entry in group) > MAX_STATEMENT_PIECES:
            return None
        keys: set[tuple[Any, ...]] = set()
        pieces: list[str] = []
        params: dict[str, Any] = {}
        for number, entry in enumerate(group):
            batch = entry.batch
            if not keys.isdisjoint(batch.keys):
                return None
            keys |= batch.keys
            # Each write's parameters get their own names in the statement.
            prefix = f"g{number}_"
            pieces += (_prefixed(piece, prefix) for piece in batch.pieces)
            params.update((prefix + name, v) for name, v in batch.params.items())
        return write_batch(pieces, params, frozenset(keys), group[0].batch.thread)
