"""Call timeouts of the sync twin: one thread that cuts off calls past their
deadline, and how a waiting call is cut off."""

from __future__ import annotations

import heapq
import itertools
import os
import select
import socket
import threading
import time
from typing import Any

import psycopg
from psycopg import Connection, pq


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


#: How long a call past its deadline gets to end by the server's cancel
#: before its socket is shut down.
GRACE_SECONDS = 1.0


def cut_off(alarm: Any) -> None:
    """End the call of ``alarm`` (past its deadline), on a thread of its own.

    Shutting the socket down alone ends only the client's wait: a statement
    the server still runs (one waiting for a lock, say) goes on, and commits
    once it can, although the caller was told it timed out. So the server is
    first asked to cancel it: a live server then aborts the statement, the
    call fails at once with the server's answer, and its connection stays
    usable. Only a call still waiting after ``GRACE_SECONDS`` (a server that
    stopped answering) has its socket shut down. The cancel request is
    prepared here, by the caller (libpq copies what it needs), and sent on
    the thread, so that a silent server holds up no other deadline.
    ``alarm`` has ``conn`` and ``cancelled``, set through
    :meth:`Watchdog.cancel` once the call is over.
    """
    try:
        request = alarm.conn.pgconn.cancel_conn()
    except psycopg.NotSupportedError:
        request = None  # libpq older than 17: no cancel request with a deadline
    except psycopg.Error:
        return  # already closed: nothing waits on it
    threading.Thread(
        target=_cut_off,
        args=(alarm, request),
        name="langgraph-postgres-cut-off",
        daemon=True,
    ).start()


def _cut_off(alarm: Any, request: Any) -> None:
    deadline = time.monotonic() + GRACE_SECONDS
    if request is not None:
        _send_cancel(request, deadline)
    while not alarm.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    # Under the lock that ending a call takes: a call that is over may have
    # handed its connection on, which must not be cut.
    with WATCHDOG.lock:
        if not alarm.cancelled:
            sever(alarm.conn)


def _send_cancel(request: Any, deadline: float) -> None:
    try:
        request.start()
        while True:
            status = request.poll()
            if status in (pq.PollingStatus.OK, pq.PollingStatus.FAILED):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            fd = request.socket
            if status == pq.PollingStatus.READING:
                select.select([fd], [], [], left)
            else:
                select.select([], [fd], [], left)
    except (psycopg.Error, OSError):
        pass  # the server is gone, or the statement is over: nothing to cancel
    finally:
        request.finish()


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

    def cancel(self, alarm: Any) -> None:
        """The call of ``alarm`` is over: its deadline no longer applies."""
        with self._cond:
            alarm.cancelled = True

    @property
    def lock(self) -> threading.Condition:
        return self._cond

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
                cut_off(alarm)


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._reset)
