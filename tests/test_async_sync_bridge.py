"""The async saver's sync methods, called from threads, against its event loop.

``AsyncPostgresSaver.get_tuple``/``put``/... run the async method on the
saver's event loop and wait for it. They must work while that loop runs in
another thread, and raise at once, never wait forever, when it cannot answer:
closed, stopped, or stopping in the middle of the call.

Every call that could hang runs in a daemon thread joined with a timeout, so
a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Annotated, Any, TypedDict, TypeVar

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from psycopg_pool import AsyncConnectionPool

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tests.loop_thread import GUARD, LoopThread, client_on_loop
from tests.savers import ASYNC_KINDS, async_saver

T = TypeVar("T")


def _in_thread(call: Callable[[], T], timeout: float = GUARD) -> T:
    """``call()`` in a daemon thread; its result or error, or fail if it hangs."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the call still waits after {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextmanager
def saver_on_loop(
    kind: str, uri: str
) -> Iterator[tuple[AsyncPostgresSaver, LoopThread]]:
    """An async saver of ``kind``, created in a loop running in another thread."""
    with client_on_loop(lambda: async_saver(kind, uri)) as (saver, loop):
        yield saver, loop


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint(values: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = {k: "1" for k in values}
    return checkpoint


def _use_every_sync_method(saver: AsyncPostgresSaver) -> dict[str, Any]:
    saved = saver.put(_config("t"), _checkpoint({"k": [1]}), {}, {"k": "1"})
    saver.put_writes(saved, [("k", 2)], "task")
    loaded = saver.get_tuple(saved)
    listed = [item.config for item in saver.list(None)]
    saver.copy_thread("t", "copy")
    copied = saver.get_tuple(_config("copy"))
    saver.prune(["copy"], strategy="delete")
    saver.delete_for_runs(["no-such-run"])
    saver.delete_thread("t")
    return {
        "values": loaded.checkpoint["channel_values"] if loaded else None,
        "writes": loaded.pending_writes if loaded else None,
        "listed": listed == [saved],
        "copied": copied is not None,
        "left": [item.config for item in saver.list(None)],
    }


@pytest.mark.parametrize("kind", ASYNC_KINDS)
def test_sync_methods_work_while_the_loop_runs_in_another_thread(
    db_uri: str, kind: str
) -> None:
    with saver_on_loop(kind, db_uri) as (saver, _):
        observed = _in_thread(lambda: _use_every_sync_method(saver))
    assert observed == {
        "values": {"k": [1]},
        "writes": [("task", "k", 2)],
        "listed": True,
        "copied": True,
        "left": [],
    }


@pytest.mark.parametrize("kind", ASYNC_KINDS)
def test_sync_methods_raise_at_once_when_the_loop_is_stopped_or_closed(
    db_uri: str, kind: str
) -> None:
    with saver_on_loop(kind, db_uri) as (saver, loop):
        loop.stop()
        calls: list[Callable[[], object]] = [
            lambda: saver.get_tuple(_config("t")),
            lambda: list(saver.list(None)),
            lambda: saver.put(_config("t"), _checkpoint({"k": 1}), {}, {"k": "1"}),
            lambda: saver.delete_thread("t"),
        ]
        for call in calls:
            with pytest.raises(RuntimeError, match="is not running.*PostgresSaver"):
                _in_thread(call)
        # Nothing was left behind on the stopped loop: it runs on as before.
        loop.start()
        assert _in_thread(lambda: saver.get_tuple(_config("t"))) is None
    # saver_on_loop closed the loop on the way out.
    assert loop.loop.is_closed()
    for call in calls:
        with pytest.raises(RuntimeError, match="is closed.*PostgresSaver"):
            _in_thread(call)


async def _saver_calls_finished() -> None:
    """Wait until the saver calls running on this loop have finished."""
    calls = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith(
            "AsyncPostgresSaver."
        )
    ]
    assert calls, "no saver call was left on the loop"
    await asyncio.gather(*calls, return_exceptions=True)


def _wait_for_lock_waiter(db_uri: str) -> None:
    with psycopg.connect(db_uri, autocommit=True) as conn:
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()  # type: ignore[misc]
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the call never waited on the lock")


