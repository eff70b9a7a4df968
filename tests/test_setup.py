"""``setup()`` the way deployments call it.

Many processes start at once against an empty database; a caller hands
``setup()`` a connection with psycopg's defaults, or calls it inside a
transaction of its own; a database migrated by a newer release is met by an
older one; and an existing, large database is migrated while the application
keeps writing to it. Everything runs against a real server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS, IncompatibleSchemaError
from tests.savers import run_setup

LATEST = len(MIGRATIONS) - 1
ALL_VERSIONS = list(range(len(MIGRATIONS)))
#: The last version ``langgraph-checkpoint-postgres`` 3.x knows; 10 to 12 are
#: this package's own (10 adds RUN_ID_INDEX, 11 drops THREAD_ID_INDEXES, 12
#: adds METADATA_INDEX).
UPSTREAM_LATEST = 9
RUN_ID_INDEX = "checkpoints_run_id_idx"
METADATA_INDEX = "checkpoints_metadata_idx"
THREAD_ID_INDEXES = {
    "checkpoints_thread_id_idx",
    "checkpoint_blobs_thread_id_idx",
    "checkpoint_writes_thread_id_idx",
}
TABLES = (
    "checkpoint_migrations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
)

RECOMMENDED: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}

#: How many processes (and, in the async test, connections) race to set up.
RACERS = 16

#: Size of the "large" database. Each row's run_id is ~1 kB, so sorting the
#: keys dominates the build: on the 2-core CI machine (Postgres 15, default
#: settings) the 150k rows insert in ~1.1 s and CREATE INDEX on run_id takes
#: ~1.3-1.8 s, CONCURRENTLY about the same: long enough to catch a write in
#: the middle of it, short enough for CI.
LARGE_ROWS = 150_000
RUN_ID_PAD = 1000

#: Observer connections give up on a lock instead of hanging the suite.
OBSERVER_OPTIONS = "-c lock_timeout=10s -c statement_timeout=60s"


# -- helpers -----------------------------------------------------------------


def _observer(uri: str) -> psycopg.Connection[Any]:
    """An autocommit connection for looking at the database from outside."""
    return psycopg.connect(uri, autocommit=True, options=OBSERVER_OPTIONS)


def _versions(uri: str) -> list[int] | None:
    """Recorded migration versions (one entry per row), ``None`` if no table."""
    with _observer(uri) as conn:
        (exists,) = conn.execute(
            "SELECT to_regclass('checkpoint_migrations') IS NOT NULL"
        ).fetchone()
        if not exists:
            return None
        return sorted(r[0] for r in conn.execute("SELECT v FROM checkpoint_migrations"))


def _indexes(uri: str) -> dict[str, bool]:
    """Indexes on the saver's tables (name -> ``pg_index.indisvalid``)."""
    with _observer(uri) as conn:
        return dict(
            conn.execute(
                """SELECT i.relname, x.indisvalid
                FROM pg_index x
                JOIN pg_class i ON i.oid = x.indexrelid
                JOIN pg_class t ON t.oid = x.indrelid
                WHERE t.relnamespace = current_schema()::regnamespace
                  AND t.relname = ANY(%s)""",
                (list(TABLES),),
            ).fetchall()
        )


