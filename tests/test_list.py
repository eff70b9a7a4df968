"""``list()`` streams in pages: order, limits and nested calls across pages."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.rows import tuple_row

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import FIRST_PAGE_SIZE, LIST_PAGE_SIZE

# More than two pages, so that every boundary case is crossed.
COUNT = 2 * LIST_PAGE_SIZE + 37


def _fill(saver: PostgresSaver, thread_id: str, count: int, ns: str = "") -> list[str]:
    """Store a chain of ``count`` checkpoints; return their ids, oldest first."""
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    ids = []
    for step in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"step": step, "payload": [step]}
        checkpoint["channel_versions"] = {"step": str(step), "payload": str(step)}
        config = saver.put(
            config, checkpoint, {"step": step}, dict(checkpoint["channel_versions"])
        )
        saver.put_writes(config, [("out", step)], f"task-{step}")
        ids.append(checkpoint["id"])
    return ids


def _thread(thread_id: str, **extra: str) -> Any:
    return {"configurable": {"thread_id": thread_id, **extra}}


def test_whole_thread_in_order_with_values_and_writes(saver: PostgresSaver) -> None:
    ids = _fill(saver, "t", COUNT)
    listed = list(saver.list(_thread("t")))
    assert [t.checkpoint["id"] for t in listed] == ids[::-1]
    assert [t.metadata["step"] for t in listed] == list(range(COUNT))[::-1]
    assert all(
        t.checkpoint["channel_values"]["payload"] == [t.metadata["step"]]
        and t.pending_writes
        == [(f"task-{t.metadata['step']}", "out", t.metadata["step"])]
        for t in listed
    )


@pytest.mark.parametrize(
    "limit",
    [0, 1, FIRST_PAGE_SIZE, FIRST_PAGE_SIZE + 1, FIRST_PAGE_SIZE + LIST_PAGE_SIZE]
    + [FIRST_PAGE_SIZE + LIST_PAGE_SIZE + 1, COUNT + 5],
)
def test_limit_across_pages(saver: PostgresSaver, limit: int) -> None:
    ids = _fill(saver, "t", COUNT)
    listed = [t.checkpoint["id"] for t in saver.list(_thread("t"), limit=limit)]
    assert listed == ids[::-1][:limit]


def test_before_and_namespace_across_pages(saver: PostgresSaver) -> None:
    root = _fill(saver, "t", COUNT)
    sub = _fill(saver, "t", 5, ns="sub:1")
    before = {"configurable": {"thread_id": "t", "checkpoint_id": root[150]}}
    listed = [t.checkpoint["id"] for t in saver.list(_thread("t"), before=before)]
    expected = sorted([i for i in root + sub if i < root[150]], reverse=True)
    assert listed == expected
    only_root = saver.list(_thread("t", checkpoint_ns=""))
    assert [t.checkpoint["id"] for t in only_root] == root[::-1]


def test_copies_with_equal_ids_are_each_listed_once(saver: PostgresSaver) -> None:
    ids = _fill(saver, "a", COUNT)
    saver.copy_thread("a", "b")
    listed = [
        (t.config["configurable"]["thread_id"], t.checkpoint["id"])
        for t in saver.list(None)
    ]
    assert len(listed) == len(set(listed)) == 2 * COUNT
    assert [i for _, i in listed] == sorted(ids * 2, reverse=True)


def test_nested_calls_inside_the_loop(saver: PostgresSaver) -> None:
    ids = _fill(saver, "t", COUNT)
    seen = []
    for item in saver.list(_thread("t")):
        # Reading and writing on the same saver (one shared connection, too)
        # while the listing is under way.
        again = saver.get_tuple(item.config)
        assert again is not None and again.checkpoint["id"] == item.checkpoint["id"]
        saver.put_writes(item.config, [("seen", True)], "visitor")
        seen.append(item.checkpoint["id"])
    assert seen == ids[::-1]


async def test_async_nested_calls_inside_the_loop(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    with PostgresSaver.from_conn_string(db_uri) as sync:
        ids = _fill(sync, "t", COUNT)
    seen = []
    async for item in asaver.alist(_thread("t")):
        again = await asaver.aget_tuple(item.config)
        assert again is not None and again.checkpoint["id"] == item.checkpoint["id"]
        seen.append(item.checkpoint["id"])
    assert seen == ids[::-1]
    limited = [t.checkpoint["id"] async for t in asaver.alist(None, limit=150)]
    assert limited == ids[::-1][:150]


def test_rows_are_read_page_by_page_not_all_at_once(saver: PostgresSaver) -> None:
    _fill(saver, "t", COUNT)
    listing = saver.list(_thread("t"))
    first = next(listing)
    assert first.metadata["step"] == COUNT - 1
    # Rows not read yet are read when the loop gets to them: once the thread
    # is gone, only what was already fetched remains: the first page and the
    # one read while the first was decoded.
    saver.delete_thread("t")
    assert len(list(listing)) == FIRST_PAGE_SIZE + LIST_PAGE_SIZE - 1


#: The server's default ``jit_above_cost``.
JIT_ABOVE_COST = 100_000


def test_a_full_page_is_planned_far_below_the_jit_threshold(db_uri: str) -> None:
    """Servers with JIT on (the Debian and Ubuntu packages' default) compile a
    query planned above ``jit_above_cost``, which adds tens of milliseconds to
    every page. A full page must stay far below it (a fifth), so that bigger
    tables, whose lookups the planner costs higher, do not reach it."""
    with PostgresSaver.from_conn_string(db_uri) as saver:
        _fill(saver, "t", COUNT)
        _fill(saver, "t", 5, ns="sub:1")
        conn = saver.conn
        assert isinstance(conn, psycopg.Connection)
        conn.execute("ANALYZE")
        shapes = {
            "one namespace": _thread("t", checkpoint_ns=""),
            "every namespace": _thread("t"),
            "every thread": None,
        }
        for shape, config in shapes.items():
            pages = saver._list_pages(config, filter=None, before=None, limit=None)
            first = pages.next_statement()
            assert first is not None
            pages.receive(saver._fetch(first))
            full = pages.next_statement()
            assert full is not None and full.params["page_size"] == LIST_PAGE_SIZE
            with conn.cursor(row_factory=tuple_row) as cur:
                cur.execute("EXPLAIN (FORMAT JSON) " + full.sql, full.params)
                (plan,) = cur.fetchone() or ()
            cost = plan[0]["Plan"]["Total Cost"]
            assert cost < JIT_ABOVE_COST / 5, (shape, cost)