@pytest.mark.parametrize("kind", ["aconn", "apool"])
def test_a_sync_call_raises_when_the_loop_stops_before_it_finishes(
    db_uri: str, kind: str
) -> None:
    with saver_on_loop(kind, db_uri) as (saver, loop):
        # The call waits on the server (a table lock) while the loop stops.
        with psycopg.connect(db_uri) as blocker:
            blocker.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
            waiting = threading.Thread(target=_wait_for_lock_waiter, args=(db_uri,))
            waiting.start()
            outcome: list[BaseException] = []

            def call() -> None:
                try:
                    saver.delete_thread("t")
                except BaseException as error:
                    outcome.append(error)

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            waiting.join(GUARD)
            loop.stop()
            caller.join(GUARD)
            assert not caller.is_alive(), "the call waits for a stopped loop"
            blocker.rollback()
        assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
        assert "stopped before the call finished" in str(outcome[0])
        # Running again, the loop ends the abandoned call (cancelled, though
        # the server may have run its statement); the saver works on.
        loop.start()
        loop.run(_saver_calls_finished())
        saved = _in_thread(
            lambda: saver.put(_config("u"), _checkpoint({"k": 1}), {}, {"k": "1"})
        )
        assert _in_thread(lambda: saver.get_tuple(saved)) is not None


def test_a_saver_follows_a_new_loop_once_its_own_has_closed(db_uri: str) -> None:
    # pytest-asyncio's loop per test, or a second asyncio.run(): the saver
    # (on one connection) was created in a loop that is gone, and is now
    # used, async, in another one. Its sync methods run there.
    first = LoopThread()
    stack = AsyncExitStack()
    saver = first.run(stack.enter_async_context(async_saver("aconn", db_uri)))
    first.stop()
    first.loop.close()
    with pytest.raises(RuntimeError, match="is closed"):
        _in_thread(lambda: saver.get_tuple(_config("t")))
    second = LoopThread()
    try:
        assert second.run(saver.aget_tuple(_config("t"))) is None
        assert saver.loop is second.loop
        saved = _in_thread(
            lambda: saver.put(_config("t"), _checkpoint({"k": 1}), {}, {"k": "1"})
        )
        assert _in_thread(lambda: saver.get_tuple(saved)) is not None
    finally:
        second.run(stack.aclose())
        second.stop()
        second.loop.close()


def test_a_saver_created_outside_any_loop(db_uri: str) -> None:
    pool: Any = AsyncConnectionPool(db_uri, min_size=1, max_size=2, open=False)
    saver = AsyncPostgresSaver(pool)
    assert saver.loop is None
    with pytest.raises(RuntimeError, match="no event loop yet"):
        _in_thread(lambda: saver.get_tuple(_config("t")))
    # Its first async use, in a loop running elsewhere, gives it that loop.
    loop = LoopThread()
    try:
        loop.run(pool.open())
        assert loop.run(saver.aget_tuple(_config("t"))) is None
        assert saver.loop is loop.loop
        saved = _in_thread(
            lambda: saver.put(_config("t"), _checkpoint({"k": 1}), {}, {"k": "1"})
        )
        assert _in_thread(lambda: saver.get_tuple(saved)) is not None
    finally:
        loop.run(pool.close())
        loop.stop()
        loop.loop.close()


# -- a real graph: a sync subgraph on a worker thread of an async graph ------


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _subgraph() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("inner", lambda state: {"log": ["inner"]})
    builder.add_edge(START, "inner")
    builder.add_edge("inner", END)
    return builder


@pytest.mark.parametrize("how", ["sync node", "to_thread"])
@pytest.mark.parametrize("kind", ["aconn", "apool"])
def test_a_sync_subgraph_in_a_thread_of_an_async_graph(
    db_uri: str, kind: str, how: str
) -> None:
    async def scenario() -> tuple[Any, Any, int]:
        async with async_saver(kind, db_uri) as saver:
            bridged = 0
            run_sync = saver._run_sync

            def counting(coro: Any) -> Any:
                nonlocal bridged
                bridged += 1
                return run_sync(coro)

            saver._run_sync = counting  # type: ignore[method-assign]
            sub = _subgraph().compile(checkpointer=saver)
            sub_config: Any = {"configurable": {"thread_id": "sub"}}

            def call_sub(state: State) -> State:
                result = sub.invoke({"log": ["sub"]}, sub_config)
                return {"log": ["outer saw " + "+".join(result["log"])]}

            async def call_sub_in_thread(state: State) -> State:
                return await asyncio.to_thread(call_sub, state)

            builder = StateGraph(State)
            if how == "sync node":  # LangGraph runs it on a worker thread
                builder.add_node("outer", call_sub)
            else:
                builder.add_node("outer", call_sub_in_thread)
            builder.add_edge(START, "outer")
            builder.add_edge("outer", END)
            graph = builder.compile(checkpointer=saver)
            config: Any = {"configurable": {"thread_id": "main"}}
            final = await graph.ainvoke({"log": ["start"]}, config)
            state = await graph.aget_state(config)
            return final, state.values, bridged

    final, values, bridged = _in_thread(lambda: asyncio.run(scenario()), 60)
    expected = {"log": ["start", "outer saw sub+inner"]}
    assert final == expected
    assert values == expected
    assert bridged > 0  # the subgraph did use the sync methods, from a thread