def _schema(uri: str) -> dict[str, Any]:
    """Everything setup() could change: tables, columns, indexes, rows."""
    with _observer(uri) as conn:
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable,
                      column_default
            FROM information_schema.columns
            WHERE table_schema = current_schema()
            ORDER BY table_name, ordinal_position"""
        ).fetchall()
        indexes = conn.execute(
            """SELECT i.relname, pg_get_indexdef(i.oid), x.indisvalid
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relnamespace = current_schema()::regnamespace
            ORDER BY 1"""
        ).fetchall()
        present = {r[0] for r in columns}
        rows = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
            if table in present
        }
        versions = (
            sorted(r[0] for r in conn.execute("SELECT v FROM checkpoint_migrations"))
            if "checkpoint_migrations" in present
            else None
        )
    return {"columns": columns, "indexes": indexes, "rows": rows, "versions": versions}


def _assert_fully_migrated(uri: str) -> None:
    versions = _versions(uri)
    assert sorted(versions or []) == ALL_VERSIONS, versions
    indexes = _indexes(uri)
    assert indexes.get(RUN_ID_INDEX) is True, indexes
    assert indexes.get(METADATA_INDEX) is True, indexes
    assert not THREAD_ID_INDEXES & set(indexes), indexes
    assert all(indexes.values()), f"invalid indexes left behind: {indexes}"


def _fill_checkpoints(conn: psycopg.Connection[Any], rows: int, pad: int) -> None:
    """Insert ``rows`` checkpoints, each in a run of its own."""
    conn.execute(
        """INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint, metadata)
        SELECT 'thread-' || (i %% 5000), lpad(i::text, 12, '0'), '{"v": 4}',
               jsonb_build_object(
                   'source', 'loop', 'step', i,
                   'run_id', repeat('r', %s) || md5(i::text))
        FROM generate_series(1, %s) AS i""",
        (pad, rows),
    )


def _make_upstream_database(uri: str, *, rows: int = 0, pad: int = 0) -> None:
    """Turn the empty database ``uri`` into what the 3.x package leaves.

    That is migrations 0-9 applied and recorded, with ``rows`` checkpoints.
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        for version in range(UPSTREAM_LATEST + 1):
            conn.execute(MIGRATIONS[version])
            conn.execute(
                "INSERT INTO checkpoint_migrations (v) VALUES (%s)", (version,)
            )
        if rows:
            _fill_checkpoints(conn, rows, pad)
            conn.execute("VACUUM ANALYZE checkpoints")


LAYOUTS = ["empty", "upstream-v9"]


def _prepare(uri: str, layout: str) -> None:
    if layout == "upstream-v9":
        _make_upstream_database(uri, rows=50)


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _new_checkpoint(value: str) -> tuple[Any, Any]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [value], "count": 1}
    checkpoint["channel_versions"] = {"messages": "1", "count": "1"}
    return checkpoint, dict(checkpoint["channel_versions"])


def _put(saver: PostgresSaver, thread_id: str, run_id: str) -> Any:
    checkpoint, versions = _new_checkpoint(f"hello from {thread_id}")
    return saver.put(
        _config(thread_id), checkpoint, {"run_id": run_id, "step": 0}, versions
    )


def _assert_round_trip(saver: PostgresSaver) -> str:
    """Store a checkpoint and read it back; the thread it went to."""
    thread_id = f"round-trip-{uuid.uuid4().hex[:8]}"
    stored = _put(saver, thread_id, "run-round-trip")
    loaded = saver.get_tuple(_config(thread_id))
    assert loaded is not None
    assert (
        loaded.config["configurable"]["checkpoint_id"]
        == (stored["configurable"]["checkpoint_id"])
    )
    assert loaded.checkpoint["channel_values"] == {
        "messages": [f"hello from {thread_id}"],
        "count": 1,
    }
    assert loaded.metadata["run_id"] == "run-round-trip"
    return thread_id


async def _assert_async_round_trip(saver: AsyncPostgresSaver) -> None:
    thread_id = f"round-trip-{uuid.uuid4().hex[:8]}"
    checkpoint, versions = _new_checkpoint("async hello")
    stored = await saver.aput(
        _config(thread_id), checkpoint, {"run_id": "run-async"}, versions
    )
    loaded = await saver.aget_tuple(_config(thread_id))
    assert loaded is not None
    assert (
        loaded.config["configurable"]["checkpoint_id"]
        == (stored["configurable"]["checkpoint_id"])
    )
    assert loaded.checkpoint["channel_values"] == {
        "messages": ["async hello"],
        "count": 1,
    }
    assert loaded.metadata["run_id"] == "run-async"


def _advisory_locks_of(uri: str, pid: int) -> int:
    with _observer(uri) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
            (pid,),
        ).fetchone()
    return int(count)


def _assert_connection_left_clean(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    uri: str,
    *,
    autocommit: bool,
) -> None:
    """``conn`` is as the caller gave it: same mode, no transaction, no lock."""
    assert conn.autocommit is autocommit
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    # A lock setup() kept would stall every other process's setup() forever.
    assert _advisory_locks_of(uri, conn.info.backend_pid) == 0


