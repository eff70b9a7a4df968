"""Call timeouts of the sync twin: one thread that cuts off calls past their
deadline, and how a waiting call is cut off."""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

import psycopg
from psycopg import Connection


def sever(conn: Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Shut down the socket under ``conn``, so that a call waiting on it fails.

    Closing the connection from another thread would free what the waiting
    call uses; shutting the socket down instead makes its wait end with an
    error (and libpq mark the connection bad), which is safe at any moment.
    """
    try:
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    except (OSError, psycopg.Error):
        return  # already closed: nothing waits on it
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class Alarm:
    __slots__ = ("conn", "deadline", "cancelled", "fired")

    def __init__(self, conn: Connection[Any], deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.cancelled = False
        self.fired = False


class Watchdog:
    """One thread that severs the connections of calls past their deadline.

    Arming and cancelling an alarm is a heap push and a flag under a lock, so
    a client with a ``timeout`` pays microseconds per call, not a thread.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also run in a forked child, which has no watchdog thread and may
        # have copied the lock while another thread held it.
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: Connection[Any], timeout: float) -> Alarm:
        alarm = Alarm(conn, time.monotonic() + timeout)
        with self._cond:
            heapq.heappush(self._heap, (alarm.deadline, next(self._counter), alarm))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="langgraph-postgres-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return alarm

    def cancel(self, alarm: Alarm) -> None:
        with self._cond:
            alarm.cancelled = True

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _, _, alarm = heapq.heappop(self._heap)
                alarm.fired = True
                sever(alarm.conn)


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._reset)
