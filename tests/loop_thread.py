"""An event loop in another thread, for tests of the async clients' sync
methods (which run on the client's loop while another thread waits)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: How long a wait in these tests may take before it fails: generous, since
#: the calls take milliseconds; it only bounds a regression.
GUARD = 20.0


class LoopThread:
    """An event loop running in a daemon thread, which the test can stop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + GUARD
        while not self.loop.is_running():
            assert time.monotonic() < deadline, "the loop never started"
            time.sleep(0.001)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(GUARD)

    def stop(self) -> None:
        assert self.thread is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "the loop did not stop"
        self.thread = None


@contextmanager
def client_on_loop(
    open_client: Callable[[], AbstractAsyncContextManager[T]],
) -> Iterator[tuple[T, LoopThread]]:
    """The async client ``open_client()`` opens, created in a loop running in
    another thread; closed on that loop (restarted if the test stopped it)."""
    loop = LoopThread()
    stack = AsyncExitStack()
    try:
        client = loop.run(stack.enter_async_context(open_client()))
        assert client.loop is loop.loop  # type: ignore[attr-defined]
        yield client, loop
    finally:
        if loop.thread is None and not loop.loop.is_closed():
            loop.start()
        if loop.thread is not None:
            loop.run(stack.aclose())
            loop.stop()
        loop.loop.close()