# -- many processes at once on an empty database ------------------------------


def _setup_in_child(uri: str, barrier: Any, results: Any) -> None:
    """Child process: connect, wait for the others, then call setup()."""
    try:
        with PostgresSaver.from_conn_string(uri) as saver:
            barrier.wait(timeout=120)
            started = time.monotonic()
            saver.setup()
            results.put(("ok", time.monotonic() - started))
    except BaseException:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        results.put(("error", traceback.format_exc()))
        raise SystemExit(1) from None


def test_setup_from_16_processes_at_once_on_an_empty_database(
    empty_db_uri: str,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS + 1)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_setup_in_child, args=(empty_db_uri, barrier, results))
        for _ in range(RACERS)
    ]
    for process in processes:
        process.start()
    outcomes: list[tuple[str, Any]] = []
    try:
        try:
            barrier.wait(timeout=120)  # every child is connected: release them
        except threading.BrokenBarrierError:
            pass  # a child failed before the start; its error is in `results`
        while len(outcomes) < RACERS:
            try:
                outcomes.append(results.get(timeout=120))
            except queue.Empty:  # a child died without a word
                break
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert not errors, f"{len(errors)} of {RACERS} setup() calls failed:\n{errors[0]}"
    assert len(outcomes) == RACERS
    assert [p.exitcode for p in processes] == [0] * RACERS
    _assert_fully_migrated(empty_db_uri)
    with PostgresSaver.from_conn_string(empty_db_uri) as saver:
        _assert_round_trip(saver)


async def test_async_setup_from_16_connections_at_once_on_an_empty_database(
    empty_db_uri: str,
) -> None:
    async with AsyncExitStack() as stack:
        savers = [
            await stack.enter_async_context(
                AsyncPostgresSaver.from_conn_string(empty_db_uri)
            )
            for _ in range(RACERS)
        ]
        outcomes = await asyncio.gather(
            *(saver.setup() for saver in savers), return_exceptions=True
        )
        errors = [o for o in outcomes if o is not None]
        assert not errors, f"{len(errors)} of {RACERS} setup() calls failed: {errors}"
        _assert_fully_migrated(empty_db_uri)
        await _assert_async_round_trip(savers[-1])


def test_setup_on_a_new_database_applies_every_migration_in_one_transaction(
    empty_db_uri: str,
) -> None:
    with PostgresSaver.from_conn_string(empty_db_uri) as saver:
        saver.setup()
    _assert_fully_migrated(empty_db_uri)
    with _observer(empty_db_uri) as conn:
        writers = conn.execute(
            "SELECT DISTINCT xmin::text FROM checkpoint_migrations"
        ).fetchall()
        (index_writer,) = conn.execute(
            "SELECT xmin::text FROM pg_class WHERE oid = to_regclass(%s)",
            (RUN_ID_INDEX,),
        ).fetchone()
    # No half-made schema if the process dies: the tables, the indexes and
    # every version row come from one transaction.
    assert writers == [(index_writer,)]


