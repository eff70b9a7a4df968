"""The sync methods of an async client: its coroutine, run on its event loop.

LangGraph calls a checkpointer's (or store's) sync methods from worker
threads even in an async graph (a sync node, a sync subgraph), so the async
savers and store run the matching coroutine on the loop they were used on
and wait for it. Waiting can only end if that loop runs: on the loop's own
thread, or once it has stopped or closed, a call raises at once, saying what
to do instead, rather than waiting forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Coroutine
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

#: How often a sync call waiting for the client's loop checks that it runs.
LOOP_CHECK_INTERVAL = 0.1


class AsyncClient(NamedTuple):
    """How the errors name an async client and what to use instead."""

    #: The class, e.g. ``AsyncPostgresSaver``.
    name: str
    #: Its sync twin, e.g. ``PostgresSaver``.
    sync_twin: str
    #: Some of its async methods, e.g. ``aget_tuple, alist, aput``.
    async_methods: str


def followed_loop(
    loop: asyncio.AbstractEventLoop | None,
) -> asyncio.AbstractEventLoop:
    """The loop an async client's sync methods run on, as seen from one of
    its coroutines: the one it remembers, unless that has stopped (a second
    ``asyncio.run``, a loop per test); then the loop it is used in now."""
    if loop is None or not loop.is_running():
        return asyncio.get_running_loop()
    return loop


def run_on_loop(
    loop: asyncio.AbstractEventLoop | None,
    coro: Coroutine[Any, Any, T],
    client: AsyncClient,
) -> T:
    """Run ``coro`` on ``loop`` and wait for it from this thread.

    Raises ``asyncio.InvalidStateError`` on ``loop``'s own thread (waiting
    would block the loop that must run the call), and ``RuntimeError`` when
    there is no loop yet, or it is not running, or it stops during the call
    (which is then cancelled, should the loop run again).
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop:
        coro.close()
        if loop is None:
            raise RuntimeError(
                f"this {client.name} has no event loop yet: create it inside a "
                f"running loop, or use {client.sync_twin} for synchronous code"
            )
        raise asyncio.InvalidStateError(
            f"synchronous calls to {client.name} would block its own event "
            f"loop: from async code use its async methods ({client.async_methods}, "
            "...) or graph.ainvoke/astream; call the sync methods only from "
            f"another thread, or use {client.sync_twin}"
        )
    if not loop.is_running():
        coro.close()
        raise RuntimeError(_loop_gone(loop, client))
    try:
        future = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError as error:  # closed since we looked
        coro.close()
        raise RuntimeError(_loop_gone(loop, client)) from error
    # Wait for the result, but look now and then whether the loop still runs:
    # one that stops (or closes) mid-call would never answer.
    while True:
        try:
            future.exception(timeout=LOOP_CHECK_INTERVAL)
        except concurrent.futures.TimeoutError:
            if loop.is_running():
                continue
            if loop.is_closed():
                if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                    coro.close()  # never started: no "never awaited" warning
            else:
                future.cancel()  # should the loop run again, nothing resumes
            raise RuntimeError(_loop_gone(loop, client, midway=True)) from None
        return future.result()


def _loop_gone(
    loop: asyncio.AbstractEventLoop, client: AsyncClient, *, midway: bool = False
) -> str:
    """The error of a sync call whose client's event loop cannot answer."""
    if midway:
        what = "stopped before the call finished"
    elif loop.is_closed():
        what = "is closed"
    else:
        what = "is not running"
    return (
        f"the event loop this {client.name} runs on {what}, so its synchronous "
        "methods cannot run there: call them from another thread only while "
        f"that loop runs, use the async methods ({client.async_methods}, ...) "
        f"in the loop that is running (create the {client.name} inside it), or "
        f"use {client.sync_twin} for synchronous code and threads"
    )
