"""Retention as a policy: what a saver's ``retention=`` config means, and
the statements of one sweep over the threads, free of I/O.

A sweep reads the threads a page at a time, in ``thread_id`` order, and
handles each page as one batch: one transaction that takes a lock per
thread (another sweeper's threads are skipped), then deletes or prunes
thread by thread, each statement about one thread (Citus runs it on that
thread's shard). The savers run what :class:`SweepPass` prepares.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._pg.sweeper import Sweeping
from langgraph.checkpoint.postgres._sql import render
from langgraph.checkpoint.postgres._sql.retention import (
    delete_thread_sql,
    prune_keep_last_sql,
    prune_keep_latest_sql,
)
from langgraph.checkpoint.postgres._sql.sweep import (
    LOCK_THREADS_SQL,
    SWEEP_SETTINGS_SQL,
    UNCHANGED_SINCE_SELECTED,
    candidates_sql,
)

#: What a sweep does with a thread it visits.
STRATEGIES = ("delete", "keep_latest", "keep_last")

#: Defaults of the ``retention`` config.
DEFAULT_SWEEP_INTERVAL_MINUTES = 60.0
DEFAULT_SWEEP_LIMIT = 100

#: Key of the per-thread advisory locks sweepers take (with the thread id's
#: hash as the second key); "lgsw" in ASCII.
SWEEP_LOCK_KEY = 0x6C677377

#: How long a sweep waits for a row a live writer holds before it leaves
#: that thread for the next sweep; below Postgres's default
#: ``deadlock_timeout`` (1 s), so a sweep gives up before any deadlock check.
SWEEP_LOCK_TIMEOUT = "200ms"

# Bounds that catch a unit mix-up (seconds for minutes) or a typo; a
# minute count this large would overflow Postgres's interval arithmetic.
_MAX_MINUTES = 2**31 - 1
_MAX_SWEEP_LIMIT = 100_000


class RetentionConfig(TypedDict, total=False):
    """The ``retention=`` config of :class:`PostgresSaver` and
    :class:`AsyncPostgresSaver`: what :meth:`~PostgresSaver.sweep` removes.

    - ``strategy``: ``"delete"`` removes idle threads whole (the default);
      ``"keep_latest"`` keeps each namespace's newest checkpoint;
      ``"keep_last"`` keeps its newest ``keep``.
    - ``keep``: with ``"keep_last"``, how many checkpoints per namespace.
    - ``default_ttl``: minutes since a thread's newest checkpoint after which
      it is swept. Required for ``"delete"``; without it the keep strategies
      apply to every thread.
    - ``sweep_interval_minutes``: pause between background sweeps (60).
    - ``sweep_limit``: threads per sweep transaction (100).
    """

    strategy: Literal["delete", "keep_latest", "keep_last"]
    keep: int
    default_ttl: float | None
    sweep_interval_minutes: float
    sweep_limit: int


@dataclass(frozen=True)
class SweepResult:
    """What a sweep removed.

    ``threads`` counts the threads it deleted or pruned, ``skipped`` those it
    visited and left as they were: busy (a live writer or another sweeper
    held them), written to since they were picked, or with nothing to remove.
    """

    threads: int = 0
    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    skipped: int = 0

    def __add__(self, other: SweepResult) -> SweepResult:
        return SweepResult(
            self.threads + other.threads,
            self.checkpoints + other.checkpoints,
            self.writes + other.writes,
            self.blobs + other.blobs,
            self.skipped + other.skipped,
        )

    @classmethod
    def of_thread(cls, counts: Sequence[Any] | None) -> SweepResult:
        """The result of one thread's statement (its row of counts), or of a
        thread left alone (``None``)."""
        if counts is None or not any(counts):
            return cls(skipped=1)
        checkpoints, writes, blobs = (int(n) for n in counts)
        return cls(1, checkpoints, writes, blobs)


def _number(config: Mapping[str, Any], key: str, default: float | None) -> Any:
    value = config.get(key, default)
    return None if value is None else check_minutes(value, f"retention[{key!r}]")


def check_minutes(value: Any, name: str) -> float:
    """``value`` if it is a usable number of minutes, else a ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= _MAX_MINUTES
    ):
        raise ValueError(f"{name} must be a positive number of minutes, got {value!r}")
    return float(value)