# -- the caller's connection and transaction -----------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_setup_on_a_connection_with_psycopg_defaults_commits_by_itself(
    empty_db_uri: str, layout: str
) -> None:
    _prepare(empty_db_uri, layout)
    with psycopg.connect(empty_db_uri) as conn:  # autocommit=False, tuple rows
        saver = PostgresSaver(conn)
        saver.setup()
        # Visible to everyone else with no conn.commit() from the caller.
        _assert_fully_migrated(empty_db_uri)
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=False)
        # Another process's setup() is not held up by this open connection.
        with psycopg.connect(
            empty_db_uri, options="-c lock_timeout=5s", **RECOMMENDED
        ) as other:
            PostgresSaver(other).setup()
        # The connection still works, for the saver and for the caller.
        thread_id = _assert_round_trip(saver)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.rollback()
    with PostgresSaver.from_conn_string(empty_db_uri) as fresh:
        assert fresh.get_tuple(_config(thread_id)) is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_setup_with_psycopg_defaults_inside_an_implicit_transaction(
    empty_db_uri: str, layout: str
) -> None:
    _prepare(empty_db_uri, layout)
    with psycopg.connect(empty_db_uri) as conn:
        conn.execute("SELECT 1")  # psycopg has now opened a transaction
        PostgresSaver(conn).setup()
        conn.commit()
        assert conn.autocommit is False
    _assert_fully_migrated(empty_db_uri)


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_setup_inside_a_callers_transaction_commits_or_rolls_back_with_it(
    empty_db_uri: str, layout: str, outcome: str
) -> None:
    _prepare(empty_db_uri, layout)
    before = _schema(empty_db_uri)
    with psycopg.connect(empty_db_uri, **RECOMMENDED) as conn:
        saver = PostgresSaver(conn)
        with conn.transaction():
            saver.setup()
            # Nothing is committed behind the caller's back.
            assert _versions(empty_db_uri) == before["versions"]
            current = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
            assert current.fetchone() == {"v": LATEST}
            if outcome == "rollback":
                raise psycopg.Rollback()
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=True)
    if outcome == "commit":
        _assert_fully_migrated(empty_db_uri)
        with PostgresSaver.from_conn_string(empty_db_uri) as fresh:
            _assert_round_trip(fresh)
    else:
        assert _schema(empty_db_uri) == before


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_async_setup_inside_a_callers_transaction_commits_or_rolls_back(
    empty_db_uri: str, layout: str, outcome: str
) -> None:
    _prepare(empty_db_uri, layout)
    before = _schema(empty_db_uri)
    async with await psycopg.AsyncConnection.connect(
        empty_db_uri, **RECOMMENDED
    ) as conn:
        saver = AsyncPostgresSaver(conn)
        async with conn.transaction():
            await saver.setup()
            assert _versions(empty_db_uri) == before["versions"]
            cur = await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
            assert await cur.fetchone() == {"v": LATEST}
            if outcome == "rollback":
                raise psycopg.Rollback()
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=True)
    if outcome == "commit":
        _assert_fully_migrated(empty_db_uri)
        async with AsyncPostgresSaver.from_conn_string(empty_db_uri) as fresh:
            await _assert_async_round_trip(fresh)
    else:
        assert _schema(empty_db_uri) == before


# -- a database migrated by a newer release -------------------------------------


def _newer_database(uri: str) -> int:
    """Make ``uri`` a database that a newer release has migrated; its version.

    Versions 10 and 11 are missing and a newer one is there: a setup() that
    filled gaps instead of comparing with the newest would change this.
    """
    newer = len(MIGRATIONS) + 5
    _make_upstream_database(uri, rows=20)
    with _observer(uri) as conn:
        conn.execute("INSERT INTO checkpoint_migrations (v) VALUES (%s)", (newer,))
    return newer


def _assert_names_versions(error: BaseException, *versions: int) -> None:
    for version in versions:
        assert re.search(rf"(?<!\d){version}(?!\d)", str(error)), (version, error)


def test_setup_refuses_a_newer_database_and_leaves_it_alone(empty_db_uri: str) -> None:
    newer = _newer_database(empty_db_uri)
    before = _schema(empty_db_uri)
    with psycopg.connect(empty_db_uri, **RECOMMENDED) as conn:
        with pytest.raises(IncompatibleSchemaError) as info:
            PostgresSaver(conn).setup()
        _assert_names_versions(info.value, newer, LATEST)
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=True)
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        # Another process is refused as well, not left waiting on a lock.
        other_uri = make_conninfo(empty_db_uri, options="-c lock_timeout=5s")
        with PostgresSaver.from_conn_string(other_uri) as other:
            with pytest.raises(IncompatibleSchemaError):
                other.setup()
    assert _schema(empty_db_uri) == before


