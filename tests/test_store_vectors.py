"""Semantic search through pgvector: what a user of ``index=`` notices.

These tests need the pgvector extension: they run on the embedded
PostgreSQL 18 and skip (with the reason) on a server without it. The
embedding is ``tests/store_embeddings.py``'s deterministic bigram histogram,
so scores can be recomputed here exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp, SearchOp

from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig
from tests.store_embeddings import DIMS, embed_text, embed_texts
from tests.stores import ASYNC_STORE_KINDS, SYNC_STORE_KINDS, async_store, sync_store

WORDS = (
    "apple banana cherry delta echo foxtrot golf hotel india juliet kilo lima "
    "mike november oscar papa quebec romeo sierra tango"
).split()


def index_config(**overrides: Any) -> PostgresIndexConfig:
    config: dict[str, Any] = {"dims": DIMS, "embed": embed_texts, "fields": ["text"]}
    config.update(overrides)
    return config  # type: ignore[return-value]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def random_texts(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(rnd.choices(WORDS, k=4)) + f" {i}" for i in range(n)]


def fill(store: PostgresStore, texts: list[str], every: int = 50) -> None:
    """Put one item per text under ("docs", group); every ``every``-th is rare."""
    ops = [
        PutOp(
            ("docs", f"g{i % 3}"),
            f"k{i}",
            {"text": text, "cat": "rare" if i % every == 0 else "common", "n": i},
        )
        for i, text in enumerate(texts)
    ]
    for start in range(0, len(ops), 500):
        store.batch(ops[start : start + 500])


def exact_scores(texts: list[str], query: str, keep: Any = None) -> list[float]:
    """The cosine similarities of the items to ``query``, best first (keys
    are not compared: many texts share words, so scores tie)."""
    q = embed_text(query)
    scores = [
        cosine(embed_text(t), q) for i, t in enumerate(texts) if keep is None or keep(i)
    ]
    return sorted(scores, reverse=True)


def scores_of(items: Sequence[Any]) -> list[float]:
    return [item.score for item in items]


def vector_rows(uri: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(uri) as conn:
        return conn.execute(
            "SELECT prefix, key, field_name FROM store_vectors ORDER BY 1, 2, 3"
        ).fetchall()


@pytest.fixture
def vstore(vector_db_uri: str) -> Iterator[PostgresStore]:
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()
        yield store


# -- the ANN index -------------------------------------------------------------


@pytest.mark.parametrize(
    "ann",
    [
        {"kind": "hnsw"},
        {"kind": "hnsw", "vector_type": "halfvec", "m": 8, "ef_construction": 32},
        {"kind": "ivfflat", "nlist": 10},
    ],
    ids=["hnsw", "hnsw-halfvec", "ivfflat"],
)
def test_semantic_search_uses_the_ann_index(vector_db_uri: str, ann: Any) -> None:
    texts = random_texts(3000)
    with PostgresStore.from_conn_string(
        vector_db_uri, index=index_config(ann_index_config=ann)
    ) as store:
        store.setup()
        fill(store, texts)
        store.setup()  # builds an IVFFlat index, now that there is data
        with psycopg.connect(vector_db_uri, autocommit=True) as conn:
            conn.execute("ANALYZE")
        # The statement a search runs, explained on the same settings.
        op = SearchOp(("docs",), query="apple banana", limit=10)
        plan = store._plan([op])
        store._remember_pgvector(store._fetch(store._pgvector_version_statement()))
        planned = plan.statements([], embed_texts(["apple banana"]))
        with psycopg.connect(vector_db_uri) as conn:
            for entry in planned[:-1]:
                conn.execute(entry.statement.sql, entry.statement.params)
            search = planned[-1].statement
            lines = conn.execute("EXPLAIN " + search.sql, search.params).fetchall()
        explained = "\n".join(line[0] for line in lines)
        assert "Index Scan using store_vectors_embedding_idx" in explained, explained
        found = store.search(("docs",), query="apple banana", limit=10)
    assert len(found) == 10
    # Approximate, but on this small table the index finds the true top 10.
    assert scores_of(found) == pytest.approx(exact_scores(texts, "apple banana")[:10])


@pytest.mark.parametrize("kind", ["hnsw", "ivfflat"])
def test_a_filtered_search_still_fills_its_page(vector_db_uri: str, kind: str) -> None:
    """With the index scan forced, a filter that rejects 49 of 50 candidates
    still yields ``limit`` results, the true best ones among the matches."""
    texts = random_texts(2000)
    with psycopg.connect(vector_db_uri, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET enable_seqscan = off')
    config = index_config(
        ann_index_config={"kind": kind, "nlist": 20}
        if kind == "ivfflat"
        else {"kind": kind}
    )
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        fill(store, texts)
        store.setup()  # builds an IVFFlat index, now that there is data
        found = store.search(
            ("docs",), query="cherry delta", filter={"cat": "rare"}, limit=10
        )
    assert all(item.value["cat"] == "rare" for item in found)
    expected = exact_scores(texts, "cherry delta", keep=lambda i: i % 50 == 0)
    assert scores_of(found) == pytest.approx(expected[:10])


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_offset_pages_through_semantic_results(vector_db_uri: str, kind: str) -> None:
    """Pages of 5 at offsets 0, 5, ... 95 are all full and, put together,
    are the exact top 100 (the existing package ran dry after offset 10)."""
    texts = random_texts(1500)
    config = index_config(ann_index_config={"kind": kind})
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        fill(store, texts)
        pages = [
            store.search(("docs",), query="golf hotel", limit=5, offset=offset)
            for offset in range(0, 100, 5)
        ]
    assert all(len(page) == 5 for page in pages)
    keys = [item.key for page in pages for item in page]
    assert len(set(keys)) == 100
    exact = exact_scores(texts, "golf hotel")[:100]
    found = [item.score for page in pages for item in page]
    if kind == "flat":
        assert found == pytest.approx(exact)
    else:  # approximate: most of the true top 100, in order
        assert found == sorted(found, reverse=True)
        assert sum(abs(a - b) < 1e-6 for a, b in zip(found, exact)) >= 90


# -- scores and distances ------------------------------------------------------


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_scores_follow_the_distance(vector_db_uri: str, distance: str) -> None:
    texts = ["apple banana", "banana cherry", "delta echo foxtrot", "apple"]
    config = index_config(distance_type=distance, ann_index_config={"kind": "flat"})
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        for i, text in enumerate(texts):
            store.put(("docs",), f"k{i}", {"text": text})
        found = store.search(("docs",), query="apple banana")
    q = embed_text("apple banana")

    def score(text: str) -> float:
        v = embed_text(text)
        if distance == "cosine":
            return cosine(v, q)
        if distance == "l2":
            return -math.dist(v, q)
        return sum(x * y for x, y in zip(v, q))

    expected = sorted(((score(t), f"k{i}") for i, t in enumerate(texts)), reverse=True)
    assert [item.key for item in found] == [key for _, key in expected]
    for item, (value, _) in zip(found, expected):
        assert item.score == pytest.approx(value, abs=1e-4)


def test_each_item_once_with_its_best_field(vector_db_uri: str) -> None:
    config = index_config(fields=["text", "tags[*]"])
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "zulu", "tags": ["apple banana", "kilo"]})
        store.put(("docs",), "b", {"text": "apple", "tags": ["mike"]})
        found = store.search(("docs",), query="apple banana")
    assert [item.key for item in found] == ["a", "b"]
    assert found[0].score == pytest.approx(1.0, abs=1e-4)


# -- vectors follow the item ---------------------------------------------------


def test_an_update_replaces_the_items_vectors(vector_db_uri: str) -> None:
    config = index_config(fields=["text", "tags[*]"])
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "apple", "tags": ["kilo lima", "mike"]})
        assert len(vector_rows(vector_db_uri)) == 3
        store.put(("docs",), "a", {"text": "oscar papa"})
        assert vector_rows(vector_db_uri) == [("docs", "a", "text")]
        best = store.search(("docs",), query="kilo lima")[0]
    assert best.score == pytest.approx(
        cosine(embed_text("oscar papa"), embed_text("kilo lima")), abs=1e-4
    )


def test_put_with_index_false_leaves_no_stale_vector(vector_db_uri: str) -> None:
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "apple"})
        store.put(("docs",), "a", {"text": "banana"}, index=False)
        assert vector_rows(vector_db_uri) == []
        # Not embedded, so a semantic search does not find it.
        assert store.search(("docs",), query="apple") == []
        assert store.get(("docs",), "a").value == {"text": "banana"}  # type: ignore[union-attr]


def test_put_with_index_paths(vector_db_uri: str) -> None:
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()
        store.put(("docs",), "whole", {"title": "apple"}, index=["$"])
        store.put(("docs",), "title", {"title": "apple", "text": "x"}, index=["title"])
        rows = vector_rows(vector_db_uri)
        found = store.search(("docs",), query="apple")
    assert rows == [("docs", "title", "title"), ("docs", "whole", "$")]
    assert found[0].key == "title"
    assert found[0].score == pytest.approx(1.0, abs=1e-4)


def test_deleting_or_sweeping_an_item_deletes_its_vectors(vector_db_uri: str) -> None:
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "apple"})
        store.put(("docs",), "b", {"text": "banana"}, ttl=0.001)
        store.delete(("docs",), "a")
        with psycopg.connect(vector_db_uri) as conn:
            conn.execute("UPDATE store SET expires_at = now() - interval '1 second'")
        assert store.sweep_ttl() == 1
        assert vector_rows(vector_db_uri) == []


# -- embedders -------------------------------------------------------------------


class RecordingEmbeddings(Embeddings):
    """Embeddings that remember which method embedded which text."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("documents", list(texts)))
        return embed_texts(texts)

    def embed_query(self, text: str) -> list[float]:
        self.calls.append(("query", [text]))
        return embed_text(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("adocuments", list(texts)))
        return embed_texts(texts)

    async def aembed_query(self, text: str) -> list[float]:
        self.calls.append(("aquery", [text]))
        return embed_text(text)


