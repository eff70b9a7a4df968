"""Background sweepers: a daemon thread (sync saver) or a task (async saver)
that calls a sweep every interval until stopped.

A sweep that fails is logged and tried again at the next interval: a
database that is restarting or failing over must not end the sweeper.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from langgraph.checkpoint.postgres._sweep import SweepResult

logger = logging.getLogger("langgraph.checkpoint.postgres.sweeper")


def _report(result: SweepResult) -> None:
    if result.threads:
        logger.info(
            "retention sweep: %d threads, %d checkpoints, %d writes, %d blobs "
            "removed (%d threads left as they were)",
            result.threads,
            result.checkpoints,
            result.writes,
            result.blobs,
            result.skipped,
        )


class SweeperThread:
    """Runs ``sweep`` every ``interval`` seconds on a daemon thread."""

    def __init__(self, sweep: Callable[[], SweepResult], interval: float) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="checkpoint-retention-sweeper", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                _report(self._sweep())
            except Exception:
                logger.exception("retention sweep failed; trying again next interval")

    def stop(self, timeout: float | None) -> bool:
        """Stop after the sweep in progress, if any; return whether the
        thread ended within ``timeout`` seconds (``None``: wait for it)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()


class SweeperTask:
    """Runs ``sweep`` every ``interval`` seconds in a task of the running loop."""

    def __init__(
        self, sweep: Callable[[], Awaitable[SweepResult]], interval: float
    ) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(
            self._loop(), name="checkpoint-retention-sweeper"
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
                _report(await self._sweep())
            except Exception:
                logger.exception("retention sweep failed; trying again next interval")

    async def stop(self, timeout: float | None) -> bool:
        """Stop after the sweep in progress, if any; return whether the task
        ended within ``timeout`` seconds (``None``: wait for it)."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except asyncio.TimeoutError:
            return False
        return True
