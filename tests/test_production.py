"""Production failure modes: named schemas, dropped connections, silent servers."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import (
    MIGRATIONS,
    CallTimeoutError,
    ConnectionLostError,
)
from tests.tcp_proxy import SilentableProxy

RECOMMENDED = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def _config(thread_id: str, ns: str = "") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


def _checkpoint(values: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = {k: "1" for k in values}
    return checkpoint


def _put(saver: PostgresSaver, thread_id: str, values: dict[str, Any], **meta: Any):
    checkpoint = _checkpoint(values)
    return saver.put(
        _config(thread_id), checkpoint, meta, dict(checkpoint["channel_versions"])
    )


async def _aput(
    saver: AsyncPostgresSaver, thread_id: str, values: dict[str, Any], **meta: Any
):
    checkpoint = _checkpoint(values)
    return await saver.aput(
        _config(thread_id), checkpoint, meta, dict(checkpoint["channel_versions"])
    )


def _dbname(uri: str) -> str:
    return str(conninfo_to_dict(uri)["dbname"])


# -- named schemas -------------------------------------------------------------


def _tables_in(uri: str, schema: str) -> list[str]:
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


TABLES = [
    "checkpoint_blobs",
    "checkpoint_migrations",
    "checkpoint_writes",
    "checkpoints",
]


def test_setup_creates_everything_in_the_named_schema(empty_db_uri: str) -> None:
    with PostgresSaver.from_conn_string(empty_db_uri, schema="tenant_a") as saver:
        saver.setup()
        saver.setup()
        _put(saver, "t", {"a": [1, 2]}, run_id="r")
        assert saver.get_tuple(_config("t")).checkpoint["channel_values"] == {
            "a": [1, 2]
        }
    assert _tables_in(empty_db_uri, "tenant_a") == TABLES
    assert _tables_in(empty_db_uri, "public") == []
    with psycopg.connect(empty_db_uri) as conn:
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'tenant_a'"
        ).fetchall()
    assert ("checkpoints_run_id_idx",) in indexes
    assert ("checkpoints_metadata_idx",) in indexes


def test_schemas_over_one_pool_are_isolated(db_uri: str) -> None:
    with ConnectionPool(db_uri, min_size=1, max_size=4, kwargs=RECOMMENDED) as pool:
        a = PostgresSaver(pool, schema="tenant_a")
        b = PostgresSaver(pool, schema='Tenant "B"; DROP TABLE checkpoints; --')
        default = PostgresSaver(pool)
        for saver in (a, b):
            saver.setup()
        _put(a, "same-id", {"who": "a"}, run_id="run-1")
        _put(b, "same-id", {"who": "b"}, run_id="run-1")
        _put(default, "same-id", {"who": "public"}, run_id="run-1")

        def who(saver: PostgresSaver) -> list[str]:
            return [t.checkpoint["channel_values"]["who"] for t in saver.list(None)]

        assert (who(a), who(b), who(default)) == (["a"], ["b"], ["public"])
        b.delete_thread("same-id")
        assert (who(a), who(b), who(default)) == (["a"], [], ["public"])
        a.delete_for_runs(["run-1"])
        assert (who(a), who(b), who(default)) == ([], [], ["public"])


def test_named_schema_does_not_depend_on_search_path(empty_db_uri: str) -> None:
    # A search_path naming another schema first must not redirect anything.
    with psycopg.connect(empty_db_uri, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA decoy")
    kwargs = {**RECOMMENDED, "options": "-c search_path=decoy"}
    with ConnectionPool(empty_db_uri, min_size=1, max_size=2, kwargs=kwargs) as pool:
        saver = PostgresSaver(pool, schema="tenant_a")
        saver.setup()
        _put(saver, "t", {"x": 1})
        assert saver.get_tuple(_config("t")) is not None
    assert _tables_in(empty_db_uri, "decoy") == []
    assert _tables_in(empty_db_uri, "tenant_a") == TABLES


async def test_async_saver_uses_its_named_schema(empty_db_uri: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(
        empty_db_uri, schema="tenant_b", pool_config={"max_size": 2}
    ) as saver:
        await saver.setup()
        await _aput(saver, "t", {"x": {"nested": True}})
        found = await saver.aget_tuple(_config("t"))
        assert found.checkpoint["channel_values"] == {"x": {"nested": True}}
    assert _tables_in(empty_db_uri, "tenant_b") == TABLES
    assert _tables_in(empty_db_uri, "public") == []


@pytest.mark.parametrize(
    ("schema", "error", "words"),
    [
        ("", ValueError, "non-empty"),
        ("a\x00b", ValueError, "NUL"),
        ("x" * 64, ValueError, "63 bytes"),
        (7, TypeError, "str"),
    ],
)
def test_bad_schema_names_are_refused(
    db_uri: str, schema: Any, error: type[Exception], words: str
) -> None:
    with psycopg.connect(db_uri, **RECOMMENDED) as conn:
        with pytest.raises(error, match=words):
            PostgresSaver(conn, schema=schema)


def test_setup_uses_an_existing_schema_without_create_privilege(
    empty_db_uri: str,
) -> None:
    # Deployments often pre-create the schema and run with a role that may
    # not create schemas; setup() must not need that privilege then.
    with psycopg.connect(empty_db_uri, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA app")
        admin.execute("DROP ROLE IF EXISTS lgcp_app_user")
        admin.execute("CREATE ROLE lgcp_app_user LOGIN")
        admin.execute("GRANT USAGE, CREATE ON SCHEMA app TO lgcp_app_user")
        admin.execute(
            "REVOKE CREATE ON DATABASE "
            + psycopg.sql.Identifier(_dbname(empty_db_uri)).as_string(admin)
            + " FROM PUBLIC"
        )
    user_uri = psycopg.conninfo.make_conninfo(empty_db_uri, user="lgcp_app_user")
    try:
        with PostgresSaver.from_conn_string(user_uri, schema="app") as saver:
            saver.setup()
            _put(saver, "t", {"x": 1})
        assert _tables_in(empty_db_uri, "app") == TABLES
    finally:
        with psycopg.connect(empty_db_uri, autocommit=True) as admin:
            admin.execute("DROP SCHEMA app CASCADE")
            admin.execute("DROP OWNED BY lgcp_app_user")
            admin.execute("DROP ROLE lgcp_app_user")


# -- dropped connections -------------------------------------------------------


def _terminate_backends(server_uri: str, db_uri: str) -> int:
    """Terminate every backend connected to the database of ``db_uri``."""
    with psycopg.connect(server_uri, autocommit=True) as admin:
        pids = [
            r[0]
            for r in admin.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (_dbname(db_uri),),
            ).fetchall()
        ]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    return len(pids)


_DELTA_CHANNELS = ["a"]


def _sync_operations(saver: PostgresSaver) -> dict[str, Callable[[], Any]]:
    """Every kind of saver call, each checking its own effect."""
    source = _put(saver, "source", {"a": [1]}, run_id="run-s")

    def put() -> None:
        _put(saver, "fresh", {"a": "x"})
        assert saver.get_tuple(_config("fresh")) is not None

    def put_writes() -> None:
        saver.put_writes(source, [("a", 5)], "task-1")
        assert saver.get_tuple(source).pending_writes == [("task-1", "a", 5)]

    def copy_thread() -> None:
        saver.copy_thread("source", "copy")
        assert saver.get_tuple(_config("copy")) is not None

    def delete_thread() -> None:
        _put(saver, "doomed", {"a": 1})
        saver.delete_thread("doomed")
        assert saver.get_tuple(_config("doomed")) is None

    def delete_for_runs() -> None:
        _put(saver, "run-thread", {"a": 1}, run_id="run-x")
        saver.delete_for_runs(["run-x"])
        assert saver.get_tuple(_config("run-thread")) is None

    def prune() -> None:
        _put(saver, "pruned", {"a": 1})
        saver.prune(["pruned"], strategy="delete")
        assert saver.get_tuple(_config("pruned")) is None

    return {
        "setup": saver.setup,
        "get_tuple": lambda: saver.get_tuple(source),
        "list": lambda: list(saver.list(None, limit=3)),
        "put": put,
        "put_writes": put_writes,
        "copy_thread": copy_thread,
        "delete_thread": delete_thread,
        "delete_for_runs": delete_for_runs,
        "prune": prune,
        "delta_history": lambda: saver.get_delta_channel_history(
            config=source, channels=_DELTA_CHANNELS
        ),
    }


OPERATIONS = [
    "setup",
    "get_tuple",
    "list",
    "put",
    "put_writes",
    "copy_thread",
    "delete_thread",
    "delete_for_runs",
    "prune",
    "delta_history",
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_pooled_saver_survives_terminated_backends(
    server_uri: str, db_uri: str, operation: str
) -> None:
    with ConnectionPool(db_uri, min_size=3, max_size=3, kwargs=RECOMMENDED) as pool:
        pool.wait()
        saver = PostgresSaver(pool)
        call = _sync_operations(saver)[operation]
        assert _terminate_backends(server_uri, db_uri) >= 3
        call()  # succeeds on a fresh connection
        assert _terminate_backends(server_uri, db_uri) >= 1
        call()


async def _async_operations(saver: AsyncPostgresSaver) -> dict[str, Callable[[], Any]]:
    checkpoint = _checkpoint({"a": [1]})
    source = await saver.aput(
        _config("source"), checkpoint, {"run_id": "r"}, {"a": "1"}
    )

    async def put() -> None:
        await _aput(saver, "fresh", {"a": "x"})

    async def put_writes() -> None:
        await saver.aput_writes(source, [("a", 5)], "task-1")
        assert (await saver.aget_tuple(source)).pending_writes == [("task-1", "a", 5)]

    async def listing() -> None:
        assert [t async for t in saver.alist(None, limit=3)]

    return {
        "setup": saver.setup,
        "get_tuple": lambda: saver.aget_tuple(source),
        "list": listing,
        "put": put,
        "put_writes": put_writes,
        "copy_thread": lambda: saver.acopy_thread("source", "copy"),
        "delete_thread": lambda: saver.adelete_thread("source-x"),
        "delete_for_runs": lambda: saver.adelete_for_runs(["nope"]),
        "prune": lambda: saver.aprune(["source"]),
        "delta_history": lambda: saver.aget_delta_channel_history(
            config=source, channels=_DELTA_CHANNELS
        ),
    }


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_async_pooled_saver_survives_terminated_backends(
    server_uri: str, db_uri: str, operation: str
) -> None:
    async with AsyncConnectionPool(
        db_uri, min_size=3, max_size=3, kwargs=RECOMMENDED, open=False
    ) as pool:
        await pool.wait()
        saver = AsyncPostgresSaver(pool)
        call = (await _async_operations(saver))[operation]
        assert await asyncio.to_thread(_terminate_backends, server_uri, db_uri) >= 3
        await call()
        assert await asyncio.to_thread(_terminate_backends, server_uri, db_uri) >= 1
        await call()


def test_single_connection_loss_says_how_to_recover(
    server_uri: str, db_uri: str
) -> None:
    # A connection the caller opened: the saver cannot open another.
    with psycopg.connect(db_uri, **RECOMMENDED) as conn:
        saver = PostgresSaver(conn)
        _put(saver, "t", {"a": 1})
        _terminate_backends(server_uri, db_uri)
        with pytest.raises(ConnectionLostError, match="pool") as info:
            saver.get_tuple(_config("t"))
        assert "lost" in str(info.value)
        assert "from_conn_string" in str(info.value)
        assert isinstance(info.value, psycopg.OperationalError)
        # Later calls say the same, not a driver error about a closed socket.
        with pytest.raises(ConnectionLostError, match="pool"):
            _put(saver, "t2", {"a": 1})


async def test_async_single_connection_loss_says_how_to_recover(
    server_uri: str, db_uri: str
) -> None:
    async with await psycopg.AsyncConnection.connect(db_uri, **RECOMMENDED) as conn:
        saver = AsyncPostgresSaver(conn)
        await _aput(saver, "t", {"a": 1})
        await asyncio.to_thread(_terminate_backends, server_uri, db_uri)
        with pytest.raises(ConnectionLostError, match="pool"):
            await saver.aget_tuple(_config("t"))


def test_saver_from_conn_string_reconnects(server_uri: str, db_uri: str) -> None:
    # The connection from_conn_string opened is the saver's: it opens another.
    with PostgresSaver.from_conn_string(db_uri) as saver:
        _put(saver, "t", {"a": 1})
        _terminate_backends(server_uri, db_uri)
        assert saver.get_tuple(_config("t")) is not None
        _terminate_backends(server_uri, db_uri)
        _put(saver, "t2", {"a": 2})  # a queued write, retried the same way
        assert saver.get_tuple(_config("t2")) is not None
        assert not saver.conn.closed  # the saver shows the connection it uses


async def test_async_saver_from_conn_string_reconnects(
    server_uri: str, db_uri: str
) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_uri) as saver:
        await _aput(saver, "t", {"a": 1})
        await asyncio.to_thread(_terminate_backends, server_uri, db_uri)
        assert await saver.aget_tuple(_config("t")) is not None
        await asyncio.to_thread(_terminate_backends, server_uri, db_uri)
        await _aput(saver, "t2", {"a": 2})
        assert await saver.aget_tuple(_config("t2")) is not None


# -- servers that stop answering -------------------------------------------------


@pytest.fixture
def proxy(server_uri: str):
    with SilentableProxy(server_uri) as p:
        yield p


def test_silent_server_times_out_instead_of_hanging(
    proxy: SilentableProxy, db_uri: str
) -> None:
    uri = proxy.uri(_dbname(db_uri))
    with ConnectionPool(uri, min_size=2, max_size=2, kwargs=RECOMMENDED) as pool:
        # Both connections open before the server goes silent: the second call
        # needs the one the first did not use (else it waits for the pool).
        pool.wait()
        saver = PostgresSaver(pool, timeout=1.0)
        _put(saver, "t", {"a": [1]})
        proxy.silence()
        for call in (
            lambda: saver.get_tuple(_config("t")),
            lambda: _put(saver, "t", {"a": [2]}),
        ):
            started = time.monotonic()
            with pytest.raises(CallTimeoutError, match="timeout of 1 s") as info:
                call()
            assert 0.9 < time.monotonic() - started < 5
            assert isinstance(info.value, TimeoutError)
        proxy.resume()
        # The pool replaced the severed connections: the saver works again.
        assert saver.get_tuple(_config("t")).checkpoint["channel_values"] == {"a": [1]}


def test_timeout_on_a_single_connection(proxy: SilentableProxy, db_uri: str) -> None:
    uri = proxy.uri(_dbname(db_uri))
    with PostgresSaver.from_conn_string(uri, timeout=0.5) as saver:
        _put(saver, "t", {"a": 1})
        proxy.silence()
        started = time.monotonic()
        with pytest.raises(CallTimeoutError):
            list(saver.list(None))
        assert time.monotonic() - started < 4


_BLOCKED_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


@pytest.mark.parametrize("pooled", [False, True], ids=["conn", "pool"])
def test_a_write_that_timed_out_never_lands(db_uri: str, pooled: bool) -> None:
    """A put held up by another session's row lock times out, and the server
    cancels it: when the lock goes, the checkpoint is as it was (shutting the
    socket alone left the statement running, to commit once the lock went)."""
    config = {"pool_config": {"max_size": 2}} if pooled else {}
    with PostgresSaver.from_conn_string(db_uri, timeout=1.0, **config) as saver:
        checkpoint = _checkpoint({"a": 1})
        versions = dict(checkpoint["channel_versions"])
        saver.put(_config("t"), checkpoint, {"step": 1}, versions)
        with psycopg.connect(db_uri) as locker:
            locker.execute("SELECT 1 FROM checkpoints WHERE thread_id = 't' FOR UPDATE")
            with pytest.raises(CallTimeoutError):
                saver.put(_config("t"), checkpoint, {"step": 2}, {})
            locker.rollback()
        with psycopg.connect(db_uri, autocommit=True) as observer:
            deadline = time.monotonic() + 10
            while observer.execute(_BLOCKED_SQL).fetchone() != (0,):
                assert time.monotonic() < deadline, "the abandoned put still waits"
                time.sleep(0.05)
            time.sleep(0.2)  # an abandoned put would have committed by now
            (metadata,) = observer.execute(
                "SELECT metadata FROM checkpoints WHERE thread_id = 't'"
            ).fetchone()
    assert metadata["step"] == 1


def test_calls_within_the_timeout_are_unaffected(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri, timeout=0.2) as saver:
        for i in range(200):
            _put(saver, f"t{i % 5}", {"a": i})
        time.sleep(0.4)  # past every deadline armed so far: none may fire late
        assert len(list(saver.list(None))) == 200


async def test_async_silent_server_times_out(
    proxy: SilentableProxy, db_uri: str
) -> None:
    uri = proxy.uri(_dbname(db_uri))
    async with AsyncPostgresSaver.from_conn_string(
        uri, timeout=1.0, pool_config={"min_size": 2, "max_size": 2}
    ) as saver:
        await _aput(saver, "t", {"a": [1]})
        proxy.silence()
        started = time.monotonic()
        with pytest.raises(CallTimeoutError, match="timeout"):
            await saver.aget_tuple(_config("t"))
        assert 0.9 < time.monotonic() - started < 5
        proxy.resume()
        found = await saver.aget_tuple(_config("t"))
        assert found.checkpoint["channel_values"] == {"a": [1]}


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
def test_bad_timeouts_are_refused(db_uri: str, timeout: Any) -> None:
    with psycopg.connect(db_uri, **RECOMMENDED) as conn:
        with pytest.raises(ValueError, match="timeout must be a positive"):
            PostgresSaver(conn, timeout=timeout)


# -- setup() on a populated database --------------------------------------------


def test_setup_redoes_an_index_build_that_was_interrupted(db_uri: str) -> None:
    # A database at version 9 (as the 3.x package leaves it) holding rows, with
    # the remains of an interrupted CONCURRENTLY build: an invalid index under
    # the name migration 10 uses. IF NOT EXISTS alone would keep it forever.
    with PostgresSaver.from_conn_string(db_uri) as saver:
        for n in range(20):
            _put(saver, f"t{n}", {"a": n}, run_id="same-run")
    with psycopg.connect(db_uri, autocommit=True) as conn:
        conn.execute("DELETE FROM checkpoint_migrations WHERE v >= 10")
        conn.execute("DROP INDEX checkpoints_run_id_idx")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY checkpoints_run_id_idx "
                "ON checkpoints ((metadata ->> 'run_id'))"
            )
        (valid,) = conn.execute(
            "SELECT indisvalid FROM pg_index "
            "WHERE indexrelid = 'checkpoints_run_id_idx'::regclass"
        ).fetchone()
        assert valid is False
    with PostgresSaver.from_conn_string(db_uri) as saver:
        saver.setup()
        saver.delete_for_runs(["same-run"])
        assert list(saver.list(None)) == []
    with psycopg.connect(db_uri) as conn:
        (valid, unique) = conn.execute(
            "SELECT indisvalid, indisunique FROM pg_index "
            "WHERE indexrelid = 'checkpoints_run_id_idx'::regclass"
        ).fetchone()
        versions = [r[0] for r in conn.execute("SELECT v FROM checkpoint_migrations")]
    assert (valid, unique) == (True, False)
    assert sorted(versions) == sorted(set(versions))
    assert max(versions) == len(MIGRATIONS) - 1


def _child_get_tuple_times_out(uri: str) -> None:
    """In a forked child: a blocked call must still time out."""
    with PostgresSaver.from_conn_string(uri, timeout=0.5) as saver:
        try:
            saver.get_tuple(_config("t"))
        except CallTimeoutError:
            raise SystemExit(0) from None
    raise SystemExit(1)


def test_timeout_works_in_a_forked_child(db_uri: str) -> None:
    # A worker forked (gunicorn, multiprocessing) after the parent used a
    # timeout has no watchdog thread of its own; it must get one.
    with PostgresSaver.from_conn_string(db_uri, timeout=5) as saver:
        _put(saver, "t", {"a": 1})
    with psycopg.connect(db_uri) as locker:
        # A server that does not answer in time: the table is locked.
        locker.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
        child = multiprocessing.get_context("fork").Process(
            target=_child_get_tuple_times_out, args=(db_uri,)
        )
        child.start()
        child.join(timeout=30)
        locker.rollback()
    assert child.exitcode == 0
