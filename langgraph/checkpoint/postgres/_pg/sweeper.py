"""Background sweepers: a daemon thread (sync clients) or a task (async
clients) that calls a sweep every interval until stopped. The saver's
retention sweeps and the store's TTL sweeps both run in them.

A sweep that fails is logged and tried again at the next interval: a
database that is restarting or failing over must not end the sweeper.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class Sweeping(Generic[R]):
    """What a sweeper is about: its name, where it logs, and how it tells a
    sweep's result (``report`` returns a log line, or ``None`` for nothing
    worth saying)."""

    def __init__(
        self, what: str, logger: logging.Logger, report: Callable[[R], str | None]
    ) -> None:
        self.what = what
        self.logger = logger
        self._report = report

    def succeeded(self, result: R) -> None:
        if (line := self._report(result)) is not None:
            self.logger.info("%s: %s", self.what, line)

    def failed(self) -> None:
        self.logger.exception("%s failed; trying again next interval", self.what)

    def stuck(self) -> None:
        self.logger.warning("timed out waiting for the %s to stop", self.what)


class SweeperThread(Generic[R]):
    """Runs ``sweep`` every ``interval`` seconds on a daemon thread.

    ``future`` completes when the sweeper stops; cancelling it stops it.
    """

    def __init__(
        self, sweep: Callable[[], R], interval: float, sweeping: Sweeping[R]
    ) -> None:
        self._sweep = sweep
        self._interval = interval
        self._sweeping = sweeping
        self._stop = threading.Event()
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.future.add_done_callback(
            lambda done: self._stop.set() if done.cancelled() else None
        )
        self._thread = threading.Thread(
            target=self._loop,
            name=sweeping.what.replace(" ", "-"),
            daemon=True,
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    result = self._sweep()
                except Exception:
                    self._sweeping.failed()
                else:
                    self._sweeping.succeeded(result)
        finally:
            if not self.future.done():
                self.future.set_result(None)

    def stop(self, timeout: float | None) -> bool:
        """Stop after the sweep in progress, if any; return whether the
        thread ended within ``timeout`` seconds (``None``: wait for it)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._sweeping.stuck()
            return False
        return True


class SweeperTask(Generic[R]):
    """Runs ``sweep`` every ``interval`` seconds in a task of the running loop."""

    def __init__(
        self,
        sweep: Callable[[], Awaitable[R]],
        interval: float,
        sweeping: Sweeping[R],
    ) -> None:
        self._sweep = sweep
        self._interval = interval
        self._sweeping = sweeping
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(
            self._loop(), name=sweeping.what.replace(" ", "-")
        )

    @property
    def running(self) -> bool:
        return not self.task.done()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            else:
                return
            try:
                result = await self._sweep()
            except Exception:
                self._sweeping.failed()
            else:
                self._sweeping.succeeded(result)

    async def stop(self, timeout: float | None) -> bool:
        """Stop after the sweep in progress, if any; return whether the task
        ended within ``timeout`` seconds (``None``: wait for it)."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except asyncio.TimeoutError:
            self._sweeping.stuck()
            return False
        return True