@pytest.mark.parametrize("kind", SYNC_STORE_KINDS)
def test_queries_are_embedded_as_queries(vector_db_uri: str, kind: str) -> None:
    embeddings = RecordingEmbeddings()
    with sync_store(kind, vector_db_uri, index=index_config(embed=embeddings)) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "apple"})
        store.search(("docs",), query="apple")
    assert embeddings.calls == [("documents", ["apple"]), ("query", ["apple"])]


@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
async def test_async_queries_are_embedded_as_queries(
    vector_db_uri: str, kind: str
) -> None:
    embeddings = RecordingEmbeddings()
    config = index_config(embed=embeddings)
    async with async_store(kind, vector_db_uri, index=config) as store:
        await store.setup()
        await store.aput(("docs",), "a", {"text": "apple"})
        found = await store.asearch(("docs",), query="apple")
    assert embeddings.calls == [("adocuments", ["apple"]), ("aquery", ["apple"])]
    assert found[0].score == pytest.approx(1.0, abs=1e-4)


async def test_async_embedding_function(vector_db_uri: str) -> None:
    async def embed(texts: list[str]) -> list[list[float]]:
        return embed_texts(texts)

    config = index_config(embed=embed)
    async with AsyncPostgresStore.from_conn_string(
        vector_db_uri, index=config
    ) as store:
        await store.setup()
        await store.aput(("docs",), "a", {"text": "apple"})
        found = await store.asearch(("docs",), query="apple")
    assert [item.key for item in found] == ["a"]


