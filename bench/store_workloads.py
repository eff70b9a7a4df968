"""Store workloads of the benchmark worker (``bench/workloads.py``).

They run against whichever ``langgraph.store.postgres`` the interpreter
imports: ours (``/work/main/.venv``) or that of ``langgraph-checkpoint-postgres``
(``bench/.venv-baseline``), through the API both share only:
``PostgresStore`` / ``AsyncPostgresStore`` from ``from_conn_string(uri,
index=...)``, ``setup()``, ``put``, ``get``, ``search``, ``list_namespaces``,
``batch`` and ``abatch``, with LangGraph's ``PutOp`` / ``GetOp`` /
``SearchOp``.

Every workload starts from the same 10,000 items (:func:`dataset`, seeded,
so both sides store identical data), loaded untimed by the side's own store:
its ``setup()``, then its ``batch()`` in batches of 500, then ``VACUUM
ANALYZE``. The runner has each side do that once per run (``--prepare``) in a
database it then copies (``CREATE DATABASE ... TEMPLATE``) for every
repetition: the worker of a repetition runs ``setup()`` again (a no-op on
the copy) and finds the items there. Given an empty database instead, it
loads them itself. Only then does the timed loop start (see
``workloads.Clock``).

The embedding of ``store_semantic`` is a deterministic stand-in for a model
(:func:`embed_text`): each word gets a fixed pseudo-random 256-dimension
vector seeded by a CRC-32 of the word, and a text's vector is the sum of its
words' vectors, so texts that share words point the same way (as a real
model's would), vectors are dense, and both sides compute the same floats.
It is memoized, so embedding costs the same next to nothing on both sides.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sys
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import psycopg
from langgraph.store.base import GetOp, Op, PutOp, SearchOp

from langgraph.store.postgres import PostgresStore
from langgraph.store.postgres.aio import AsyncPostgresStore

Result = dict[str, Any]

ITEMS = 10_000  # items loaded before every store workload
NAMESPACES = 200  # ("memories", "user-NNN") namespaces the items spread over
ROOT_LABEL = "memories"
LOAD_BATCH = 500  # PutOps per batch() while loading (untimed)
DIMS = 256  # dimensions of the fake embedding
SEARCH_LIMIT = 10
KINDS = (
    "fact",
    "preference",
    "event",
    "instruction",
    "goal",
    "contact",
    "opinion",
    "skill",
)
STATUSES = ("active", "active", "active", "archived")  # 3 in 4 active
QUERIES = 100  # distinct query texts store_semantic cycles through
BATCH_PUTS = 20  # of store_abatch50's 50 ops (half updates, half new items)
BATCH_GETS = 25
BATCH_SEARCHES = 5


class Timer(Protocol):
    """What a store workload needs of ``workloads.Clock``."""

    def run(self, op: Callable[[], object]) -> Result: ...

    async def arun(self, op: Callable[[], Awaitable[object]]) -> Result: ...


# -- data ----------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 600) -> list[str]:
    """``size`` distinct pronounceable pseudo-words."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: dict[str, None] = {}
    while len(words) < size:
        n = rng.randint(1, 3)  # syllables
        letters = [rng.choice(consonants) + rng.choice(vowels) for _ in range(n)]
        word = "".join(letters)
        words[word] = None
    return list(words)


_RNG = random.Random(2024)
WORDS = _vocabulary(_RNG)


def _sentence(rng: random.Random, low: int = 10, high: int = 16) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def namespace(user: int) -> tuple[str, str]:
    """The namespace of the ``user``-th of the 200 users."""
    return (ROOT_LABEL, f"user-{user % NAMESPACES:03d}")


def item_value(rng: random.Random, index: int) -> dict[str, Any]:
    """A memory as an agent would store it (about 200 bytes of JSON)."""
    return {
        "text": _sentence(rng),
        "kind": rng.choice(KINDS),
        "status": rng.choice(STATUSES),
        "importance": rng.randrange(10),
        "tags": [rng.choice(WORDS), rng.choice(WORDS)],
        "source": {"thread": f"thread-{index % 997}", "turn": index % 50},
    }


