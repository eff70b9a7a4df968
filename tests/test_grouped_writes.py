"""Writes that wait for a saver's one shared connection commit together.

LangGraph stores checkpoints and writes from background threads (or tasks),
so on a single connection several writes often wait at once; the saver
commits them in one transaction. These tests hold the connection's lock while
writers queue up, then check, through each row's ``xmin`` (the transaction
that wrote it), that the queued writes shared a commit, that each write is
still all-or-nothing, and that a write the database refuses fails only its
own caller.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from tests.dbcheck import refuse_inserts
from tests.savers import async_saver, sync_saver

WRITERS = 8
# Long enough for every writer to start and queue its write.
QUEUE_UP_SECONDS = 0.5
# The writers take turns between these threads: writes group only with
# writes of their own thread (on Citus, one statement per shard).
THREADS = ("ta", "tb")


def _put_args(writer: str) -> tuple[Any, ...]:
    numbered = re.fullmatch(r"w(\d+)", writer)
    thread_id = THREADS[int(numbered[1]) % len(THREADS)] if numbered else writer
    checkpoint = empty_checkpoint()
    # A list goes to a blob row, so each put writes two tables; a version of
    # the writer's own keeps the writes of one thread apart (a shared blob
    # row would make them run one by one).
    checkpoint["channel_values"] = {"messages": [writer] * 3, "n": 1}
    versions = {"messages": writer, "n": writer}
    checkpoint["channel_versions"] = versions
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    return config, checkpoint, {"source": "loop", "writer": writer}, versions


def _writer_ids(bad: bool) -> list[str]:
    ids = [f"w{i}" for i in range(WRITERS)]
    if bad:
        ids[WRITERS // 2] = "bad"
    return ids


def _transactions(uri: str) -> dict[str, set[tuple[str, int]]]:
    """For each writer, the (thread, transaction) pairs that wrote its
    checkpoint and its blob."""
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT metadata ->> 'writer', thread_id, xmin::text::bigint"
            " FROM checkpoints"
            " UNION ALL SELECT version, thread_id, xmin::text::bigint"
            " FROM checkpoint_blobs"
        ).fetchall()
    found: dict[str, set[tuple[str, int]]] = {}
    for writer, thread_id, xid in rows:
        found.setdefault(writer, set()).add((thread_id, xid))
    return found


def _check(uri: str, ids: list[str], errors: dict[str, BaseException]) -> None:
    good = [i for i in ids if i != "bad"]
    assert not {i: e for i, e in errors.items() if i != "bad"}
    if "bad" in ids:
        error = errors["bad"]
        assert isinstance(error, psycopg.errors.RaiseException)
        assert "lgcp refuses writer bad" in str(error)
    found = _transactions(uri)
    assert sorted(found) == sorted(good)  # nothing of the refused write
    # Each put is one transaction: its checkpoint and its blob share it.
    assert all(len(found[i]) == 1 for i in good)
    threads_of: dict[int, set[str]] = {}
    for (thread_id, xid), *_ in found.values():
        threads_of.setdefault(xid, set()).add(thread_id)
    # No commit holds two threads' writes.
    assert all(len(threads) == 1 for threads in threads_of.values()), threads_of
    if "bad" not in ids:
        # The writes of a thread that queued behind the first one shared
        # one commit: at most two per thread.
        assert len(threads_of) <= 2 * len(THREADS), threads_of
        assert len(threads_of) < len(good)  # some did share a commit


@pytest.mark.parametrize("kind", ["conn", "pipeline"])
@pytest.mark.parametrize("bad", [False, True], ids=["all-good", "one-refused"])
def test_queued_writes_share_a_commit(db_uri: str, kind: str, bad: bool) -> None:
    if bad:
        refuse_inserts(
            db_uri,
            "checkpoints",
            "lgcp refuses writer bad",
            when="NEW.metadata ->> 'writer' = 'bad'",
        )
    ids = _writer_ids(bad)
    errors: dict[str, BaseException] = {}
    with sync_saver(kind, db_uri) as saver:

        def write(thread_id: str) -> None:
            try:
                stored = saver.put(*_put_args(thread_id))
                assert saver.get_tuple(stored) is not None
            except BaseException as error:
                errors[thread_id] = error

        threads = [threading.Thread(target=write, args=(i,)) for i in ids]
        with saver.lock:  # the connection is busy while the writers queue
            for thread in threads:
                thread.start()
            time.sleep(QUEUE_UP_SECONDS)
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
    _check(db_uri, ids, errors)


@pytest.mark.parametrize("kind", ["aconn", "apipeline"])
@pytest.mark.parametrize("bad", [False, True], ids=["all-good", "one-refused"])
async def test_queued_async_writes_share_a_commit(
    db_uri: str, kind: str, bad: bool
) -> None:
    if bad:
        refuse_inserts(
            db_uri,
            "checkpoints",
            "lgcp refuses writer bad",
            when="NEW.metadata ->> 'writer' = 'bad'",
        )
    ids = _writer_ids(bad)
    errors: dict[str, BaseException] = {}
    async with async_saver(kind, db_uri) as saver:

        async def write(thread_id: str) -> None:
            try:
                stored = await saver.aput(*_put_args(thread_id))
                assert await saver.aget_tuple(stored) is not None
            except Exception as error:
                errors[thread_id] = error

        async with saver.lock:
            tasks = [asyncio.create_task(write(i)) for i in ids]
            await asyncio.sleep(QUEUE_UP_SECONDS)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    _check(db_uri, ids, errors)


@pytest.mark.parametrize("kind", ["aconn", "apipeline"])
async def test_a_cancelled_writer_does_not_drop_the_others(
    db_uri: str, kind: str
) -> None:
    # A FastAPI request that is cancelled while its write leads a group:
    # the writes of the group's other callers are still committed.
    ids = _writer_ids(bad=False)
    async with async_saver(kind, db_uri) as saver:
        # Every writer queues first; the first then takes the whole group
        # and waits for the busy connection, where it is cancelled.
        async with saver._leading, saver.lock:
            tasks = [asyncio.create_task(saver.aput(*_put_args(i))) for i in ids]
            await asyncio.sleep(QUEUE_UP_SECONDS)
        await asyncio.sleep(0)
        tasks[0].cancel()
        results = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), 30
        )
    assert isinstance(results[0], asyncio.CancelledError)
    assert not [r for r in results[1:] if isinstance(r, BaseException)]
    assert set(ids[1:]) <= set(_transactions(db_uri))


@pytest.mark.parametrize("kind", ["conn", "pipeline"])
def test_queued_writes_to_one_row_keep_their_order(db_uri: str, kind: str) -> None:
    # Two writes of one task queue together: they run one after the other,
    # in the order they were made, as they would without grouping: the later
    # special write replaces the earlier, the earlier ordinary write stays.
    with sync_saver(kind, db_uri) as saver:
        config = saver.put(*_put_args("same"))
        calls: list[Callable[[], Any]] = [
            partial(
                saver.put_writes, config, [("__error__", "1st"), ("a", "1st")], "t"
            ),
            partial(
                saver.put_writes, config, [("__error__", "2nd"), ("a", "2nd")], "t"
            ),
            partial(saver.put, *_put_args("other")),
        ]
        errors: list[BaseException] = []

        def run(call: Callable[[], Any]) -> None:
            try:
                call()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run, args=(call,)) for call in calls]
        with saver._leading, saver.lock:  # every writer queues, in this order
            for thread in threads:
                thread.start()
                time.sleep(QUEUE_UP_SECONDS / len(threads))
        for thread in threads:
            thread.join(30)
        assert not errors
        loaded = saver.get_tuple(config)
        assert saver.get_tuple(_put_args("other")[0]) is not None
    assert loaded is not None
    assert loaded.pending_writes == [("t", "__error__", "2nd"), ("t", "a", "1st")]
