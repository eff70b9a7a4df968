"""Retention: the statements of ``delete_thread``, ``delete_for_runs``,
``copy_thread`` and ``prune``, each operation one transaction.

Each statement that deletes is about one thread (see ``_sql.retention``); an
operation on several threads is a list of them, which the savers run in one
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._sql import (
    COPY_THREAD_SQL,
    DELETE_FOR_RUNS_SQL,
    DELETE_THREAD_SQL,
    THREADS_OF_RUNS_SQL,
    render,
)
from langgraph.checkpoint.postgres._sweep import check_keep, prune_sql
from langgraph.checkpoint.postgres._validation import as_text, id_list

#: Strategies ``prune`` accepts.
PRUNE_STRATEGIES = ("keep_latest", "keep_last", "delete")


def delete_thread_statement(schema: str | None, thread_id: str) -> Statement:
    return Statement(
        render(DELETE_THREAD_SQL, schema),
        {"thread_id": as_text(thread_id, "thread_id")},
    )


def run_ids_of(run_ids: Sequence[str]) -> list[str]:
    """The checked run ids of a ``delete_for_runs`` call (maybe none)."""
    return id_list(run_ids, "run_ids", "delete_for_runs")


def threads_of_runs_statement(schema: str | None, run_ids: list[str]) -> Statement:
    """The query of the threads holding checkpoints of ``run_ids``."""
    return Statement(render(THREADS_OF_RUNS_SQL, schema), {"run_ids": run_ids})


def delete_for_runs_statements(
    schema: str | None, run_ids: list[str], thread_ids: Iterable[str]
) -> list[Statement]:
    """Delete the runs' checkpoints, thread by thread (``thread_ids`` as
    :func:`threads_of_runs_statement` found them)."""
    sql = render(DELETE_FOR_RUNS_SQL, schema)
    return [
        Statement(sql, {"thread_id": thread_id, "run_ids": run_ids})
        for thread_id in thread_ids
    ]


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


def prune_statements(
    schema: str | None,
    thread_ids: Sequence[str],
    strategy: str,
    keep: int | None = None,
) -> list[Statement]:
    """Build the ``prune`` statements, one per thread (none for no ids)."""
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(
            f"unknown prune strategy {strategy!r}: use one of "
            + ", ".join(repr(s) for s in PRUNE_STRATEGIES)
        )
    kept = check_keep(strategy, keep)
    ids = id_list(thread_ids, "thread_ids", "prune")
    rendered = render(prune_sql(strategy), schema)
    # A thread named twice is pruned once: a second pass would find nothing.
    return [
        Statement(rendered, {"thread_id": t, "keep": kept}) for t in dict.fromkeys(ids)
    ]