# -- setup ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfflat"])
async def test_async_and_sync_setup_accept_the_same_configs(
    vector_db_uri: str, kind: str
) -> None:
    config = index_config(ann_index_config={"kind": kind})
    async with AsyncPostgresStore.from_conn_string(
        vector_db_uri, index=config
    ) as store:
        await store.setup()
        await store.aput(("docs",), "a", {"text": "apple"})
        assert [i.key for i in await store.asearch(("docs",), query="apple")] == ["a"]
    with psycopg.connect(vector_db_uri) as conn:
        versions = [
            v for (v,) in conn.execute("SELECT v FROM vector_migrations ORDER BY v")
        ]
        indexed = conn.execute(
            "SELECT count(*) FROM pg_indexes "
            "WHERE indexname = 'store_vectors_embedding_idx'"
        ).fetchone()
    # A flat store leaves the ANN index (version 2) to a later store with one;
    # an IVFFlat index waits for data to cluster.
    assert versions == ([0, 1, 2] if kind == "hnsw" else [0, 1])
    assert indexed == ((1,) if kind == "hnsw" else (0,))


def test_a_flat_store_then_an_indexed_one(vector_db_uri: str) -> None:
    flat = index_config(ann_index_config={"kind": "flat"})
    with PostgresStore.from_conn_string(vector_db_uri, index=flat) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "apple"})
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()  # builds the index on the populated table
        assert [i.key for i in store.search(("docs",), query="apple")] == ["a"]
    with PostgresStore.from_conn_string(vector_db_uri, index=flat) as store:
        store.setup()  # version 2 recorded: known, not "newer"
        assert [i.key for i in store.search(("docs",), query="apple")] == ["a"]


