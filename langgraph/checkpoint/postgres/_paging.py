"""Keyset paging of ``list()``: page sizes and the query of each page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._sql import (
    EACH_THREAD,
    NEWEST_FIRST,
    NEWEST_FIRST_IN_NAMESPACE,
    ONE_THREAD,
    render,
    select_checkpoints,
    select_keys,
)

#: Rows ``list()`` fetches per round trip. It streams: between pages it holds
#: no connection and no lock, so the caller's loop body may use the saver.
LIST_PAGE_SIZE = 100

#: Rows of a ``list()``'s first page: small, so that the first item comes
#: soon and decoding starts early (each page is decoded while the server
#: prepares the next).
FIRST_PAGE_SIZE = 20


# On Citus a query across threads may not look up each row's blobs and
# writes the way the one-query read does (Citus refuses correlated lookups
# into other distributed tables on every shard), so a list across threads
# there reads a page's keys first, then each thread's rows on its shard.
# The rows of one thread whose (namespace, id) pairs are listed.
_KEYED_ROWS = (
    "c.thread_id = %(thread_id)s",
    "(c.checkpoint_ns, c.checkpoint_id) IN "
    "(SELECT * FROM unnest(%(namespaces)s::text[], %(ids)s::text[]))",
)

Key = tuple[str, str, str]


class ListPages:
    """Keyset pagination of one ``list()`` call; holds no connection.

    The savers loop: ``next_statement()``, execute it, ``receive()`` the
    page's row count and last row, until ``next_statement()`` returns
    ``None``. Each page resumes after the last row of the previous one,
    ordered by (checkpoint_id, thread_id, checkpoint_ns) descending, so the
    next page's query is known as soon as a page's last row arrives, before
    the page is decoded.
    """

    def __init__(
        self,
        schema: str | None,
        wheres: list[str],
        params: dict[str, Any],
        limit: int | None,
        one_namespace: bool,
    ) -> None:
        self._schema = schema
        self._wheres = wheres
        self._params = params
        self._remaining = limit
        # Within one (thread, namespace), checkpoint ids are unique and the
        # primary key serves `checkpoint_id < last` directly.
        self._one_namespace = one_namespace
        self._after: tuple[str, str, str] | None = None
        self._page_size = 0
        self._done = False

    def next_statement(self) -> Statement | None:
        """The query for the next page, or ``None`` when there is no more."""
        page = self._next_page()
        if page is None:
            return None
        wheres, params, order, limit = page
        thread = ONE_THREAD if "thread_id" in params else EACH_THREAD
        selection = select_checkpoints(wheres, order, limit, thread=thread)
        return Statement(render(selection, self._schema), params)

    def _next_page(self) -> tuple[tuple[str, ...], dict[str, Any], str, str] | None:
        """The next page's conditions, parameters, ORDER BY and LIMIT."""
        if self._done or self._remaining == 0:
            return None
        size = LIST_PAGE_SIZE if self._after is not None else FIRST_PAGE_SIZE
        if self._remaining is not None:
            size = min(size, self._remaining)
        wheres = list(self._wheres)
        params = dict(self._params)
        if self._after is not None:
            params["after_id"], params["after_thread"], params["after_ns"] = self._after
            if self._one_namespace:
                wheres.append("c.checkpoint_id < %(after_id)s")
            else:
                wheres.append(
                    "(c.checkpoint_id, c.thread_id, c.checkpoint_ns)"
                    " < (%(after_id)s, %(after_thread)s, %(after_ns)s)"
                )
        order = NEWEST_FIRST_IN_NAMESPACE if self._one_namespace else NEWEST_FIRST
        if size in (FIRST_PAGE_SIZE, LIST_PAGE_SIZE):
            # A literal, so that the server can keep one plan of the prepared
            # query. With a parameter it estimates the generic plan's row
            # count without the limit, finds it costlier than a plan made
            # for the value and so plans every page anew (~0.3 ms each).
            limit = f"LIMIT {size}"
        else:
            # A size cut by the caller's `limit`: one query shape for all.
            limit = "LIMIT %(page_size)s"
            params["page_size"] = size
        self._page_size = size
        return tuple(wheres), params, order, limit

    @property
    def spans_threads(self) -> bool:
        """Whether the list may return several threads (no thread named)."""
        return "thread_id" not in self._params

    def next_keys_statement(self) -> Statement | None:
        """The query for the next page's keys (thread, namespace, id) alone,
        or ``None`` when there is no more: the first step of a page read in
        two (see :meth:`rows_statements`), for a list across Citus shards."""
        page = self._next_page()
        if page is None:
            return None
        wheres, params, order, limit = page
        keys = select_keys(wheres, order, limit)
        return Statement(render(keys, self._schema), params)

    def rows_statements(self, keys: Sequence[Sequence[Any]]) -> list[Statement]:
        """The read queries of the checkpoints ``keys`` names: one per thread,
        each on that thread's shard."""
        by_thread: dict[str, tuple[list[str], list[str]]] = {}
        for thread_id, checkpoint_ns, checkpoint_id in keys:
            namespaces, ids = by_thread.setdefault(thread_id, ([], []))
            namespaces.append(checkpoint_ns)
            ids.append(checkpoint_id)
        sql = render(select_checkpoints(_KEYED_ROWS, thread=ONE_THREAD), self._schema)
        return [
            Statement(sql, {"thread_id": t, "namespaces": n, "ids": i})
            for t, (n, i) in by_thread.items()
        ]

    @staticmethod
    def in_key_order(
        keys: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]
    ) -> list[Sequence[Any]]:
        """``rows`` in the order of ``keys`` (a row deleted meanwhile is left
        out)."""
        by_key = {tuple(row[:3]): row for row in rows}
        return [row for key in keys if (row := by_key.get(tuple(key))) is not None]

    def receive(self, count: int, last: Sequence[Any] | None) -> None:
        """Note that the page brought ``count`` rows, ending with the result
        row ``last`` (``None`` for an empty page)."""
        if count < self._page_size:
            self._done = True
        if last is not None:
            thread_id, checkpoint_ns, checkpoint_id = last[:3]
            self._after = (checkpoint_id, thread_id, checkpoint_ns)
        if self._remaining is not None:
            self._remaining -= count
