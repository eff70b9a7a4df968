"""Retention as a policy: ``prune(strategy="keep_last")``, ``retention=``,
``sweep()`` and the background sweepers, on real graphs and a real server.

The graph (from test_lifecycle) has a ``DeltaChannel``, a blob-valued
channel and a subgraph with its own namespace.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.graph import START, StateGraph
from psycopg_pool import ConnectionPool
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._sweep import SweepResult
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import RetentionConfig
from tests.dbcheck import orphans
from tests.savers import async_saver, sync_saver
from tests.test_lifecycle import (
    count,
    dump,
    graph,
    run_config,
    run_graphs,
    run_ids,
    view,
)

OLD_TS = "2020-01-01T00:00:00.000000+00:00"


def age(uri: str, *thread_ids: str, ts: str = OLD_TS) -> None:
    """Make every checkpoint of ``thread_ids`` look written at ``ts``."""
    with psycopg.connect(uri) as conn:
        conn.execute(
            "UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{ts}', "
            "to_jsonb(%s::text)) WHERE thread_id = ANY(%s)",
            (ts, list(thread_ids)),
        )


def per_namespace(uri: str, thread_id: str) -> dict[str, int]:
    with psycopg.connect(uri) as conn:
        return dict(
            conn.execute(
                "SELECT checkpoint_ns, count(*)::int FROM checkpoints "
                "WHERE thread_id = %s GROUP BY 1 ORDER BY 1",
                (thread_id,),
            ).fetchall()
        )


def history(saver: Any, thread_id: str) -> list[Any]:
    return list(graph(saver).get_state_history(run_config(thread_id)))


# -- configuration --------------------------------------------------------------

BAD_POLICIES: list[tuple[Any, str]] = [
    ({"strategy": "trim", "default_ttl": 5}, "unknown retention strategy 'trim'"),
    ({"strategy": "delete"}, "set retention['default_ttl']"),
    ({"default_ttl": 5, "ttl": 5}, "unknown retention key(s) 'ttl'"),
    ({"strategy": "keep_last"}, "strategy \"keep_last\" needs retention['keep']=N"),
    ({"strategy": "keep_last", "keep": 0}, "integer >= 1); got 0"),
    ({"strategy": "keep_last", "keep": True}, "got True"),
    ({"strategy": "keep_latest", "keep": 3}, 'with strategy "keep_last" only'),
    ({"default_ttl": -1}, "retention['default_ttl'] must be a positive number"),
    ({"default_ttl": float("nan")}, "positive number of minutes, got nan"),
    ({"default_ttl": "30d"}, "positive number of minutes, got '30d'"),
    ({"default_ttl": 5, "sweep_limit": 0}, "retention['sweep_limit'] must be"),
    ({"default_ttl": 5, "sweep_limit": 2.5}, "integer >= 1, got 2.5"),
    ({"default_ttl": 5, "sweep_limit": 10**6}, "at most 100,000"),
    ({"default_ttl": 5, "sweep_interval_minutes": 0}, "sweep_interval_minutes"),
    ("delete", "retention must be a dict"),
]


@pytest.mark.parametrize(("policy", "message"), BAD_POLICIES)
def test_a_bad_policy_is_refused_at_construction(
    db_uri: str, policy: Any, message: str
) -> None:
    with psycopg.Connection.connect(db_uri, autocommit=True) as conn:
        with pytest.raises((ValueError, TypeError)) as raised:
            PostgresSaver(conn, retention=policy)
        assert message in str(raised.value)
        with pytest.raises((ValueError, TypeError)):
            AsyncPostgresSaver(conn, retention=policy)  # type: ignore[arg-type]


def test_bad_prune_arguments_and_a_sweep_without_policy_change_nothing(
    db_uri: str,
) -> None:
    with sync_saver("pool", db_uri) as saver:
        run_graphs(saver, run_ids(["t"], 2))
        before = dump(db_uri)
        with pytest.raises(ValueError, match=r'"keep_last" needs keep=N'):
            saver.prune(["t"], strategy="keep_last")
        with pytest.raises(ValueError, match=r"integer >= 1\); got -2"):
            saver.prune(["t"], strategy="keep_last", keep=-2)
        with pytest.raises(ValueError, match='goes with strategy "keep_last" only'):
            saver.prune(["t"], strategy="keep_latest", keep=2)
        with pytest.raises(ValueError, match="has no retention policy"):
            saver.sweep()
        with pytest.raises(ValueError, match="has no retention policy"):
            saver.start_sweeper()
        assert dump(db_uri) == before


# -- prune keep_last -------------------------------------------------------------


def _check_keep_last(saver: Any, uri: str, before: dict[str, Any], keep: int) -> None:
    counts = per_namespace(uri, "t")
    # The newest `keep`, and the ancestors their delta log is read from (a
    # snapshot every 3 steps).
    assert keep <= counts[""] <= keep + 3
    # A subgraph call's namespace goes with the root checkpoint it started
    # from: only calls started from a kept root checkpoint remain.
    assert len(counts) - 1 < len(before["namespaces"]) - 1
    after = history(saver, "t")
    assert len(after) == counts[""]
    assert [view(s) for s in after[:keep]] == [
        view(s) for s in before["history"][:keep]
    ]
    assert after[-1].parent_config is None
    assert orphans(uri) == (0, 0)
    # Another thread is untouched.
    assert per_namespace(uri, "other") == before["other"]


def test_prune_keep_last_keeps_the_newest_n_and_their_state(
    saver: PostgresSaver, db_uri: str
) -> None:
    run_graphs(saver, run_ids(["t", "other"], 4))
    before = {
        "history": history(saver, "t"),
        "namespaces": per_namespace(db_uri, "t"),
        "other": per_namespace(db_uri, "other"),
    }
    assert len(before["history"]) > 10
    saver.prune(["t"], strategy="keep_last", keep=5)
    _check_keep_last(saver, db_uri, before, 5)
    # Pruning again keeps the same; the graph carries on from the newest.
    kept = dump(db_uri)
    saver.prune(["t"], strategy="keep_last", keep=5)
    assert dump(db_uri) == kept
    log = graph(saver).get_state(run_config("t")).values["log"]
    graph(saver).invoke({"log": ["more"]}, run_config("t"))
    state = graph(saver).get_state(run_config("t"))
    assert state.values["log"][: len(log) + 1] == [*log, "more"]
    assert len(state.values["log"]) == len(log) + 3


async def test_prune_keep_last_async(async_kind: str, db_uri: str) -> None:
    async with async_saver(async_kind, db_uri) as saver:
        g = graph(saver)
        for run in range(3):
            inputs: dict[str, Any] = {"log": [f"r{run}"], "items": [run]}
            if run == 0:
                inputs["n"] = 0
            await g.ainvoke(inputs, run_config("t"))
        before = [view(s) async for s in g.aget_state_history(run_config("t"))]
        await saver.aprune(["t"], strategy="keep_last", keep=4)
        after = [view(s) async for s in g.aget_state_history(run_config("t"))]
        assert after[:4] == before[:4]
        assert 4 <= len(after) <= 7 < len(before)
        assert orphans(db_uri) == (0, 0)


def test_keep_last_keeps_every_kept_checkpoints_delta_chain(db_uri: str) -> None:
    """With a snapshot every 3 steps, the oldest kept checkpoints need
    ancestors beyond the newest N: they stay, and every kept state reads as
    before."""
    with sync_saver("conn", db_uri) as saver:
        run_graphs(saver, run_ids(["t"], 5))
        before = history(saver, "t")
        saver.prune(["t"], strategy="keep_last", keep=2)
        after = history(saver, "t")
        # More than 2 remain in the root namespace: the delta chain.
        assert per_namespace(db_uri, "t")[""] > 2
        # Each of the newest two reads exactly as before, delta log included.
        by_id = {s.config["configurable"]["checkpoint_id"]: view(s) for s in after}
        for snapshot in before[:2]:
            assert by_id[snapshot.config["configurable"]["checkpoint_id"]] == view(
                snapshot
            )
        assert orphans(db_uri) == (0, 0)


def test_prune_removes_writes_that_arrived_after_their_checkpoint_went(
    saver: PostgresSaver, db_uri: str
) -> None:
    """A graph's background write can commit just after a sweep deleted its
    checkpoint: the next prune removes it. A write saved before its
    checkpoint (newer than every saved one) stays."""
    for run in range(3):
        _counter(saver).invoke(_tick(run), run_config("t"))
    oldest = list(saver.list(run_config("t")))[-1].config
    saver.prune(["t"], strategy="keep_last", keep=2)
    saver.put_writes(oldest, [("ticks", [9])], "late-task")
    head = saver.get_tuple(run_config("t"))
    assert head is not None
    early = {
        "configurable": {
            "thread_id": "t",
            "checkpoint_ns": "",
            "checkpoint_id": head.config["configurable"]["checkpoint_id"] + "-next",
        }
    }
    saver.put_writes(early, [("ticks", [10])], "early-task")
    assert orphans(db_uri) == (0, 2)
    saver.prune(["t"], strategy="keep_last", keep=2)
    assert orphans(db_uri) == (0, 1)
    rows = count(
        db_uri, "SELECT count(*) FROM checkpoint_writes WHERE task_id = 'early-task'"
    )
    assert rows == 1


# -- sweep -------------------------------------------------------------------------


def test_sweep_deletes_idle_threads_only(saver: PostgresSaver, db_uri: str) -> None:
    run_graphs(saver, run_ids(["idle-1", "idle-2", "busy"], 2))
    age(db_uri, "idle-1", "idle-2")
    busy = dump(db_uri)
    policy: RetentionConfig = {"strategy": "delete", "default_ttl": 60}
    saver = PostgresSaver(saver.conn, saver.pipe, retention=policy)
    removed = saver.sweep()
    assert removed.threads == 2 and removed.skipped == 0
    assert removed.checkpoints == sum(
        1 for row in busy["checkpoints"] if "idle-" in row
    )
    assert removed.writes == sum(
        1 for row in busy["checkpoint_writes"] if "idle-" in row
    )
    assert removed.blobs == sum(1 for row in busy["checkpoint_blobs"] if "idle-" in row)
    after = dump(db_uri)
    assert after == {
        table: [row for row in rows if "idle-" not in row]
        for table, rows in busy.items()
    }
    assert saver.sweep() == SweepResult()


async def test_asweep_keeps_the_latest_of_idle_threads(
    async_kind: str, db_uri: str
) -> None:
    policy: RetentionConfig = {"strategy": "keep_latest", "default_ttl": 60}
    async with async_saver(async_kind, db_uri, retention=policy) as saver:
        g = graph(saver)
        for thread_id in ("idle", "busy"):
            for run in range(2):
                inputs: dict[str, Any] = {"log": [f"r{run}"], "items": [run]}
                if run == 0:
                    inputs["n"] = 0
                await g.ainvoke(inputs, run_config(thread_id))
        age(db_uri, "idle")
        busy_before = per_namespace(db_uri, "busy")
        state = view(await g.aget_state(run_config("idle")))
        removed = await saver.asweep()
        assert removed.threads == 1 and removed.checkpoints > 0
        assert view(await g.aget_state(run_config("idle"))) == state
        assert per_namespace(db_uri, "busy") == busy_before
        assert set(per_namespace(db_uri, "idle").values()) == {1}
        # Pruned already: the next sweep does not even visit it.
        assert await saver.asweep() == SweepResult()


def test_keep_last_without_ttl_trims_every_thread(db_uri: str) -> None:
    policy: RetentionConfig = {"strategy": "keep_last", "keep": 3, "sweep_limit": 2}
    with sync_saver("pool", db_uri, retention=policy) as saver:
        threads = [f"t{i}" for i in range(5)]
        for thread_id in threads:
            for run in range(3):
                _counter(saver).invoke(_tick(run), run_config(thread_id))
        removed = saver.sweep()
        assert removed.threads == 5
        for thread_id in threads:
            assert per_namespace(db_uri, thread_id)[""] == 3
        assert orphans(db_uri) == (0, 0)


def _log_deleting_transactions(uri: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE deleted_by (txid bigint, thread_id text);
            CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO deleted_by VALUES (txid_current(), OLD.thread_id);
                RETURN OLD;
            END $$;
            CREATE TRIGGER log_delete AFTER DELETE ON checkpoints
                FOR EACH ROW EXECUTE FUNCTION log_delete();
            """
        )


