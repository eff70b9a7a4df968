"""The sync ``list()`` streams its pages as prepared statements
(``StreamingCursor``), under the connection's ``prepare_threshold``, and a
streamed statement that fails leaves the connection usable."""

from __future__ import annotations

from typing import Any, cast

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.rows import tuple_row

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._paging import LIST_PAGE_SIZE
from langgraph.checkpoint.postgres._pg.cursors import StreamingCursor

# A first page, a full page and a last partial one: the three page shapes.
COUNT = LIST_PAGE_SIZE + 45


def _fill(saver: PostgresSaver, count: int) -> list[str]:
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    ids = []
    for step in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"payload": [step]}
        checkpoint["channel_versions"] = {"payload": str(step)}
        config = saver.put(config, checkpoint, {"step": step}, {"payload": str(step)})
        saver.put_writes(config, [("out", step)], f"task-{step}")
        ids.append(checkpoint["id"])
    return ids[::-1]


def _listed(saver: PostgresSaver, **kwargs: Any) -> list[tuple[str, Any, Any]]:
    config: Any = {"configurable": {"thread_id": "t"}}
    return [
        (t.checkpoint["id"], t.checkpoint["channel_values"], t.pending_writes)
        for t in saver.list(config, **kwargs)
    ]


def _prepared_pages(conn: psycopg.Connection[Any]) -> int:
    """Prepared statements of ``conn`` that are read queries."""
    cur = conn.cursor(row_factory=tuple_row)
    cur.execute(
        "SELECT count(*) FROM pg_prepared_statements"
        " WHERE statement LIKE '%%array_agg%%'"
    )
    return cast(int, cur.fetchone()[0])  # type: ignore[index]


def test_pages_stream_prepared_with_the_same_rows(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        newest_first = _fill(saver, COUNT)
        first = _listed(saver)
        assert [row[0] for row in first] == newest_first
        assert all(
            row[2] == [(f"task-{row[1]['payload'][0]}", "out", row[1]["payload"][0])]
            for row in first
        )
        # Again, on the statements prepared by the first pass.
        assert _listed(saver) == first
        assert _listed(saver, limit=30) == first[:30]
        assert isinstance(saver.conn, psycopg.Connection)
        assert _prepared_pages(saver.conn) >= 3


@pytest.mark.parametrize("threshold", [None, 2])
def test_prepare_threshold_of_the_connection_decides(
    db_uri: str, threshold: int | None
) -> None:
    with PostgresSaver.from_conn_string(db_uri) as filler:
        newest_first = _fill(filler, COUNT)
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.prepare_threshold = threshold
        saver = PostgresSaver(cast(Any, conn))
        for _ in range(3):
            assert [row[0] for row in _listed(saver)] == newest_first
        # None never prepares; 2 prepares from the third run on.
        assert (_prepared_pages(conn) > 0) == (threshold is not None)


def test_a_failing_streamed_statement_leaves_the_connection_usable(
    db_uri: str,
) -> None:
    with psycopg.connect(db_uri, autocommit=True, prepare_threshold=0) as conn:
        cur = StreamingCursor(conn)
        with pytest.raises(psycopg.errors.UndefinedColumn):
            list(cur.stream("SELECT no_such_column FROM pg_class"))
        # Fails in the run, once prepared: a division by zero on row 3.
        query = "SELECT 10 / (3 - g) FROM generate_series(1, 5) g"
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(cur.stream(query))
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(cur.stream(query))
        assert list(cur.stream("SELECT %s::int + 1", [41])) == [(42,)]
        assert conn.execute("SELECT 1").fetchone() == (1,)