def dataset() -> list[tuple[tuple[str, str], str, dict[str, Any]]]:
    """The 10,000 items every store workload starts with: (namespace, key,
    value), item ``i`` in namespace ``i % 200``."""
    rng = random.Random(7)
    return [(namespace(i), f"mem-{i:05d}", item_value(rng, i)) for i in range(ITEMS)]


@functools.cache
def _word_vector(word: str) -> tuple[float, ...]:
    rng = random.Random(zlib.crc32(word.encode()))
    return tuple(rng.uniform(-1.0, 1.0) for _ in range(DIMS))


@functools.lru_cache(maxsize=20_000)
def embed_text(text: str) -> tuple[float, ...]:
    """The fake embedding of ``text``: the sum of its words' vectors."""
    total = [round(sum(xs), 5) for xs in zip(*map(_word_vector, text.split()))]
    if not any(total):
        total = [1.0] + [0.0] * (DIMS - 1)  # cosine needs a non-zero vector
    return tuple(total)


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Embed several texts; the ``embed`` of the index config."""
    return [list(embed_text(text)) for text in texts]


INDEX: dict[str, Any] = {
    "dims": DIMS,
    "embed": embed_texts,
    "fields": ["text"],
    "distance_type": "cosine",
    "ann_index_config": {"kind": "hnsw"},
}


def load(store: PostgresStore, uri: str) -> None:
    """Store the dataset in batches (untimed), then ``VACUUM ANALYZE``."""
    items = dataset()
    for start in range(0, len(items), LOAD_BATCH):
        chunk = items[start : start + LOAD_BATCH]
        store.batch([PutOp(ns, key, value) for ns, key, value in chunk])
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _prepared(uri: str, index: dict[str, Any] | None = None) -> int:
    """``setup()``, then the dataset unless the database has it (a copy of
    the runner's template); return how many items the store holds."""
    with PostgresStore.from_conn_string(uri, index=index) as store:  # type: ignore[arg-type]
        store.setup()
        with psycopg.connect(uri) as conn:
            row = conn.execute("SELECT count(*) FROM store").fetchone()
        if not row or not row[0]:
            load(store, uri)
            return ITEMS
    return int(row[0])


def prepare(workload: str, uri: str) -> int:
    """Set up and load what ``workload`` starts from (``--prepare``)."""
    return _prepared(uri, INDEX if workload in INDEXED else None)


# -- workloads -----------------------------------------------------------------


def w_store_put(uri: str, clock: Timer) -> Result:
    """``put`` of one new item per call, spread over the 200 namespaces."""
    _prepared(uri)
    rng = random.Random(11)
    values = [item_value(rng, ITEMS + i) for i in range(1000)]
    with PostgresStore.from_conn_string(uri) as store:
        counter = 0

        def op() -> None:
            nonlocal counter
            n = counter
            counter += 1
            store.put(namespace(n), f"new-{n:07d}", values[n % len(values)])

        return clock.run(op)


def w_store_get(uri: str, clock: Timer) -> Result:
    """``get`` of a random one of the 10,000 items."""
    _prepared(uri)
    rng = random.Random(13)
    with PostgresStore.from_conn_string(uri) as store:

        def op() -> None:
            i = rng.randrange(ITEMS)
            assert store.get(namespace(i), f"mem-{i:05d}") is not None

        return clock.run(op)


def w_store_search_filter(uri: str, clock: Timer) -> Result:
    """``search(("memories",), filter={"kind": K, "status": "active"},
    limit=10)``: every item is under the prefix, about 1 in 11 matches."""
    _prepared(uri)
    with PostgresStore.from_conn_string(uri) as store:
        counter = 0
        found = 0

        def op() -> None:
            nonlocal counter, found
            kind = KINDS[counter % len(KINDS)]
            counter += 1
            items = store.search(
                (ROOT_LABEL,),
                filter={"kind": kind, "status": "active"},
                limit=SEARCH_LIMIT,
            )
            found += len(items)

        result = clock.run(op)
    return result | {"results_per_call": found / max(counter, 1)}


def query_texts() -> list[str]:
    """The texts ``store_semantic`` searches for, in order."""
    rng = random.Random(17)
    return [_sentence(rng, 4, 8) for _ in range(QUERIES)]


def w_store_semantic(uri: str, clock: Timer) -> Result:
    """``search(("memories",), query=..., limit=10)``: cosine similarity
    through the HNSW index over 10,000 items of 256-dimension vectors."""
    _prepared(uri, INDEX)
    queries = query_texts()
    embed_texts(queries)  # memoized: embedding costs both sides nothing
    with PostgresStore.from_conn_string(uri, index=INDEX) as store:  # type: ignore[arg-type]
        counter = 0
        found = 0

        def op() -> None:
            nonlocal counter, found
            query = queries[counter % len(queries)]
            counter += 1
            items = store.search((ROOT_LABEL,), query=query, limit=SEARCH_LIMIT)
            found += len(items)

        result = clock.run(op)
    return result | {"results_per_call": found / max(counter, 1)}


def w_store_list_namespaces(uri: str, clock: Timer) -> Result:
    """``list_namespaces(prefix=("memories",), limit=1000)``: all 200
    namespaces of the 10,000 items."""
    _prepared(uri)
    with PostgresStore.from_conn_string(uri) as store:

        def op() -> None:
            listed = store.list_namespaces(prefix=(ROOT_LABEL,), limit=1000)
            assert len(listed) == NAMESPACES, len(listed)

        return clock.run(op)


def _mixed_batch(rng: random.Random, n: int) -> list[Op]:
    """Batch ``n`` of ``store_abatch50``: 20 puts (10 updates of loaded
    items, 10 new items), 25 gets of loaded items and 5 searches of one
    namespace with a filter, shuffled."""
    ops: list[Op] = []
    for j in range(BATCH_PUTS):
        if j % 2:
            i = rng.randrange(ITEMS)
            ns, key = namespace(i), f"mem-{i:05d}"
        else:
            k = n * BATCH_PUTS + j
            ns, key = namespace(k), f"batch-{k:07d}"
        ops.append(PutOp(ns, key, item_value(rng, j)))
    for _ in range(BATCH_GETS):
        i = rng.randrange(ITEMS)
        ops.append(GetOp(namespace(i), f"mem-{i:05d}"))
    for _ in range(BATCH_SEARCHES):
        ops.append(
            SearchOp(
                namespace(rng.randrange(NAMESPACES)),
                filter={"kind": rng.choice(KINDS)},
                limit=SEARCH_LIMIT,
            )
        )
    rng.shuffle(ops)
    return ops


def w_store_abatch50(uri: str, clock: Timer) -> Result:
    """``abatch`` of 50 mixed ops on ``AsyncPostgresStore`` (one connection)."""
    _prepared(uri)
    rng = random.Random(19)
    # Built ahead so the timed loop only runs them (cycled: puts repeat as
    # updates once the list wraps around).
    batches = [_mixed_batch(rng, n) for n in range(400)]

    async def main() -> Result:
        async with AsyncPostgresStore.from_conn_string(uri) as store:
            counter = 0

            async def op() -> None:
                nonlocal counter
                ops = batches[counter % len(batches)]
                counter += 1
                results = await store.abatch(ops)
                assert len(results) == len(ops)

            return await clock.arun(op)

    return dict(asyncio.run(main()), items_per_op=len(batches[0]))


#: The workloads that need the indexed dataset (and pgvector).
INDEXED = ("store_semantic",)

WORKLOADS: dict[str, Callable[[str, Any], Result]] = {
    "store_put": w_store_put,
    "store_get": w_store_get,
    "store_search_filter": w_store_search_filter,
    "store_semantic": w_store_semantic,
    "store_list_namespaces": w_store_list_namespaces,
    "store_abatch50": w_store_abatch50,
}


def store_module() -> str | None:
    """The file of the ``langgraph.store.postgres`` this interpreter runs."""
    return sys.modules[PostgresStore.__module__].__file__
