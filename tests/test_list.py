"""``list()`` streams in pages: order, limits and nested calls across pages."""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._paging import FIRST_PAGE_SIZE, LIST_PAGE_SIZE
from langgraph.checkpoint.postgres._pg.watchdog import sever
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import ConnectionLostError

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
    # is gone, only the first page, already read, remains.
    saver.delete_thread("t")
    assert len(list(listing)) == FIRST_PAGE_SIZE - 1


async def test_async_rows_are_read_page_by_page_not_all_at_once(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    with PostgresSaver.from_conn_string(db_uri) as sync:
        _fill(sync, "t", COUNT)
    listing = asaver.alist(_thread("t"))
    first = await anext(listing)
    assert first.metadata["step"] == COUNT - 1
    # The async saver reads one page ahead: it decodes a page while the
    # server prepares the next. So the first page and the second remain.
    await asaver.adelete_thread("t")
    assert len([t async for t in listing]) == FIRST_PAGE_SIZE + LIST_PAGE_SIZE - 1


def _fill_big(saver: PostgresSaver, count: int, size: int) -> None:
    """Store ``count`` checkpoints on thread "t", each with a value of
    ``size`` random bytes (which the server cannot compress: rows stay big)."""
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    for step in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"big": os.urandom(size)}
        checkpoint["channel_versions"] = {"big": str(step + 1)}
        config = saver.put(config, checkpoint, {"step": step}, {"big": str(step + 1)})


class _ServerWatchingSerde(JsonPlusSerializer):
    """Notes, at its first decoded value, what the saver's backend is doing."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri
        self.backend_pid: int | None = None
        self.seen: tuple[Any, ...] | None = None

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if self.seen is None and self.backend_pid is not None:
            with psycopg.connect(self.uri) as other:
                self.seen = other.execute(
                    "SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s",
                    [self.backend_pid],
                ).fetchone()
        return super().loads_typed(data)


def test_a_page_is_decoded_while_the_server_still_sends_it(db_uri: str) -> None:
    """The sync saver decodes each row as it arrives rather than after the
    whole page: with rows too big for the socket's buffers, the server is
    still sending the page (waiting to write) when the first value is
    decoded."""
    serde = _ServerWatchingSerde(db_uri)
    with Connection.connect(db_uri, autocommit=True) as conn:
        saver = PostgresSaver(conn, serde=serde)  # type: ignore[arg-type]
        _fill_big(saver, 5, 4 << 20)
        serde.backend_pid = conn.info.backend_pid
        assert len(list(saver.list(_thread("t")))) == 5
    assert serde.seen == ("active", "ClientWrite")


class _SeveringSerde(JsonPlusSerializer):
    """Cuts the connection under a listing once it has decoded one value."""

    def __init__(self) -> None:
        super().__init__()
        self.conn: Any = None  # set to the saver's connection to arm it
        self.decoded = 0

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.decoded += 1
        if self.decoded == 2 and self.conn is not None:
            sever(self.conn)
        return super().loads_typed(data)


def test_a_connection_lost_mid_page_raises_rather_than_cutting_the_list_short(
    db_uri: str,
) -> None:
    serde = _SeveringSerde()
    with Connection.connect(db_uri, autocommit=True) as conn:
        saver = PostgresSaver(conn, serde=serde)  # type: ignore[arg-type]
        _fill_big(saver, 8, 1 << 20)
        serde.conn = conn
        with pytest.raises(ConnectionLostError):
            list(saver.list(_thread("t")))


def test_a_pooled_connection_lost_mid_page_is_replaced_and_the_page_read_again(
    db_uri: str,
) -> None:
    serde = _SeveringSerde()
    with ConnectionPool(db_uri, min_size=1, max_size=1) as pool:
        saver = PostgresSaver(pool, serde=serde)
        _fill_big(saver, 8, 1 << 20)
        with pool.connection() as conn:
            serde.conn = conn  # the pool's only connection: the listing's
        listed = list(saver.list(_thread("t")))
    assert [t.metadata["step"] for t in listed] == list(range(8))[::-1]
    assert serde.decoded > 8  # the first attempt decoded some, then all again


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
            rows = saver._fetch(first)
            pages.receive(len(rows), rows[-1])
            full = pages.next_statement()
            assert full is not None and f"LIMIT {LIST_PAGE_SIZE}" in full.sql
            with conn.cursor(row_factory=tuple_row) as cur:
                cur.execute("EXPLAIN (FORMAT JSON) " + full.sql, full.params)
                (plan,) = cur.fetchone() or ()
            cost = plan[0]["Plan"]["Total Cost"]
            assert cost < JIT_ABOVE_COST / 5, (shape, cost)
            # The plan the server keeps for the prepared query, made without
            # the parameters' values, too.
            cost = _generic_plan_cost(conn, full.sql, full.params)
            assert cost < JIT_ABOVE_COST / 5, (shape, "generic", cost)


def _generic_plan_cost(
    conn: Connection[Any], query: str, params: dict[str, Any]
) -> float:
    """Total cost of the plan the server makes for ``query`` without knowing
    the values of its parameters."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", query)))
    numbered = re.sub(
        r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", query
    )
    values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
    with (
        conn.transaction(force_rollback=True),
        conn.cursor(row_factory=tuple_row) as cur,
    ):
        cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cur.execute(sql.SQL("PREPARE generic_page AS {}").format(sql.SQL(numbered)))
        cur.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE generic_page ({})").format(values)
        )
        (plan,) = cur.fetchone() or ()
        cur.execute("DEALLOCATE generic_page")
    return float(plan[0]["Plan"]["Total Cost"])


async def test_the_server_plans_a_page_query_once_not_per_page(db_uri: str) -> None:
    """A page's prepared query gets one plan the server reuses, instead of a
    new plan for every page (about 0.3 ms of server time each)."""
    with PostgresSaver.from_conn_string(db_uri) as sync:
        _fill(sync, "t", COUNT)
    async with await AsyncConnection.connect(
        db_uri, autocommit=True, prepare_threshold=0
    ) as conn:
        await conn.execute("ANALYZE")  # as autovacuum would have
        saver = AsyncPostgresSaver(conn)  # type: ignore[arg-type]
        for _ in range(8):
            assert len([t async for t in saver.alist(_thread("t"))]) > LIST_PAGE_SIZE
        cur = await conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM checkpoints c WHERE%LIMIT%'"
            " AND statement NOT LIKE '%pg_prepared_statements%'"
        )
        plans = await cur.fetchall()
    assert len(plans) == 2
    for generic, custom in plans:
        assert generic >= 3 and custom <= 5, plans
