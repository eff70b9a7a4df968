"""The store's API, sync and async, on every way of connecting.

Each test runs once per connection kind (one connection, a pool with our
settings and with psycopg's defaults, a pipeline) against a database of its
own with the store's tables set up.
"""

from __future__ import annotations

import psycopg
import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

from langgraph.store.postgres import AsyncPostgresStore, PoolConfig, PostgresStore

ITEMS = {
    (("users", "alice", "memories"), "m1"): {"text": "likes tea", "n": 10},
    (("users", "alice", "memories"), "m.2"): {"text": "hates rain", "n": 4.99},
    (("users", "alice", "prefs"), "theme"): {"dark": True, "tags": ["a", "b"]},
    (("users", "bob"), "m1"): {"text": "likes coffee", "n": 3, "meta": {"lang": "en"}},
    (("users_x", "carol"), "m1"): {"text": "unicode ✓ 雨", "n": None},
    (("docs",), "readme"): {"big": 2**70, "nested": {"a": {"b": [1, 2.5, "x"]}}},
}


def fill(store: PostgresStore) -> None:
    for (namespace, key), value in ITEMS.items():
        store.put(namespace, key, value)


async def afill(store: AsyncPostgresStore) -> None:
    for (namespace, key), value in ITEMS.items():
        await store.aput(namespace, key, value)


def keys(items: list) -> list[tuple[tuple[str, ...], str]]:
    return sorted((tuple(item.namespace), item.key) for item in items)


# -- sync ----------------------------------------------------------------------


def test_put_get_roundtrip(store: PostgresStore) -> None:
    fill(store)
    for (namespace, key), value in ITEMS.items():
        item = store.get(namespace, key)
        assert item is not None
        assert (tuple(item.namespace), item.key, item.value) == (namespace, key, value)
        assert item.created_at <= item.updated_at
    assert store.get(("users", "alice", "memories"), "missing") is None
    assert store.get(("users", "alice"), "m1") is None


def test_an_update_keeps_created_at(store: PostgresStore) -> None:
    store.put(("a",), "k", {"v": 1})
    first = store.get(("a",), "k")
    store.put(("a",), "k", {"v": 2})
    second = store.get(("a",), "k")
    assert first is not None and second is not None
    assert second.value == {"v": 2}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at


def test_delete(store: PostgresStore) -> None:
    fill(store)
    store.delete(("users", "bob"), "m1")
    assert store.get(("users", "bob"), "m1") is None
    store.delete(("users", "bob"), "m1")  # deleting again is fine
    assert store.get(("users", "alice", "memories"), "m1") is not None


def test_search_by_prefix_is_segment_wise(store: PostgresStore) -> None:
    fill(store)
    assert keys(store.search(("users",))) == sorted(
        k for k in ITEMS if k[0][0] == "users"
    )
    assert keys(store.search(("users", "alice"))) == sorted(
        k for k in ITEMS if k[0][:2] == ("users", "alice")
    )
    assert keys(store.search(("users_x",))) == [(("users_x", "carol"), "m1")]
    assert len(store.search(())) == len(ITEMS)


def test_search_newest_first_and_paged(store: PostgresStore) -> None:
    for i in range(7):
        store.put(("p",), f"k{i}", {"i": i})
    found = store.search(("p",), limit=3)
    assert [item.key for item in found] == ["k6", "k5", "k4"]
    assert [item.key for item in store.search(("p",), limit=3, offset=3)] == [
        "k3",
        "k2",
        "k1",
    ]
    assert all(item.score is None for item in found)


def test_numbers_compare_as_numbers(store: PostgresStore) -> None:
    fill(store)
    hits = store.search(("users",), filter={"n": {"$gt": 4}})
    assert keys(hits) == [
        (("users", "alice", "memories"), "m.2"),
        (("users", "alice", "memories"), "m1"),
    ]
    assert keys(store.search(("users",), filter={"n": {"$lte": 4.99}})) == [
        (("users", "alice", "memories"), "m.2"),
        (("users", "bob"), "m1"),
    ]
    both = store.search((), filter={"n": {"$gte": 3, "$lt": 10}})
    assert len(both) == 2


def test_filters_behave_as_in_memory(store: PostgresStore) -> None:
    fill(store)
    # $ne keeps items that lack the key
    ne = store.search((), filter={"text": {"$ne": "likes tea"}})
    assert len(ne) == len(ITEMS) - 1
    # nested dicts match key by key
    assert keys(store.search((), filter={"meta": {"lang": "en"}})) == [
        (("users", "bob"), "m1")
    ]
    assert keys(store.search((), filter={"nested": {"a": {"b": [1, 2.5, "x"]}}})) == [
        (("docs",), "readme")
    ]
    # None matches null and missing
    assert len(store.search((), filter={"n": None})) == 3
    assert keys(store.search((), filter={"tags": ["a", "b"]})) == [
        (("users", "alice", "prefs"), "theme")
    ]
    assert store.search((), filter={"n": {"$eq": 10}})[0].key == "m1"


