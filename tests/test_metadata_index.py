"""The GIN index on ``checkpoints.metadata`` (migration 12).

``list(filter=...)`` matches metadata by containment (``metadata @>
filter``). Across threads that used to read every checkpoint of every
thread; with the index the server looks up only the matching rows. These
tests fill a table in bulk, ask the server how it runs the very statement
the saver sends, and check what ``setup()`` does to a populated database that
has not got the index yet: it builds it without locking writers out, and it
rebuilds one that an interrupted build left invalid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.rows import dict_row

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from tests.savers import run_setup

METADATA_INDEX = "checkpoints_metadata_idx"
#: The version that adds it.
METADATA_VERSION = 12

#: The table the EXPLAIN test fills: 1,000 threads of 100 checkpoints, each
#: thread belonging to one of 250 users (so a user has 400 checkpoints).
ROWS = 100_000
PER_THREAD = 100
USERS = 250

#: How long the setup() test keeps the index build waiting (see there).
HOLD_SECONDS = 2.0

#: Observer connections give up on a lock instead of hanging the suite.
OBSERVER_OPTIONS = "-c lock_timeout=10s -c statement_timeout=60s"


def _config(thread_id: str, **extra: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", **extra}}


def _observer(uri: str) -> psycopg.Connection[Any]:
    """An autocommit connection for looking at the database from outside."""
    return psycopg.connect(uri, autocommit=True, options=OBSERVER_OPTIONS)


def _put(saver: PostgresSaver, thread_id: str, metadata: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    # A string stays inline in the checkpoint's JSON (no blob), so that the
    # bulk copies of one checkpoint are whole without copying blobs.
    checkpoint["channel_values"] = {"greeting": f"hello from {thread_id}"}
    checkpoint["channel_versions"] = {"greeting": "1"}
    return saver.put(
        _config(thread_id), checkpoint, metadata, dict(checkpoint["channel_versions"])
    )


def _fill(saver: PostgresSaver, uri: str, rows: int) -> None:
    """Store ``rows`` checkpoints, ``PER_THREAD`` per thread, in bulk.

    One checkpoint goes through ``put()`` (so each row is what the saver
    stores); the server copies it with new keys and metadata. Thread ``t``
    belongs to ``user-{t % USERS}``; step 0 of each thread has source
    ``input``, the others ``loop``. Checkpoint ids grow with the step, as
    LangGraph's do.
    """
    _put(saver, "seed", {"source": "input", "step": 0})
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                parent_checkpoint_id, type, checkpoint, metadata)
            SELECT 'thread-' || (i / %(per)s), '', id,
                CASE WHEN i %% %(per)s > 0 THEN lpad((i - 1)::text, 12, '0') END,
                s.type, jsonb_set(s.checkpoint, '{id}', to_jsonb(id)),
                jsonb_build_object(
                    'source', CASE WHEN i %% %(per)s = 0 THEN 'input' ELSE 'loop' END,
                    'step', i %% %(per)s,
                    'parents', '{}'::jsonb,
                    'user', 'user-' || (i / %(per)s) %% %(users)s)
            FROM checkpoints s, generate_series(0, %(rows)s - 1) AS i,
                LATERAL lpad(i::text, 12, '0') AS id
            WHERE s.thread_id = 'seed'""",
            {"per": PER_THREAD, "users": USERS, "rows": rows},
        )
        saver.delete_thread("seed")
        conn.execute("ANALYZE checkpoints")


