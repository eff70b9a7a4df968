"""Behaviour of the savers that the conformance suite does not cover."""

from __future__ import annotations

import asyncio
import enum
import gc
import math
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._writes import MAX_STATEMENT_PIECES, MAX_VALUES_ROWS
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS, BasePostgresSaver
from tests.dbcheck import refuse_inserts
from tests.savers import async_saver, sync_saver


class Color(str, enum.Enum):
    RED = "red"


def _config(thread_id: Any, ns: str = "") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


def _checkpoint(values: dict[str, Any], version: str = "1") -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = {k: version for k in values}
    return checkpoint


def _put(saver: PostgresSaver, thread_id: Any, values: dict[str, Any]) -> Any:
    checkpoint = _checkpoint(values)
    return saver.put(
        _config(thread_id), checkpoint, {}, dict(checkpoint["channel_versions"])
    )


def _rows(uri: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(uri) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        }


# -- values round-trip unchanged ----------------------------------------------

AWKWARD_VALUES: dict[str, Any] = {
    "plain": "text",
    "unicode": "é中😀",
    "nul": "a\x00b",
    "backslash": 'c:\\path "quoted"',
    "nan": float("nan"),
    "inf": float("inf"),
    "ninf": float("-inf"),
    "negzero": -0.0,
    "exp": 1e20,
    "tiny": 5e-324,
    "half": 0.5,
    "bigint": 2**80,
    "negbigint": -(10**30),
    "int": -(2**63),
    "true": True,
    "none": None,
    "enum": Color.RED,
    "list": [1, "x", None],
    "bytes": b"\x00\xff",
    "ch\\with\\backslash": "v",
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, float):
        return (
            type(b) is float and a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return type(a) is type(b) and a == b


def test_channel_values_round_trip_exactly(saver: PostgresSaver) -> None:
    config = _put(saver, "values", AWKWARD_VALUES)
    loaded = saver.get_tuple(config)
    assert loaded is not None
    values = loaded.checkpoint["channel_values"]
    assert set(values) == set(AWKWARD_VALUES)
    for key, value in AWKWARD_VALUES.items():
        assert _same(value, values[key]), (key, value, values[key])


def test_values_json_cannot_hold_stay_out_of_the_checkpoint_json(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        _put(saver, "json", AWKWARD_VALUES)
    with psycopg.connect(db_uri) as conn:
        (inline,) = conn.execute(
            "SELECT checkpoint -> 'channel_values' FROM checkpoints"
        ).fetchone()
        blobs = {r[0] for r in conn.execute("SELECT channel FROM checkpoint_blobs")}
    assert set(inline) == {
        "plain",
        "unicode",
        "backslash",
        "half",
        "int",
        "bigint",
        "negbigint",
        "true",
        "none",
        "ch\\with\\backslash",
    }
    assert blobs == set(AWKWARD_VALUES) - set(inline)


def test_delta_snapshot_is_a_blob_with_a_marker(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        config = _put(saver, "delta", {"msgs": _DeltaSnapshot([1, 2])})
        loaded = saver.get_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"]["msgs"] == _DeltaSnapshot([1, 2])
    with psycopg.connect(db_uri) as conn:
        (inline,) = conn.execute(
            "SELECT checkpoint -> 'channel_values' FROM checkpoints"
        ).fetchone()
    assert inline == {"msgs": True}


def test_writes_round_trip_with_awkward_names(saver: PostgresSaver) -> None:
    config = _put(saver, "writes", {})
    saver.put_writes(
        config, [("ch\\1", "a\x00b"), ('ch"2', float("nan"))], "task\\1", "path\\x"
    )
    loaded = saver.get_tuple(config)
    assert loaded is not None
    (t1, c1, v1), (t2, c2, v2) = loaded.pending_writes or []
    assert (t1, c1, v1) == ("task\\1", "ch\\1", "a\x00b")
    assert (t2, c2) == ("task\\1", 'ch"2') and math.isnan(v2)


@pytest.mark.parametrize("thread_id", [42, uuid.UUID(int=7)])
def test_non_string_thread_ids_are_found_on_every_path(
    saver: PostgresSaver, thread_id: Any
) -> None:
    config = _put(saver, thread_id, {"k": [1]})
    assert config["configurable"]["thread_id"] == str(thread_id)
    assert saver.get_tuple(_config(thread_id)) is not None
    assert len(list(saver.list(_config(thread_id)))) == 1
    saver.delete_thread(thread_id)
    assert saver.get_tuple(_config(thread_id)) is None


def test_missing_thread_id_names_the_key(saver: PostgresSaver) -> None:
    with pytest.raises(ValueError, match="thread_id"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(ValueError, match="thread_id"):
        saver.put({"configurable": {}}, _checkpoint({}), {}, {})


def test_put_writes_without_checkpoint_id_names_the_key(saver: PostgresSaver) -> None:
    with pytest.raises(ValueError, match="checkpoint_id"):
        saver.put_writes(_config("t"), [("a", 1)], "task")


def test_special_writes_overwrite_and_ordinary_writes_keep_the_first(
    saver: PostgresSaver,
) -> None:
    config = _put(saver, "w", {})
    saver.put_writes(config, [("a", 1), ("__error__", "first")], "task")
    saver.put_writes(config, [("a", 2), ("__error__", "second")], "task")
    loaded = saver.get_tuple(config)
    assert loaded is not None
    assert loaded.pending_writes == [
        ("task", "__error__", "second"),
        ("task", "a", 1),
    ]


# More rows than one write statement carries: several statements, one call.
MANY = 2 * MAX_VALUES_ROWS + 3


def test_put_and_put_writes_of_many_rows_store_every_row(saver: PostgresSaver) -> None:
    values = {f"ch{i}": bytes([i]) * (i + 1) for i in range(MANY)}  # all blobs
    config = _put(saver, "many", values)
    writes = [(f"w{i}", [i]) for i in range(MANY)]
    writes += [("__error__", "first"), ("__error__", "last")]
    saver.put_writes(config, writes, "task")
    loaded = saver.get_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == values
    expected = [("task", "__error__", "last")]
    expected += sorted(
        (("task", channel, value) for channel, value in writes[:MANY]),
        key=lambda w: int(w[1][1:]),
    )
    assert loaded.pending_writes == expected


async def test_async_put_and_put_writes_of_many_rows_store_every_row(
    asaver: AsyncPostgresSaver,
) -> None:
    values = {f"ch{i}": bytes([i]) for i in range(MANY)}
    checkpoint = _checkpoint(values)
    config = await asaver.aput(
        _config("amany"), checkpoint, {}, dict(checkpoint["channel_versions"])
    )
    await asaver.aput_writes(config, [(f"w{i}", i) for i in range(MANY)], "task")
    loaded = await asaver.aget_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == values
    assert [w[2] for w in loaded.pending_writes or []] == list(range(MANY))


def test_refused_put_of_many_blobs_stores_none_of_them(
    saver: PostgresSaver, db_uri: str
) -> None:
    refuse_inserts(db_uri, "checkpoints", "refused by test trigger")
    values = {f"ch{i}": bytes([i]) for i in range(MANY)}
    with pytest.raises(psycopg.errors.RaiseException, match="refused by test"):
        _put(saver, "refused", values)
    assert _rows(db_uri) == {
        "checkpoints": [],
        "checkpoint_blobs": [],
        "checkpoint_writes": [],
    }


def test_put_writes_beyond_one_statement_is_one_transaction(
    saver: PostgresSaver, db_uri: str
) -> None:
    # More rows than one statement carries: several, in one transaction.
    count = MAX_VALUES_ROWS * MAX_STATEMENT_PIECES + 5
    writes = [(f"w{i}", i) for i in range(count)]
    config = _put(saver, "huge", {})
    saver.put_writes(config, writes, "task")
    loaded = saver.get_tuple(config)
    assert loaded is not None
    assert [w[2] for w in loaded.pending_writes or []] == list(range(count))
    refuse_inserts(
        db_uri,
        "checkpoint_writes",
        "refused by test trigger",
        when="NEW.channel = 'refuse'",
    )
    with pytest.raises(psycopg.errors.RaiseException, match="refused by test"):
        saver.put_writes(config, [*writes, ("refuse", 0)], "other task")
    with psycopg.connect(db_uri) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM checkpoint_writes WHERE task_id = 'other task'"
        ).fetchone()
    assert stored == (0,)


class XorCipher:
    """A toy cipher: enough to see what the saver stores encrypted."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(b ^ 0x5A for b in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(b ^ 0x5A for b in ciphertext)


def test_encrypted_serializer_keeps_no_value_in_plaintext(db_uri: str) -> None:
    serde = EncryptedSerializer(XorCipher())
    secret = "s3cret-value"
    with PostgresSaver.from_conn_string(db_uri, serde=serde) as saver:
        config = _put(saver, "enc", {"text": secret, "n": 7, "items": [secret]})
        saver.put_writes(config, [("text", secret)], "task")
        loaded = saver.get_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == {
        "text": secret,
        "n": 7,
        "items": [secret],
    }
    assert loaded.pending_writes == [("task", "text", secret)]
    with psycopg.connect(db_uri) as conn:
        dump = conn.execute(
            "SELECT (SELECT string_agg(checkpoint::text, '') FROM checkpoints)"
            " || (SELECT string_agg(encode(blob, 'escape'), '') FROM checkpoint_blobs)"
            " || (SELECT string_agg(encode(blob, 'escape'), '') FROM checkpoint_writes)"
        ).fetchone()[0]
        types = {r[0] for r in conn.execute("SELECT type FROM checkpoint_blobs")}
    assert secret not in dump
    assert types == {"msgpack+xor"}


# -- versions -------------------------------------------------------------------


def test_next_versions_compare_as_strings_and_forks_differ() -> None:
    saver = BasePostgresSaver()
    version = None
    seen = []
    for _ in range(12):
        version = saver.get_next_version(version)
        seen.append(version)
    assert seen == sorted(seen)
    assert saver.get_next_version(seen[3]) != saver.get_next_version(seen[3])
    assert saver.get_next_version(9).startswith(f"{10:032}.")


# -- setup ------------------------------------------------------------------------


def test_setup_creates_every_migration_once_and_is_repeatable(
    empty_db_uri: str,
) -> None:
    with PostgresSaver.from_conn_string(empty_db_uri) as saver:
        saver.setup()
        saver.setup()
    with psycopg.connect(empty_db_uri) as conn:
        versions = [
            r[0] for r in conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        ]
    assert versions == list(range(len(MIGRATIONS)))


def test_thread_lookups_use_the_primary_keys(db_uri: str) -> None:
    with psycopg.connect(db_uri, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        assert "checkpoints_thread_id_idx" not in names
        conn.execute("SET enable_seqscan = off")
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN DELETE FROM {table} WHERE thread_id = ANY(%s)", (["t"],)
                )
            )
            assert f"{table}_pkey" in plan, plan


def test_saver_used_after_its_block_says_so(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        pass
    with pytest.raises(RuntimeError, match="from_conn_string"):
        saver.get_tuple(_config("t"))


def test_pool_with_psycopg_defaults_commits_writes(db_uri: str) -> None:
    with ConnectionPool(db_uri, min_size=1, max_size=2) as pool:
        config = _put(PostgresSaver(pool), "defaults", {"k": "v"})
    with PostgresSaver.from_conn_string(db_uri) as saver:
        loaded = saver.get_tuple(config)
    assert loaded is not None and loaded.checkpoint["channel_values"] == {"k": "v"}


def test_pipe_with_a_pool_is_refused(db_uri: str) -> None:
    with ConnectionPool(db_uri, min_size=1, max_size=1) as pool:
        with psycopg.connect(db_uri) as conn, conn.pipeline() as pipe:
            with pytest.raises(ValueError, match="pipeline"):
                PostgresSaver(pool, pipe)  # type: ignore[arg-type]


# -- the async saver's sync methods -------------------------------------------


async def test_async_saver_sync_methods_work_from_another_thread(db_uri: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_uri) as saver:

        def from_thread() -> tuple[Any, int]:
            config = saver.put(_config("t"), _checkpoint({"k": [1]}), {}, {"k": "1"})
            saver.put_writes(config, [("k", 2)], "task")
            return saver.get_tuple(config), len(list(saver.list(None)))

        loaded, count = await asyncio.to_thread(from_thread)
    assert loaded.checkpoint["channel_values"] == {"k": [1]}
    assert loaded.pending_writes == [("task", "k", 2)]
    assert count == 1


async def test_async_saver_sync_methods_on_its_loop_raise(db_uri: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_uri) as saver:
        with pytest.raises(asyncio.InvalidStateError, match="aget_tuple"):
            saver.get_tuple(_config("t"))
        with pytest.raises(asyncio.InvalidStateError):
            list(saver.list(None))
        # Still usable afterwards: nothing was left half-done.
        assert await saver.aget_tuple(_config("t")) is None


# -- pools ------------------------------------------------------------------------


def _wait_for_lock_waiter(db_uri: str) -> None:
    """Block until some session of the test database waits on a lock."""
    with psycopg.connect(db_uri, autocommit=True) as conn:
        for _ in range(500):
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("no call ever waited on the lock")


def test_pool_config_opens_an_owned_pool_whose_calls_run_in_parallel(
    db_uri: str,
) -> None:
    pool_config = {"min_size": 1, "max_size": 3, "max_idle": 60.0, "check": True}
    with PostgresSaver.from_conn_string(db_uri, pool_config=pool_config) as saver:
        assert isinstance(saver.conn, ConnectionPool)
        assert saver.conn.max_size == 3
        config = _put(saver, "writes", {})
        with psycopg.connect(db_uri) as blocker:
            blocker.execute("LOCK TABLE checkpoint_writes IN ACCESS EXCLUSIVE MODE")
            stuck = threading.Thread(
                target=saver.put_writes, args=(config, [("a", 1)], "task")
            )
            stuck.start()
            _wait_for_lock_waiter(db_uri)
            # Another call goes ahead on its own connection meanwhile.
            _put(saver, "other", {"k": "v"})
            assert stuck.is_alive()
            blocker.rollback()
        stuck.join(timeout=10)
        loaded = saver.get_tuple(config)
        assert loaded is not None and loaded.pending_writes == [("task", "a", 1)]
        pool = saver.conn
    assert pool.closed


async def test_async_pool_config_opens_an_owned_pool_whose_calls_run_in_parallel(
    db_uri: str,
) -> None:
    async with AsyncPostgresSaver.from_conn_string(
        db_uri, pool_config={"max_size": 3}
    ) as saver:
        assert isinstance(saver.conn, AsyncConnectionPool)
        config = await saver.aput(_config("w"), _checkpoint({}), {}, {})
        with psycopg.connect(db_uri) as blocker:
            blocker.execute("LOCK TABLE checkpoint_writes IN ACCESS EXCLUSIVE MODE")
            stuck = asyncio.create_task(saver.aput_writes(config, [("a", 1)], "task"))
            await asyncio.to_thread(_wait_for_lock_waiter, db_uri)
            await saver.aput(_config("other"), _checkpoint({"k": "v"}), {}, {"k": "1"})
            assert not stuck.done()
            blocker.rollback()
        await asyncio.wait_for(stuck, 10)
        loaded = await saver.aget_tuple(config)
        assert loaded is not None and loaded.pending_writes == [("task", "a", 1)]
        pool = saver.conn
    assert pool.closed


def test_pool_config_errors_name_the_problem(db_uri: str) -> None:
    with pytest.raises(ValueError, match="max_sise"):
        with PostgresSaver.from_conn_string(db_uri, pool_config={"max_sise": 3}):
            pass
    with pytest.raises(ValueError, match="pipeline"):
        with PostgresSaver.from_conn_string(
            db_uri, pipeline=True, pool_config={"max_size": 3}
        ):
            pass


# -- cursors reused across calls ----------------------------------------------

BIG_VALUE_BYTES = 64 << 20


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


#: RSS growth allowed after reading the big value and dropping it: libpq keeps
#: its input buffer (as large as the largest message read) on both sides of
#: the comparison; a result kept with the cursor would add a second copy.
HELD_LIMIT_MB = 1.5 * BIG_VALUE_BYTES / 2**20


def _big_checkpoint() -> Any:
    return _checkpoint({"big": b"x" * BIG_VALUE_BYTES})


@contextmanager
def _rss_growth_mb() -> Iterator[list[float]]:
    """Measure how much RSS the block leaves behind (after a collection)."""
    growth: list[float] = []
    gc.collect()
    before = _rss_mb()
    yield growth
    gc.collect()
    growth.append(_rss_mb() - before)


@pytest.mark.parametrize("kind", ["conn", "pool"])
def test_a_read_large_checkpoint_is_not_held_after_the_call(
    db_uri: str, kind: str
) -> None:
    # The saver keeps a cursor per connection between calls; it must not keep
    # the last result with it.
    with sync_saver(kind, db_uri) as saver:
        config = saver.put(_config("big"), _big_checkpoint(), {}, {"big": "1"})
        with _rss_growth_mb() as growth:
            loaded = saver.get_tuple(config)
            assert loaded is not None
            assert len(loaded.checkpoint["channel_values"]["big"]) == BIG_VALUE_BYTES
            del loaded
    assert growth[0] < HELD_LIMIT_MB, f"{growth[0]:.0f} MB still held"


@pytest.mark.parametrize("kind", ["aconn", "apool"])
async def test_async_read_large_checkpoint_is_not_held_after_the_call(
    db_uri: str, kind: str
) -> None:
    async with async_saver(kind, db_uri) as saver:
        config = await saver.aput(_config("big"), _big_checkpoint(), {}, {"big": "1"})
        with _rss_growth_mb() as growth:
            loaded = await saver.aget_tuple(config)
            assert loaded is not None
            assert len(loaded.checkpoint["channel_values"]["big"]) == BIG_VALUE_BYTES
            del loaded
    assert growth[0] < HELD_LIMIT_MB, f"{growth[0]:.0f} MB still held"


def test_connections_a_pool_retires_are_not_kept_alive(db_uri: str) -> None:
    retired: list[weakref.ref[psycopg.Connection[Any]]] = []
    with ConnectionPool(db_uri, min_size=1, max_size=1) as pool:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        config = _put(saver, "t", {"k": "v"})
        for _ in range(20):
            assert saver.get_tuple(config) is not None
            with pool.connection() as conn:  # the one the saver just used
                retired.append(weakref.ref(conn))
            del conn
            pool.drain()  # closes it; the next call gets a new connection
        assert saver.get_tuple(config) is not None
        gc.collect()
        assert [ref() for ref in retired] == [None] * len(retired)


async def test_async_connections_a_pool_retires_are_not_kept_alive(
    db_uri: str,
) -> None:
    retired: list[weakref.ref[psycopg.AsyncConnection[Any]]] = []
    async with AsyncConnectionPool(db_uri, min_size=1, max_size=1) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        config = await saver.aput(_config("t"), _checkpoint({"k": "v"}), {}, {"k": "1"})
        for _ in range(20):
            assert await saver.aget_tuple(config) is not None
            async with pool.connection() as conn:
                retired.append(weakref.ref(conn))
            del conn
            await pool.drain()
        assert await saver.aget_tuple(config) is not None
        gc.collect()
        assert [ref() for ref in retired] == [None] * len(retired)