def test_setup_refuses_other_dimensions(vector_db_uri: str) -> None:
    with PostgresStore.from_conn_string(vector_db_uri, index=index_config()) as store:
        store.setup()
    other = index_config(dims=32, embed=lambda texts: [[1.0] * 32 for _ in texts])
    with PostgresStore.from_conn_string(vector_db_uri, index=other) as store:
        with pytest.raises(ValueError, match=r"vector\(16\).*vector\(32\)"):
            store.setup()


def test_wrong_embedding_length_is_refused_before_writing(vector_db_uri: str) -> None:
    config = index_config(embed=lambda texts: [[1.0] * 3 for _ in texts])
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        with pytest.raises(ValueError, match="3 dimensions.*dims=16"):
            store.put(("docs",), "a", {"text": "apple"})
        assert store.get(("docs",), "a") is None


def test_nan_embedding_is_refused(vector_db_uri: str) -> None:
    config = index_config(embed=lambda texts: [[math.nan] * DIMS for _ in texts])
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        with pytest.raises(ValueError, match="NaN"):
            store.put(("docs",), "a", {"text": "apple"})


@pytest.mark.parametrize(
    "config, message",
    [
        ({"embed": embed_texts}, "'dims' is required"),
        ({"dims": 0, "embed": embed_texts}, "positive integer"),
        ({"dims": 16}, "'embed' is required"),
        ({"dims": 16, "embed": embed_texts, "distance_type": "dot"}, "distance_type"),
        (
            {"dims": 16, "embed": embed_texts, "ann_index_config": {"kind": "lsh"}},
            "'kind'",
        ),
        (
            {"dims": 3000, "embed": embed_texts},
            "halfvec",
        ),
        (
            {
                "dims": 16,
                "embed": embed_texts,
                "ann_index_config": {"kind": "hnsw", "nlist": 4},
            },
            "does not apply",
        ),
    ],
)
def test_bad_index_configs_are_refused_at_construction(
    db_uri: str, config: Any, message: str
) -> None:
    with psycopg.connect(db_uri) as conn:
        with pytest.raises(ValueError, match=message):
            PostgresStore(conn, index=config)


def test_an_ivfflat_index_waits_for_data(vector_db_uri: str) -> None:
    """Built on an empty table, IVFFlat's lists would be arbitrary for good:
    setup() builds it once the table holds 10 vectors per list, and searches
    are exact until then."""
    texts = random_texts(300)
    config = index_config(ann_index_config={"kind": "ivfflat", "nlist": 20})

    def built() -> bool:
        with psycopg.connect(vector_db_uri) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_indexes "
                "WHERE indexname = 'store_vectors_embedding_idx'"
            ).fetchone()
        return row == (1,)

    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        fill(store, texts[:150])
        store.setup()
        assert not built()
        found = store.search(("docs",), query="india juliet", limit=5)
        assert scores_of(found) == pytest.approx(
            exact_scores(texts[:150], "india juliet")[:5]
        )
        fill(store, texts)
        store.setup()
        assert built()


def test_a_provider_string_without_langchain_says_what_to_install(db_uri: str) -> None:
    """Loading a model by name needs LangChain (the [embeddings] extra): the
    store says so when it is built, before any I/O."""
    try:
        import langchain  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("langchain is installed here: the error path cannot be seen")
    config = {"dims": 1536, "embed": "openai:text-embedding-3-small"}
    with psycopg.connect(db_uri) as conn:
        with pytest.raises(ValueError, match="langchain"):
            PostgresStore(conn, index=config)  # type: ignore[arg-type]


def test_field_paths(vector_db_uri: str) -> None:
    """Each kind of path in ``fields`` embeds what it names, and names its
    vectors as the existing package does (``path.i`` for several texts)."""
    value = {
        "meta": {"title": "apple pie"},
        "tags": ["kilo", "lima", "mike"],
        "parts": [{"text": "oscar"}, {"text": "papa"}],
    }
    config = index_config(
        fields=["meta.title", "tags[-1]", "tags[*]", "parts[*].text", "{meta,tags}"]
    )
    with PostgresStore.from_conn_string(vector_db_uri, index=config) as store:
        store.setup()
        store.put(("docs",), "a", value)
        fields = [row[2] for row in vector_rows(vector_db_uri)]
        assert sorted(fields) == sorted(
            [
                "meta.title",
                "tags[-1]",
                "tags[*].0",
                "tags[*].1",
                "tags[*].2",
                "parts[*].text.0",
                "parts[*].text.1",
                "{meta,tags}.0",
                "{meta,tags}.1",
            ]
        )
        for query in ("apple pie", "mike", "papa"):
            best = store.search(("docs",), query=query)[0]
            assert best.score == pytest.approx(1.0, abs=1e-4), query