def _plan(conn: psycopg.Connection[Any], sql: str, params: Any) -> str:
    rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_list_across_threads_with_a_filter_uses_the_index(db_uri: str) -> None:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        _fill(saver, db_uri, ROWS)
        filter = {"user": "user-7"}
        # The statement the saver sends for the first page of this list,
        # built by its own (I/O-free) planner rather than copied here.
        pages = saver._list_pages(None, filter=filter, before=None, limit=20)
        statement = pages.next_statement()
        assert statement is not None
        with _observer(db_uri) as conn:
            plan = _plan(conn, statement.sql, statement.params)
            # What the checkpoints of that user are, found another way.
            expected = conn.execute(
                """SELECT thread_id, checkpoint_id FROM checkpoints
                WHERE metadata ->> 'user' = 'user-7'
                ORDER BY checkpoint_id DESC, thread_id DESC LIMIT 20"""
            ).fetchall()
        assert f"Bitmap Index Scan on {METADATA_INDEX}" in plan, plan
        assert "Seq Scan on checkpoints" not in plan, plan

        listed = list(saver.list(None, filter=filter, limit=20))
        assert [
            (t.config["configurable"]["thread_id"], t.checkpoint["id"]) for t in listed
        ] == expected
        assert len(expected) == 20
        assert all(t.metadata["user"] == "user-7" for t in listed)
        # Every checkpoint of the user, past the first page.
        assert len(list(saver.list(None, filter=filter))) == ROWS // USERS

        # Within a thread the primary key finds its rows; the filter then
        # picks among them.
        inputs = list(saver.list(_config("thread-5"), filter={"source": "input"}))
        assert [t.metadata["step"] for t in inputs] == [0]
        assert inputs[0].checkpoint["channel_values"] == {"greeting": "hello from seed"}
        steps = saver.list(_config("thread-5"), filter={"user": "user-5", "step": 42})
        assert [t.checkpoint["id"] for t in steps] == [f"{5 * PER_THREAD + 42:012}"]
        assert list(saver.list(_config("thread-5"), filter={"user": "user-6"})) == []


# -- setup() on a populated database without the index -------------------------


def _at_version_11(uri: str, rows: int) -> None:
    """Make the set-up database ``uri`` what version 11 left: ``rows``
    checkpoints and no metadata index."""
    with PostgresSaver.from_conn_string(uri) as saver:
        _fill(saver, uri, rows)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {METADATA_INDEX}")
        conn.execute(
            "DELETE FROM checkpoint_migrations WHERE v = %s", (METADATA_VERSION,)
        )


def _index_state(uri: str) -> tuple[bool, str] | None:
    """(valid, definition) of the metadata index, ``None`` if it is missing."""
    with _observer(uri) as conn:
        return conn.execute(
            """SELECT x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x
            WHERE x.indexrelid = to_regclass(%s)""",
            (METADATA_INDEX,),
        ).fetchone()


def _versions(uri: str) -> list[int]:
    with _observer(uri) as conn:
        rows = conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        return [v for (v,) in rows]


def _assert_index_built(uri: str) -> None:
    state = _index_state(uri)
    assert state is not None, "setup() did not create the metadata index"
    valid, definition = state
    assert valid, definition
    assert "USING gin (metadata jsonb_path_ops)" in definition, definition
    assert _versions(uri) == list(range(len(MIGRATIONS)))