def _count(config: Mapping[str, Any], key: str, default: int | None) -> Any:
    value = config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"retention[{key!r}] must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class RetentionPolicy:
    """A checked ``retention`` config (see :class:`RetentionConfig`)."""

    strategy: str
    keep: int
    ttl_minutes: float | None
    interval_minutes: float
    limit: int

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> RetentionPolicy | None:
        """Check ``config``; ``None`` stays ``None`` (no policy)."""
        if config is None:
            return None
        if not isinstance(config, Mapping):
            raise TypeError(
                "retention must be a dict such as "
                '{"strategy": "delete", "default_ttl": 43200}, '
                f"got {type(config).__name__}"
            )
        unknown = sorted(set(config) - set(RetentionConfig.__annotations__))
        if unknown:
            raise ValueError(
                f"unknown retention key(s) {', '.join(map(repr, unknown))}: "
                f"use {', '.join(map(repr, RetentionConfig.__annotations__))}"
            )
        strategy = config.get("strategy", "delete")
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown retention strategy {strategy!r}: use one of "
                + ", ".join(map(repr, STRATEGIES))
            )
        keep = check_keep(strategy, config.get("keep"), "retention['keep']")
        ttl = _number(config, "default_ttl", None)
        if strategy == "delete" and ttl is None:
            raise ValueError(
                'retention strategy "delete" removes threads idle for '
                "default_ttl minutes: set retention['default_ttl'] (e.g. "
                '43200 for 30 days), or use strategy "keep_latest" or '
                '"keep_last" to trim every thread'
            )
        interval = _number(
            config, "sweep_interval_minutes", DEFAULT_SWEEP_INTERVAL_MINUTES
        )
        limit = _count(config, "sweep_limit", DEFAULT_SWEEP_LIMIT)
        if limit > _MAX_SWEEP_LIMIT:
            raise ValueError(
                f"retention['sweep_limit'] is threads per transaction, at most "
                f"{_MAX_SWEEP_LIMIT:,}; got {limit!r}"
            )
        return cls(strategy, keep, ttl, float(interval), limit)


def check_keep(strategy: str, keep: Any, name: str = "keep") -> int:
    """How many checkpoints per namespace ``strategy`` keeps; ``keep`` is
    what the caller gave (required for ``"keep_last"``, else refused)."""
    if strategy == "keep_last":
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(
                f'strategy "keep_last" needs {name}=N, the number of '
                f"checkpoints to keep per namespace (an integer >= 1); got {keep!r}"
            )
        return keep
    if keep is not None:
        raise ValueError(
            f'{name} goes with strategy "keep_last" only; strategy '
            f"{strategy!r} keeps {'nothing' if strategy == 'delete' else 'one'}"
        )
    return 0 if strategy == "delete" else 1


def prune_sql(strategy: str, guard: str = "TRUE") -> str:
    """The template of the one-thread statement of ``strategy``, which runs
    only if ``guard`` holds and returns how much it removed."""
    if strategy == "delete":
        return delete_thread_sql(guard)
    if strategy == "keep_latest":
        return prune_keep_latest_sql(guard)
    return prune_keep_last_sql(guard)


class SweepPass:
    """One sweep over the threads: the statements, page by page.

    The saver asks :meth:`next_page` for the query of the next page of
    threads, hands its rows to :meth:`receive`, and runs the page as one
    batch: :meth:`settings`, :meth:`lock` (the rows it returns are this
    sweeper's threads), then :meth:`thread` for each of them, each inside a
    savepoint, so that a thread a live writer holds is given up alone.
    """

    def __init__(self, policy: RetentionPolicy, schema: str | None) -> None:
        self.policy = policy
        self._schema = schema
        self._after: str | None = None
        self._done = False
        idle = policy.ttl_minutes is not None
        guard = UNCHANGED_SINCE_SELECTED if idle else "TRUE"
        self._thread_sql = render(prune_sql(policy.strategy, guard), schema)
        self._pages = [
            render(
                candidates_sql(
                    first_page=first,
                    idle=idle,
                    over_keep=policy.strategy != "delete",
                ),
                schema,
            )
            for first in (True, False)
        ]

    def next_page(self) -> Statement | None:
        """The query of the next page of threads; ``None`` when the pass is over."""
        if self._done:
            return None
        params: dict[str, Any] = {
            "limit": self.policy.limit,
            "keep": self.policy.keep,
            "ttl_minutes": self.policy.ttl_minutes,
        }
        if self._after is None:
            return Statement(self._pages[0], params)
        return Statement(self._pages[1], {**params, "after": self._after})

    def receive(self, rows: Sequence[Sequence[Any]]) -> None:
        """Take a page's rows (``thread_id``, newest checkpoint id)."""
        if len(rows) < self.policy.limit:
            self._done = True
        if rows:
            self._after = rows[-1][0]

    def settings(self) -> Statement:
        return Statement(SWEEP_SETTINGS_SQL, {"lock_timeout": SWEEP_LOCK_TIMEOUT})

    def lock(self, rows: Sequence[Sequence[Any]]) -> Statement:
        return Statement(
            LOCK_THREADS_SQL,
            {"thread_ids": [row[0] for row in rows], "lock_key": SWEEP_LOCK_KEY},
        )

    def thread(self, thread_id: str, newest: str) -> Statement:
        return Statement(
            self._thread_sql,
            {"thread_id": thread_id, "newest": newest, "keep": self.policy.keep},
        )


def _report(result: SweepResult) -> str | None:
    if not result.threads:
        return None
    return (
        f"{result.threads} threads, {result.checkpoints} checkpoints, "
        f"{result.writes} writes, {result.blobs} blobs removed "
        f"({result.skipped} threads left as they were)"
    )


#: The background sweeper of the savers (see ``_pg.sweeper``).
SWEEPING = Sweeping(
    "checkpoint retention sweeper",
    logging.getLogger("langgraph.checkpoint.postgres.sweeper"),
    _report,
)