async def test_async_setup_refuses_a_newer_database_and_leaves_it_alone(
    empty_db_uri: str,
) -> None:
    newer = _newer_database(empty_db_uri)
    before = _schema(empty_db_uri)
    async with await psycopg.AsyncConnection.connect(
        empty_db_uri, **RECOMMENDED
    ) as conn:
        with pytest.raises(IncompatibleSchemaError) as info:
            await AsyncPostgresSaver(conn).setup()
        _assert_names_versions(info.value, newer, LATEST)
        _assert_connection_left_clean(conn, empty_db_uri, autocommit=True)
        cur = await conn.execute("SELECT 1 AS one")
        assert await cur.fetchone() == {"one": 1}
    assert _schema(empty_db_uri) == before


# -- a large existing database ---------------------------------------------------


def _build_in_progress(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """The CREATE INDEX running on ``checkpoints`` of ``conn``'s database."""
    return conn.execute(
        """SELECT pid, command, phase FROM pg_stat_progress_create_index
        WHERE datname = current_database()
          AND relid = to_regclass('checkpoints')::oid""",
    ).fetchone()


def _wait_for_build(
    conn: psycopg.Connection[Any], running: threading.Thread, timeout: float = 60
) -> dict[str, Any]:
    """Wait until an index build on ``checkpoints`` is scanning or sorting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = _build_in_progress(conn)
        if progress is not None and progress["phase"].startswith("building index"):
            return progress
        if not running.is_alive():
            pytest.fail(
                "setup() ended before an index build on checkpoints was seen: "
                "LARGE_ROWS is too small for this machine, or nothing was built"
            )
        time.sleep(0.01)
    pytest.fail(f"no index build on checkpoints within {timeout}s")


@contextmanager
def _setup_in_thread(uri: str, kind: str = "sync") -> Iterator[dict[str, Any]]:
    """Run ``setup()`` on its own connection in a thread for the block."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            run_setup(uri, kind)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            outcome["error"] = exc
        finally:
            outcome["ended_at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    outcome["thread"] = thread
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(timeout=120)
    assert not thread.is_alive(), "setup() still running after 120 s"


@pytest.fixture
def large_upstream_db(empty_db_uri: str) -> str:
    """A database at version 9 with LARGE_ROWS checkpoints."""
    _make_upstream_database(empty_db_uri, rows=LARGE_ROWS, pad=RUN_ID_PAD)
    return empty_db_uri


def test_setup_on_a_large_database_lets_writers_through_while_it_builds_an_index(
    large_upstream_db: str,
) -> None:
    uri = large_upstream_db
    writer_options = "-c lock_timeout=60s -c statement_timeout=60s"
    with (
        _observer(uri) as watch,
        psycopg.connect(uri, options=writer_options, **RECOMMENDED) as writer,
    ):
        watch.row_factory = dict_row
        writer_saver = PostgresSaver(writer)
        with _setup_in_thread(uri) as outcome:
            progress = _wait_for_build(watch, outcome["thread"])
            build_seen_at = time.monotonic()
            # What the application does meanwhile: a new thread's checkpoint,
            # and a plain INSERT.
            written = _put(writer_saver, "written-during-setup", "run-during-setup")
            writer.execute(
                """INSERT INTO checkpoints
                    (thread_id, checkpoint_id, checkpoint, metadata)
                VALUES ('inserted-during-setup', '1', '{}',
                        '{"run_id": "run-inserted-during-setup"}')"""
            )
            write_seconds = time.monotonic() - build_seen_at
            still_building = _build_in_progress(watch)
        setup_seconds = outcome["ended_at"] - build_seen_at
        error = outcome.get("error")
        # Had the writes waited for the build, it would be over by now.
        assert still_building is not None, (
            f"the writes took {write_seconds:.2f}s and completed only after the "
            f"index build ({progress['command']}) had ended: setup() locks "
            "writers out of checkpoints while it builds an index on a populated "
            f"table (setup() {'failed with ' + repr(error) if error else 'returned'}"
            f" {setup_seconds:.2f}s after the build was seen)"
        )
        assert error is None, error

        _assert_fully_migrated(uri)
        # The index is complete: it finds the rows written during its build.
        watch.execute("SET enable_seqscan = off")
        query = (
            "SELECT thread_id FROM checkpoints "
            "WHERE metadata ->> 'run_id' = ANY(%s) ORDER BY 1"
        )
        runs = (["run-during-setup", "run-inserted-during-setup"],)
        plan = "\n".join(
            r["QUERY PLAN"] for r in watch.execute("EXPLAIN " + query, runs)
        )
        assert RUN_ID_INDEX in plan, plan
        assert [r["thread_id"] for r in watch.execute(query, runs)] == [
            "inserted-during-setup",
            "written-during-setup",
        ]
        count = watch.execute("SELECT count(*) AS n FROM checkpoints").fetchone()
        assert count == {"n": LARGE_ROWS + 2}
    with PostgresSaver.from_conn_string(uri) as saver:
        loaded = saver.get_tuple(written)
        assert loaded is not None
        assert loaded.metadata["run_id"] == "run-during-setup"


def test_two_setups_at_once_on_a_large_database(large_upstream_db: str) -> None:
    uri = large_upstream_db
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with PostgresSaver.from_conn_string(uri) as saver:
                start.wait(timeout=60)
                saver.setup()
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "setup() hung"
    assert not errors, f"{len(errors)} of 2 setup() calls failed: {errors}"
    _assert_fully_migrated(uri)
    with PostgresSaver.from_conn_string(uri) as saver:
        _assert_round_trip(saver)


def test_setup_killed_during_the_index_build_is_finished_by_the_next_one(
    large_upstream_db: str,
) -> None:
    """A deploy killed mid-migration must not leave a half-built index."""
    uri = large_upstream_db
    with _observer(uri) as watch:
        watch.row_factory = dict_row
        with _setup_in_thread(uri) as outcome:
            progress = _wait_for_build(watch, outcome["thread"])
            watch.execute("SELECT pg_terminate_backend(%s)", (progress["pid"],))
    # The saver owns its connection (from_conn_string), so it reconnects and
    # runs setup() again itself, which finishes the build; so does the next.
    assert outcome.get("error") is None, outcome
    _assert_fully_migrated(uri)
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
        _assert_round_trip(saver)
    _assert_fully_migrated(uri)


# -- a deadlock with the application ------------------------------------------


def _wait_for_lock_wait(conn: psycopg.Connection[Any], query_start: str) -> None:
    """Wait until a session of this database whose query starts with
    ``query_start`` waits for a lock."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = conn.execute(
            """SELECT 1 FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE %s""",
            (query_start + "%",),
        ).fetchone()
        if waiting:
            return
        time.sleep(0.01)
    pytest.fail(f"no session started waiting for a lock in {query_start!r}")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_setup_deadlocked_by_an_application_transaction_runs_again(
    empty_db_uri: str, kind: str
) -> None:
    """An upgrade that deadlocks with a live writer must not fail the deploy.

    The application's transaction writes ``checkpoint_writes`` and then
    ``checkpoints``; the migration holds ``checkpoints`` (10 builds an index
    on it) and waits for ``checkpoint_writes`` (11 drops an index of it). The
    server aborts the migration (the writer checks for deadlocks only after
    10 s); its transaction rolled back, setup() must run it again.
    """
    uri = empty_db_uri
    _make_upstream_database(uri)
    app_options = "-c deadlock_timeout=10s -c lock_timeout=30s"
    with _observer(uri) as watch, psycopg.connect(uri, options=app_options) as app:
        app.execute(
            """INSERT INTO checkpoint_writes
                (thread_id, checkpoint_id, task_id, idx, channel, blob)
            VALUES ('app', '1', 'task', 0, 'messages', '\\x00')"""
        )
        with _setup_in_thread(uri, kind) as outcome:
            _wait_for_lock_wait(watch, "DROP INDEX")
            app.execute(
                """INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint)
                VALUES ('app', '1', '{}')"""
            )
            app.commit()
    assert "error" not in outcome, outcome["error"]
    _assert_fully_migrated(uri)
    with _observer(uri) as watch:
        rows = watch.execute(
            "SELECT (SELECT count(*) FROM checkpoints),"
            " (SELECT count(*) FROM checkpoint_writes)"
        ).fetchone()
    assert rows == (1, 1), "the application's transaction was not committed"