class Writer:
    """A thread that stores checkpoints one after another on its own
    connection, noting how long each ``put()`` took, until stopped."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.times: list[tuple[float, float]] = []  # (finished at, seconds)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with PostgresSaver.from_conn_string(self.uri) as saver:
                n = 0
                while not self._stop.is_set():
                    started = time.monotonic()
                    _put(saver, f"live-{n}", {"user": "live", "step": n})
                    done = time.monotonic()
                    self.times.append((done, done - started))
                    n += 1
                    time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc

    def written_between(self, start: float, end: float) -> int:
        return sum(1 for done, _ in self.times if start <= done <= end)

    @contextmanager
    def running(self) -> Iterator[Writer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=60)


def _wait_for_phase(
    conn: psycopg.Connection[Any], phase: str, running: threading.Thread
) -> dict[str, Any]:
    """Wait until the index build on ``checkpoints`` is in ``phase``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = conn.execute(
            """SELECT pid, command, phase FROM pg_stat_progress_create_index
            WHERE datname = current_database()
              AND relid = to_regclass('checkpoints')::oid"""
        ).fetchone()
        if progress is not None and progress["phase"] == phase:
            return dict(progress)
        if not running.is_alive():
            pytest.fail(f"setup() ended before an index build reached {phase!r}")
        time.sleep(0.01)
    pytest.fail(f"no index build on checkpoints reached {phase!r} within 60 s")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_setup_builds_the_index_concurrently_while_a_writer_writes(
    db_uri: str, kind: str
) -> None:
    """A deploy that adds the index to a live, populated database.

    A transaction that took its snapshot before ``setup()`` started and
    stays open makes the build wait, at its end, until that snapshot is
    gone: what a long report query of the application would do. Meanwhile a
    writer stores checkpoints. Built in the migration's transaction, the
    index would lock the writer out of ``checkpoints`` until the end;
    built concurrently, the writer goes on as if nothing happened.
    """
    _at_version_11(db_uri, 20_000)
    errors: list[BaseException] = []

    def setup() -> None:
        try:
            run_setup(db_uri, kind)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    with (
        _observer(db_uri) as watch,
        psycopg.connect(db_uri, autocommit=True) as old_snapshot,
        Writer(db_uri).running() as writer,
    ):
        watch.row_factory = dict_row
        old_snapshot.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old_snapshot.execute("SELECT 1")  # the snapshot is taken here
        running = threading.Thread(target=setup, daemon=True)
        running.start()
        progress = _wait_for_phase(watch, "waiting for old snapshots", running)
        held_from = time.monotonic()
        time.sleep(HOLD_SECONDS)
        held_until = time.monotonic()
        still = _wait_for_phase(watch, "waiting for old snapshots", running)
        old_snapshot.execute("COMMIT")
        running.join(timeout=120)
        assert not running.is_alive(), "setup() still running 120 s after"
        time.sleep(0.1)  # a put or two after setup() returned
    assert not errors, errors
    assert writer.error is None, writer.error
    assert progress["command"] == "CREATE INDEX CONCURRENTLY", progress
    assert still["pid"] == progress["pid"], "the build was not the one held"
    # The writer kept storing checkpoints while the index was being built,
    # and no put() waited for the build (it was held for HOLD_SECONDS).
    written = writer.written_between(held_from, held_until)
    assert written >= 10, f"only {written} puts in {HOLD_SECONDS}s of index build"
    slowest = max(seconds for _, seconds in writer.times)
    assert slowest < HOLD_SECONDS / 2, f"a put() waited {slowest:.2f}s"

    _assert_index_built(db_uri)
    # The index is complete: it finds what the writer stored during its build.
    with PostgresSaver.from_conn_string(db_uri) as saver:
        live = list(saver.list(None, filter={"user": "live"}))
        statement = saver._list_pages(
            None, filter={"user": "live"}, before=None, limit=None
        ).next_statement()
    assert statement is not None
    assert len(live) == len(writer.times)
    with _observer(db_uri) as conn:
        conn.execute("SET enable_seqscan = off")
        assert METADATA_INDEX in _plan(conn, statement.sql, statement.params)


def test_setup_replaces_an_invalid_index_left_by_an_interrupted_build(
    db_uri: str,
) -> None:
    """An interrupted ``CREATE INDEX CONCURRENTLY`` leaves an invalid index
    under the migration's name; ``IF NOT EXISTS`` alone would keep it, and
    the index would never be used (nor would its name be free)."""
    _at_version_11(db_uri, 2_000)
    with psycopg.connect(db_uri, autocommit=True) as conn:
        # A build that fails half-way: many rows share a user.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {METADATA_INDEX} "
                "ON checkpoints ((metadata ->> 'user'))"
            )
    assert _index_state(db_uri) == (
        False,
        f"CREATE UNIQUE INDEX {METADATA_INDEX} ON public.checkpoints "
        "USING btree (((metadata ->> 'user'::text)))",
    )
    with PostgresSaver.from_conn_string(db_uri) as saver:
        saver.setup()
        found = list(saver.list(None, filter={"user": "user-3"}, limit=5))
    assert [t.metadata["user"] for t in found] == ["user-3"] * 5
    _assert_index_built(db_uri)
