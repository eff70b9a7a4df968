"""Expiring items: TTLs to the second, refresh on read, omission, sweeping."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import psycopg
import pytest

from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from tests.stores import async_store, sync_store


def remaining(uri: str, key: str) -> timedelta | None:
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT expires_at - now() FROM store WHERE key = %s", (key,)
        ).fetchone()
    return None if row is None else row[0]


def expire(uri: str, key: str) -> None:
    """Make ``key`` expired a second ago, as time passing would."""
    with psycopg.connect(uri) as conn:
        conn.execute(
            "UPDATE store SET expires_at = now() - interval '1 second' WHERE key = %s",
            (key,),
        )


def test_fractional_ttls_are_honoured(store: PostgresStore, db_uri: str) -> None:
    store.put(("t",), "half", {"v": 1}, ttl=0.5)
    left = remaining(db_uri, "half")
    assert left is not None
    assert 25 < left.total_seconds() <= 30


def test_default_ttl_and_explicit_none(db_uri: str, store_kind: str) -> None:
    with sync_store(store_kind, db_uri, ttl={"default_ttl": 0.25}) as store:
        store.put(("t",), "default", {"v": 1})
        store.put(("t",), "forever", {"v": 1}, ttl=None)
    left = remaining(db_uri, "default")
    assert left is not None and 10 < left.total_seconds() <= 15
    assert remaining(db_uri, "forever") is None


def test_reads_refresh_the_ttl(db_uri: str) -> None:
    with PostgresStore.from_conn_string(db_uri, ttl={"default_ttl": 1}) as store:
        store.put(("t",), "k", {"v": 1})
        with psycopg.connect(db_uri) as conn:
            conn.execute("UPDATE store SET expires_at = now() + interval '5 seconds'")
        store.get(("t",), "k", refresh_ttl=False)
        left = remaining(db_uri, "k")
        assert left is not None and left.total_seconds() <= 5
        store.get(("t",), "k")
        left = remaining(db_uri, "k")
        assert left is not None and left.total_seconds() > 55
        with psycopg.connect(db_uri) as conn:
            conn.execute("UPDATE store SET expires_at = now() + interval '5 seconds'")
        store.search(("t",))
        left = remaining(db_uri, "k")
        assert left is not None and left.total_seconds() > 55


def test_refresh_on_read_false(db_uri: str) -> None:
    ttl = {"default_ttl": 1, "refresh_on_read": False}
    with PostgresStore.from_conn_string(db_uri, ttl=ttl) as store:  # type: ignore[arg-type]
        store.put(("t",), "k", {"v": 1})
        with psycopg.connect(db_uri) as conn:
            conn.execute("UPDATE store SET expires_at = now() + interval '5 seconds'")
        store.get(("t",), "k")
        store.search(("t",))
    left = remaining(db_uri, "k")
    assert left is not None and left.total_seconds() <= 5


def test_a_fractional_ttl_is_refreshed_to_its_length(db_uri: str) -> None:
    with PostgresStore.from_conn_string(db_uri) as store:
        store.put(("t",), "k", {"v": 1}, ttl=0.25)
        with psycopg.connect(db_uri) as conn:
            conn.execute("UPDATE store SET expires_at = now() + interval '1 second'")
        store.get(("t",), "k")
    left = remaining(db_uri, "k")
    assert left is not None and 10 < left.total_seconds() <= 15


@pytest.mark.parametrize("omit", [False, True])
def test_omit_expired(db_uri: str, omit: bool) -> None:
    ttl = {"default_ttl": 10, "omit_expired": omit}
    with PostgresStore.from_conn_string(db_uri, ttl=ttl) as store:  # type: ignore[arg-type]
        store.put(("t", "old"), "gone", {"v": 1})
        store.put(("t", "new"), "kept", {"v": 1})
        expire(db_uri, "gone")
        seen = store.get(("t", "old"), "gone")
        found = {item.key for item in store.search(("t",))}
        namespaces = store.list_namespaces()
    if omit:
        assert seen is None
        assert found == {"kept"}
        assert namespaces == [("t", "new")]
    else:
        assert seen is not None
        assert found == {"gone", "kept"}
        assert namespaces == [("t", "new"), ("t", "old")]


def test_sweep_deletes_only_expired_items(store: PostgresStore, db_uri: str) -> None:
    for i in range(2500):
        store.put(("t",), f"k{i}", {"i": i}, ttl=60)
    store.put(("t",), "forever", {"v": 1})
    with psycopg.connect(db_uri) as conn:
        conn.execute(
            "UPDATE store SET expires_at = now() - interval '1 second' "
            "WHERE key <> 'k0' AND expires_at IS NOT NULL"
        )
    # More than one sweep transaction's worth.
    assert store.sweep_ttl() == 2499
    assert store.sweep_ttl() == 0
    assert {item.key for item in store.search(("t",))} == {"k0", "forever"}


def test_the_sweeper_thread(db_uri: str) -> None:
    ttl = {"default_ttl": 10, "sweep_interval_minutes": 0.01}
    with PostgresStore.from_conn_string(db_uri, ttl=ttl) as store:  # type: ignore[arg-type]
        store.put(("t",), "k", {"v": 1})
        expire(db_uri, "k")
        future = store.start_ttl_sweeper()
        deadline = time.monotonic() + 10
        while store.get(("t",), "k", refresh_ttl=False) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.get(("t",), "k") is None
        assert store.stop_ttl_sweeper(timeout=5)
        assert future.done()


def test_no_sweeper_without_ttl_config(store: PostgresStore) -> None:
    assert store.start_ttl_sweeper().done()
    assert store.stop_ttl_sweeper()


async def test_the_async_sweeper_task(db_uri: str, astore_kind: str) -> None:
    ttl = {"default_ttl": 10, "sweep_interval_minutes": 0.01}
    async with async_store(astore_kind, db_uri, ttl=ttl) as store:
        await store.aput(("t",), "k", {"v": 1})
        expire(db_uri, "k")
        task = await store.start_ttl_sweeper()
        for _ in range(100):
            if await store.aget(("t",), "k", refresh_ttl=False) is None:
                break
            await asyncio.sleep(0.1)
        assert await store.aget(("t",), "k") is None
        assert await store.stop_ttl_sweeper(timeout=5)
        assert task.done()


async def test_async_sweep_ttl(db_uri: str) -> None:
    async with AsyncPostgresStore.from_conn_string(db_uri) as store:
        await store.aput(("t",), "a", {"v": 1}, ttl=1)
        await store.aput(("t",), "b", {"v": 1}, ttl=1)
        expire(db_uri, "a")
        assert await store.sweep_ttl() == 1
        assert [item.key for item in await store.asearch(("t",))] == ["b"]


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "5", True])
def test_bad_ttls_are_refused(store: PostgresStore, ttl: object) -> None:
    with pytest.raises(ValueError, match="positive number of minutes"):
        store.put(("t",), "k", {"v": 1}, ttl=ttl)  # type: ignore[arg-type]
    assert store.get(("t",), "k") is None


def test_bad_ttl_configs_are_refused(db_uri: str) -> None:
    with psycopg.connect(db_uri) as conn:
        with pytest.raises(ValueError, match="default_ttl"):
            PostgresStore(conn, ttl={"default_ttl": -5})
        with pytest.raises(ValueError, match="unknown ttl config keys"):
            PostgresStore(conn, ttl={"default_tll": 5})  # type: ignore[typeddict-unknown-key]