def test_list_namespaces(store: PostgresStore) -> None:
    fill(store)
    assert store.list_namespaces() == sorted({ns for ns, _ in ITEMS})
    assert store.list_namespaces(prefix=("users",)) == [
        ("users", "alice", "memories"),
        ("users", "alice", "prefs"),
        ("users", "bob"),
    ]
    assert store.list_namespaces(suffix=("memories",)) == [
        ("users", "alice", "memories")
    ]
    assert store.list_namespaces(prefix=("users", "*", "prefs")) == [
        ("users", "alice", "prefs")
    ]
    assert store.list_namespaces(max_depth=1) == [("docs",), ("users",), ("users_x",)]
    assert store.list_namespaces(max_depth=2, prefix=("users",)) == [
        ("users", "alice"),
        ("users", "bob"),
    ]
    assert store.list_namespaces(limit=2, offset=1) == [
        ("users", "alice", "memories"),
        ("users", "alice", "prefs"),
    ]


def test_batch_reads_see_the_store_before_its_writes(store: PostgresStore) -> None:
    store.put(("b",), "k", {"v": 1})
    results = store.batch(
        [
            PutOp(("b",), "k", {"v": 2}),
            GetOp(("b",), "k"),
            PutOp(("b",), "new", {"v": 3}),
            SearchOp(("b",)),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
            PutOp(("b",), "new", {"v": 4}),
        ]
    )
    assert results[0] is None
    assert results[1].value == {"v": 1}  # type: ignore[union-attr]
    assert [item.key for item in results[3]] == ["k"]  # type: ignore[union-attr]
    assert results[4] == [("b",)]
    assert store.get(("b",), "k").value == {"v": 2}  # type: ignore[union-attr]
    assert store.get(("b",), "new").value == {"v": 4}  # type: ignore[union-attr]


def test_namespaces_are_checked(store: PostgresStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph",), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {})
    with pytest.raises(InvalidNamespaceError):
        store.search(("a", ""))


def test_from_conn_string_with_pool_config(db_uri: str) -> None:
    config: PoolConfig = {
        "min_size": 1,
        "max_size": 2,
        "kwargs": {"application_name": "memories"},
    }
    with PostgresStore.from_conn_string(db_uri, pool_config=config) as store:
        store.put(("a",), "k", {"v": 1})
        with store.conn.connection() as conn:  # type: ignore[union-attr]
            name = conn.execute("SHOW application_name").fetchone()
    assert name is not None and list(name.values()) == ["memories"]


def test_the_existing_package_reads_our_rows(store: PostgresStore, db_uri: str) -> None:
    """What we write keeps the meaning the existing layout gives it: the
    namespace joined by dots, the value as JSONB, the TTL in whole minutes."""
    store.put(("users", "alice"), "k.1", {"v": [1, "x"]}, ttl=2.5)
    with psycopg.connect(db_uri) as conn:
        row = conn.execute(
            "SELECT prefix, key, value, ttl_minutes, expires_at - updated_at FROM store"
        ).fetchone()
    assert row is not None
    prefix, key, value, ttl_minutes, remaining = row
    assert (prefix, key, value, ttl_minutes) == (
        "users.alice",
        "k.1",
        {"v": [1, "x"]},
        3,
    )
    assert remaining.total_seconds() == pytest.approx(150, abs=1)


# -- async -----------------------------------------------------------------------


async def test_async_api(astore: AsyncPostgresStore) -> None:
    await afill(astore)
    item = await astore.aget(("users", "bob"), "m1")
    assert item is not None and item.value == ITEMS[(("users", "bob"), "m1")]
    hits = await astore.asearch(("users",), filter={"n": {"$gt": 4}})
    assert len(hits) == 2
    assert await astore.alist_namespaces(max_depth=1) == [
        ("docs",),
        ("users",),
        ("users_x",),
    ]
    await astore.adelete(("users", "bob"), "m1")
    assert await astore.aget(("users", "bob"), "m1") is None
    results = await astore.abatch(
        [GetOp(("docs",), "readme"), PutOp(("docs",), "readme", None)]
    )
    assert results[0].value["big"] == 2**70  # type: ignore[union-attr]
    assert await astore.aget(("docs",), "readme") is None


def test_a_store_not_set_up_says_so(empty_db_uri: str) -> None:
    with PostgresStore.from_conn_string(empty_db_uri) as store:
        with pytest.raises(
            psycopg.errors.UndefinedTable, match=r"call store\.setup\(\)"
        ):
            store.put(("a",), "k", {"v": 1})
        store.setup()
        store.put(("a",), "k", {"v": 1})
        assert store.get(("a",), "k") is not None