def test_no_sweep_transaction_holds_more_than_sweep_limit_threads(
    db_uri: str,
) -> None:
    policy: RetentionConfig = {"default_ttl": 1, "sweep_limit": 3}
    with sync_saver("conn", db_uri, retention=policy) as saver:
        threads = [f"t{i:02}" for i in range(8)]
        run_graphs(saver, run_ids(threads, 1))
        age(db_uri, *threads)
        _log_deleting_transactions(db_uri)
        assert saver.sweep().threads == 8
    with psycopg.connect(db_uri) as conn:
        sizes = conn.execute(
            "SELECT count(DISTINCT thread_id) FROM deleted_by GROUP BY txid "
            "ORDER BY min(thread_id)"
        ).fetchall()
    assert [n for (n,) in sizes] == [3, 3, 2]
    assert count(db_uri, "SELECT count(*) FROM checkpoints") == 0


def test_a_thread_written_to_during_its_sweep_is_not_deleted(
    db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy: RetentionConfig = {"strategy": "delete", "default_ttl": 60}
    with sync_saver("pool", db_uri, retention=policy) as saver:
        run_graphs(saver, run_ids(["a", "b", "c"], 1))
        age(db_uri, "a", "b", "c")
        batch = saver._sweep_batch
        log = graph(saver).get_state(run_config("b")).values["log"]

        def resumed_meanwhile(sweep: Any, rows: Any) -> SweepResult:
            # After the sweep picked its threads, a graph resumes "b".
            graph(saver).invoke({"log": ["back"]}, run_config("b"))
            return batch(sweep, rows)

        monkeypatch.setattr(saver, "_sweep_batch", resumed_meanwhile)
        removed = saver.sweep()
        assert (removed.threads, removed.skipped) == (2, 1)
        state = graph(saver).get_state(run_config("b"))
        assert state.values["log"][: len(log) + 1] == [*log, "back"]
        assert per_namespace(db_uri, "a") == per_namespace(db_uri, "c") == {}
        assert orphans(db_uri) == (0, 0)


def test_a_thread_a_writer_holds_is_left_for_the_next_sweep(db_uri: str) -> None:
    policy: RetentionConfig = {"strategy": "delete", "default_ttl": 60}
    with sync_saver("pool", db_uri, retention=policy) as saver:
        run_graphs(saver, run_ids(["held", "free"], 1))
        age(db_uri, "held", "free")
        with psycopg.connect(db_uri) as writer:
            writer.execute(
                "SELECT 1 FROM checkpoint_writes WHERE thread_id = 'held' "
                "LIMIT 1 FOR UPDATE"
            )
            removed = saver.sweep()
            assert (removed.threads, removed.skipped) == (1, 1)
            assert per_namespace(db_uri, "held") != {}
        assert saver.sweep().threads == 1
        assert per_namespace(db_uri, "held") == {}


def test_concurrent_sweepers_share_the_work(db_uri: str) -> None:
    threads = [f"t{i:02}" for i in range(30)]
    policy: RetentionConfig = {"strategy": "delete", "default_ttl": 5, "sweep_limit": 4}
    with sync_saver("pool", db_uri) as saver:
        run_graphs(saver, run_ids(threads, 1))
    age(db_uri, *threads)
    total = count(db_uri, "SELECT count(*) FROM checkpoints")
    results: list[SweepResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def sweeper() -> None:
        with sync_saver("conn", db_uri, retention=policy) as mine:
            start.wait()
            try:
                results.append(mine.sweep())
            except BaseException as error:  # reported below
                errors.append(error)

    workers = [threading.Thread(target=sweeper) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sum(r.threads for r in results) == 30
    assert sum(r.checkpoints for r in results) == total
    assert count(db_uri, "SELECT count(*) FROM checkpoints") == 0


class Counter(TypedDict):
    n: int
    ticks: Annotated[list[int], operator.add]


def _bump(state: Counter) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def _tick(run: int) -> dict[str, Any]:
    """A run's input: the first one starts the count."""
    return {"n": 0, "ticks": [0]} if run == 0 else {"ticks": [run]}


def _counter(saver: Any) -> Any:
    builder = StateGraph(Counter)
    builder.add_node("bump", _bump)
    builder.add_edge(START, "bump")
    return builder.compile(checkpointer=saver)


def test_sweeps_never_fail_live_graphs_on_the_same_threads(db_uri: str) -> None:
    """Graphs run on four threads while sweeps trim those very threads:
    neither side raises (no deadlock, no serialization failure) and every
    graph sees each of its own earlier runs."""
    policy: RetentionConfig = {"strategy": "keep_last", "keep": 2, "sweep_limit": 2}
    stop = threading.Event()
    errors: list[BaseException] = []
    sweeps: list[SweepResult] = []
    runs = {f"live-{i}": 0 for i in range(4)}
    with ConnectionPool(
        db_uri, min_size=5, max_size=6, kwargs={"autocommit": True}
    ) as pool:
        saver = PostgresSaver(pool, retention=policy)

        def run(thread_id: str) -> None:
            app = _counter(saver)
            try:
                while not stop.is_set():
                    n = runs[thread_id]
                    app.invoke(_tick(n), run_config(thread_id))
                    state = app.get_state(run_config(thread_id)).values
                    assert state["n"] == n + 1, (thread_id, state)
                    runs[thread_id] = n + 1
            except BaseException as error:
                errors.append(error)
                stop.set()

        def sweep() -> None:
            try:
                while not stop.is_set():
                    sweeps.append(saver.sweep())
            except BaseException as error:
                errors.append(error)
                stop.set()

        workers = [threading.Thread(target=run, args=(t,)) for t in runs]
        workers.append(threading.Thread(target=sweep))
        for worker in workers:
            worker.start()
        time.sleep(4)
        stop.set()
        for worker in workers:
            worker.join()
        assert errors == []
        assert sum(r.checkpoints for r in sweeps) > 0
        # A graph's background writes may land just after a sweep deleted
        # their checkpoint; pruning (by sweep or by hand) removes them.
        saver.prune(list(runs), strategy="keep_last", keep=2)
        for thread_id, n in runs.items():
            assert n > 3
            assert per_namespace(db_uri, thread_id) == {"": 2}
            assert _counter(saver).get_state(run_config(thread_id)).values["n"] == n
        assert orphans(db_uri) == (0, 0)


# -- background sweepers -------------------------------------------------------------


def _wait_until(check: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def failing_then_fixed(db_uri: str) -> Iterator[tuple[Any, Any]]:
    """Hide the checkpoints table (sweeps fail), then bring it back."""

    def hide() -> None:
        with psycopg.connect(db_uri, autocommit=True) as conn:
            conn.execute("ALTER TABLE checkpoints RENAME TO hidden_checkpoints")

    def restore() -> None:
        with psycopg.connect(db_uri, autocommit=True) as conn:
            conn.execute("ALTER TABLE hidden_checkpoints RENAME TO checkpoints")

    yield hide, restore


def test_sweeper_thread_retries_after_a_failed_sweep(
    db_uri: str,
    failing_then_fixed: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hide, restore = failing_then_fixed
    policy: RetentionConfig = {"default_ttl": 60, "sweep_interval_minutes": 0.002}
    with sync_saver("pool", db_uri, retention=policy) as saver:
        run_graphs(saver, run_ids(["old"], 1))
        age(db_uri, "old")
        hide()
        with caplog.at_level(logging.INFO, "langgraph.checkpoint.postgres.sweeper"):
            future = saver.start_sweeper()
            assert saver.start_sweeper() is future  # already running
            _wait_until(lambda: "retention sweeper failed" in caplog.text)
            restore()
            _wait_until(lambda: per_namespace(db_uri, "old") == {})
            _wait_until(lambda: "retention sweeper: 1 threads" in caplog.text)
        assert saver.stop_sweeper(timeout=10)
        assert future.done() and not future.cancelled()
        running = [t for t in threading.enumerate() if "retention-sweeper" in t.name]
        assert running == []


async def test_sweeper_task_retries_after_a_failed_sweep(
    db_uri: str,
    failing_then_fixed: tuple[Any, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hide, restore = failing_then_fixed
    policy: RetentionConfig = {"default_ttl": 60, "sweep_interval_minutes": 0.002}
    async with async_saver("apool", db_uri, retention=policy) as saver:
        await _counter(saver).ainvoke(_tick(0), run_config("old"))
        age(db_uri, "old")
        hide()
        with caplog.at_level(logging.INFO, "langgraph.checkpoint.postgres.sweeper"):
            task = await saver.start_sweeper()
            assert await saver.start_sweeper() is task
            while "retention sweeper failed" not in caplog.text:
                await asyncio.sleep(0.05)
            restore()
            while per_namespace(db_uri, "old") != {}:
                await asyncio.sleep(0.05)
        assert await saver.stop_sweeper(timeout=10)
        assert task.done() and not task.cancelled()


def test_from_conn_string_stops_its_sweeper(db_uri: str) -> None:
    policy: RetentionConfig = {"default_ttl": 60, "sweep_interval_minutes": 60}
    with PostgresSaver.from_conn_string(db_uri, retention=policy) as saver:
        with pytest.raises(ValueError, match="sweep_interval_minutes must be"):
            saver.start_sweeper(sweep_interval_minutes=-1)
        saver.start_sweeper()
        assert [t for t in threading.enumerate() if "retention-sweeper" in t.name]
    assert not [t for t in threading.enumerate() if "retention-sweeper" in t.name]


def test_cancelling_the_future_stops_the_sweeper(db_uri: str) -> None:
    policy: RetentionConfig = {"default_ttl": 60, "sweep_interval_minutes": 60}
    with sync_saver("pool", db_uri, retention=policy) as saver:
        future = saver.start_sweeper()
        future.cancel()
        _wait_until(
            lambda: (
                not [t for t in threading.enumerate() if "retention-sweeper" in t.name]
            )
        )
        assert saver.start_sweeper() is not future  # a new one
        assert saver.stop_sweeper(timeout=10)


async def test_async_sweeps_never_fail_live_graphs_on_the_same_threads(
    db_uri: str,
) -> None:
    """The async saver: graphs run as tasks on four threads while sweeps trim
    those very threads, on one pool."""
    policy: RetentionConfig = {"strategy": "keep_last", "keep": 2, "sweep_limit": 2}
    runs = {f"live-{i}": 0 for i in range(4)}
    sweeps: list[SweepResult] = []
    async with async_saver("apool", db_uri, retention=policy) as saver:
        deadline = asyncio.get_running_loop().time() + 3

        async def run(thread_id: str) -> None:
            app = _counter(saver)
            while asyncio.get_running_loop().time() < deadline:
                n = runs[thread_id]
                await app.ainvoke(_tick(n), run_config(thread_id))
                state = (await app.aget_state(run_config(thread_id))).values
                assert state["n"] == n + 1, (thread_id, state)
                runs[thread_id] = n + 1

        async def sweep() -> None:
            while asyncio.get_running_loop().time() < deadline:
                sweeps.append(await saver.asweep())

        await asyncio.gather(*(run(t) for t in runs), sweep())
        assert sum(r.checkpoints for r in sweeps) > 0
        await saver.aprune(list(runs), strategy="keep_last", keep=2)
        for thread_id, n in runs.items():
            assert n > 3
            assert per_namespace(db_uri, thread_id) == {"": 2}
        assert orphans(db_uri) == (0, 0)
