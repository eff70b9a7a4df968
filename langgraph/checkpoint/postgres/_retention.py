"""Retention: the statements of ``delete_thread``, ``delete_for_runs``,
``copy_thread`` and ``prune``, each one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._sql import (
    COPY_THREAD_SQL,
    DELETE_FOR_RUNS_SQL,
    DELETE_THREADS_SQL,
    PRUNE_KEEP_LATEST_SQL,
    render,
)
from langgraph.checkpoint.postgres._validation import as_text, id_list

#: Strategies ``prune`` accepts.
PRUNE_STRATEGIES = ("keep_latest", "delete")


def delete_thread_statement(schema: str | None, thread_id: str) -> Statement:
    return Statement(
        render(DELETE_THREADS_SQL, schema),
        {"thread_ids": [as_text(thread_id, "thread_id")]},
    )


def delete_for_runs_statement(
    schema: str | None, run_ids: Sequence[str]
) -> Statement | None:
    """Build the ``delete_for_runs`` statement; ``None`` for no run ids."""
    ids = id_list(run_ids, "run_ids", "delete_for_runs")
    if not ids:
        return None
    return Statement(render(DELETE_FOR_RUNS_SQL, schema), {"run_ids": ids})


def copy_thread_statement(
    schema: str | None, source_thread_id: str, target_thread_id: str
) -> Statement:
    return Statement(
        render(COPY_THREAD_SQL, schema),
        {
            "source": as_text(source_thread_id, "thread_id"),
            "target": as_text(target_thread_id, "thread_id"),
        },
    )


def prune_statement(
    schema: str | None, thread_ids: Sequence[str], strategy: str
) -> Statement | None:
    """Build the ``prune`` statement; ``None`` for no thread ids."""
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(
            f"unknown prune strategy {strategy!r}: use one of "
            + ", ".join(repr(s) for s in PRUNE_STRATEGIES)
        )
    ids = id_list(thread_ids, "thread_ids", "prune")
    if not ids:
        return None
    sql = PRUNE_KEEP_LATEST_SQL if strategy == "keep_latest" else DELETE_THREADS_SQL
    return Statement(render(sql, schema), {"thread_ids": ids})
