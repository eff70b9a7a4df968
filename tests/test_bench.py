"""The benchmark's own code (bench/): the floors and companions its workers
time, how the runner turns their numbers into targets met or not, and the
report writer, which must keep the sections and blocks other scripts write.

No speed is asserted here: targets live in the benchmark alone.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# The bench scripts import each other as top-level modules, as they run.
sys.path.insert(0, str(BENCH))

import catalog  # noqa: E402
import run as bench  # noqa: E402
import workloads  # noqa: E402

SCALE_BLOCK = (
    "<!-- scale:begin -->\n"
    "## Store at scale? no: a million checkpoints\n"
    "\n"
    "| metric | value |\n"
    "| --- | ---: |\n"
    "| get_tuple | 0.4 ms |\n"
    "<!-- scale:end -->"
)


def _result(ops_per_s: float, **numbers: float) -> dict[str, Any]:
    return {"ops_per_s": ops_per_s, "revision": "abc1234", **numbers}


def _outcome(name: str, reps: list[dict[str, dict[str, Any]]]) -> bench.Outcome:
    outcome = bench.Outcome(catalog.BY_NAME[name])
    for got in reps:
        outcome.add(got)
    return outcome


def _info() -> bench.RunInfo:
    return bench.RunInfo(
        mode="quick",
        command=".venv/bin/python bench/run.py --quick",
        started=datetime(2026, 12, 1, tzinfo=timezone.utc),
        elapsed=60.0,
        pg_version="PostgreSQL 18",
        server="test",
        revisions=("abc1234", "abc1234"),
        loads=("0.10", "0.20"),
        versions={"ours": {}, "baseline": {}},
        reps=2,
        memory_reps=1,
        seconds=0.5,
        slice_seconds=0.25,
    )


# -- targets -----------------------------------------------------------------


def test_targets_bound_their_measure_in_its_direction() -> None:
    assert catalog.ratio(3.0).met(3.0) and not catalog.ratio(3.0).met(2.99)
    assert catalog.floor(1.3).met(1.3) and not catalog.floor(1.3).met(1.31)
    assert catalog.share(0.5).met(0.4) and not catalog.share(0.5).met(0.6)
    assert catalog.floor(1.15).text() == "<= 1.15x floor"


def test_every_read_and_write_workload_has_a_floor() -> None:
    for name in ("put", "aput", "put_writes", "aput_writes", "list_all"):
        assert catalog.BY_NAME[name].companions == catalog.FLOOR
    for name in ("get_tuple_latest", "aget_tuple_random", "get_tuple_legacy"):
        assert catalog.BY_NAME[name].companions == catalog.FLOOR
    modes = {s.durability for s in catalog.SPECS if s.companions == catalog.GRAPH}
    assert modes == {"sync", "async", "exit"}


def test_floor_multiples_and_met_are_computed_from_the_runs() -> None:
    reps = [
        {
            "ours": _result(1000, latency_us=260.0, floor_us=200.0),
            "baseline": _result(800, latency_us=500.0, floor_us=200.0),
        },
        {
            "ours": _result(1100, latency_us=240.0, floor_us=200.0),
            "baseline": _result(900, latency_us=480.0, floor_us=240.0),
        },
    ]
    outcome = _outcome("get_tuple_latest", reps)
    assert outcome.floors["ours"] == pytest.approx([1.3, 1.2])
    assert outcome.floor("baseline") == pytest.approx(2.25)
    assert outcome.measured() == pytest.approx(1.25)
    assert outcome.met() == "met"
    slower = _outcome("put", reps)  # the same runs against <= 1.15x
    assert slower.met() == "NOT met"
    row = next(
        line
        for line in bench.results_table([outcome, slower]).splitlines()
        if line.startswith("| put ")
    )
    assert "| <= 1.15x floor | 1.25x | NOT met | 1.20–1.30 |" in row


def test_graph_shares_are_latency_minus_in_memory() -> None:
    reps = [
        {
            "ours": _result(90, latency_us=11_000.0, memory_us=4_000.0),
            "baseline": _result(60, latency_us=18_000.0, memory_us=4_000.0),
        }
    ]
    outcome = _outcome("graph", reps)
    assert outcome.shares == pytest.approx([0.5])
    assert outcome.met() == "met"
    table = bench.graphs_table([outcome])
    assert "| graph | async | 11.0 | 18.0 | 4.0 | — | 7.0 | 14.0 | 0.50x |" in table


def test_a_workload_without_runs_has_no_data() -> None:
    outcome = bench.Outcome(catalog.BY_NAME["list_20"])
    assert outcome.met() == "no data"
    assert bench.Outcome(catalog.BY_NAME["get_tuple_legacy"]).met() == "—"


# -- the report --------------------------------------------------------------


def _report(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_text(text)
    return path


def test_the_report_keeps_the_scale_block_verbatim(tmp_path: Path) -> None:
    original = (
        "# Benchmark results: old\n\nold table\n"
        "\n## Store: old\n\nstore table\n"
        "\n## Soak: kept\n\nsoak table\n"
        f"\n{SCALE_BLOCK}\n"
    )
    path = _report(tmp_path, original)
    reps = [{"ours": _result(2.0), "baseline": _result(1.0)}]
    checkpoint = _outcome("list_all", reps)
    bench.write_report(path, [checkpoint], _info())
    first = path.read_text()
    assert first.endswith(f"\n\n{SCALE_BLOCK}\n")
    assert first.count("<!-- scale:begin -->") == 1
    assert "old table" not in first
    assert "\n## Store: old\n\nstore table\n" in first
    assert "\n## Soak: kept\n\nsoak table\n" in first
    # The store's own run rewrites its section; the block stays, once.
    store = _outcome("store_get", reps)
    bench.write_report(path, [store], _info())
    second = path.read_text()
    assert "store table" not in second
    assert "\n## Soak: kept\n\nsoak table\n" in second
    assert second.endswith(f"\n\n{SCALE_BLOCK}\n")
    assert second.count(SCALE_BLOCK) == 1
    bench.write_report(path, [store], _info())
    assert path.read_text() == second


def test_the_report_keeps_a_block_without_soak_or_end_marker(tmp_path: Path) -> None:
    # No soak section: the block would otherwise fall into the store's.
    path = _report(tmp_path, f"# head\n\n## Store: old\n\nstore\n\n{SCALE_BLOCK}\n")
    store = _outcome("store_get", [{"ours": _result(2.0), "baseline": _result(1.0)}])
    bench.write_report(path, [store], _info())
    assert path.read_text().endswith(f"\n\n{SCALE_BLOCK}\n")
    # A block being written (no end marker yet) is kept to the end.
    unfinished = "<!-- scale:begin -->\n## Scale\n\nhalf a table"
    path = _report(tmp_path, f"# head\n\n{unfinished}")
    bench.write_report(path, [store], _info())
    assert path.read_text().endswith(f"\n\n{unfinished}\n")


# -- the worker's timing -----------------------------------------------------


def test_bursts_alternate_and_add_up() -> None:
    got = list(workloads.bursts(0.2, ["", "floor"]))
    order = ["", "floor", "floor", "", "", "floor", "floor", ""]
    assert [name for name, _ in got] == order
    assert sum(length for name, length in got if name == "") == pytest.approx(0.2)
    floor_time = sum(length for name, length in got if name == "floor")
    assert floor_time == pytest.approx(0.2 * workloads.COMPANION_SHARE)
    assert list(workloads.bursts(0.01, ["only"])) == [("only", 0.01)]


def test_companions_are_timed_beside_the_workload() -> None:
    calls = {"main": 0, "floor": 0}

    def main() -> None:
        calls["main"] += 1

    def floor() -> None:
        calls["floor"] += 1

    clock = workloads.Clock(0.1, 0.01)
    result = workloads.run_for(main, clock, {"floor": floor})
    assert result["ops"] > 0 and result["floor_ops"] > 0
    assert result["floor_us"] > 0 and result["latency_us"] > 0
    assert calls["floor"] > result["floor_ops"]  # the warm-up counts apart


# -- the workers' floors, on a database --------------------------------------


def _run(name: str, uri: str) -> dict[str, Any]:
    return workloads.WORKLOADS[name](uri, workloads.Clock(0.1, 0.02))


def test_the_put_floors_store_the_same_rows(db_uri: str) -> None:
    put = _run("put", db_uri)
    writes = _run("aput_writes", db_uri)
    with psycopg.connect(db_uri) as conn:
        blob_rows, checkpoint_rows = conn.execute(
            "SELECT (SELECT count(*) FROM bench_floor_blobs),"
            " (SELECT count(*) FROM bench_floor_checkpoints)"
        ).fetchone()  # type: ignore[misc]
        stored = conn.execute(
            "SELECT octet_length(blob) FROM checkpoint_blobs"
            " WHERE thread_id = 'put' AND channel = 'messages' LIMIT 1"
        ).fetchone()
        floor_blob = conn.execute(
            "SELECT octet_length(blob) FROM bench_floor_blobs LIMIT 1"
        ).fetchone()
        write_rows = conn.execute("SELECT count(*) FROM bench_floor_writes").fetchone()
    # One blob (the message list) per checkpoint, every call committed.
    assert blob_rows == checkpoint_rows >= put["floor_ops"]
    assert stored is not None and floor_blob is not None
    assert abs(stored[0] - floor_blob[0]) < 200  # a message window of either
    assert write_rows is not None and write_rows[0] >= 3 * writes["floor_ops"]
    for result in (put, writes):
        assert result["floor_us"] > 0 and result["floor_bytes"] > 0


def test_the_read_floor_returns_what_get_tuple_reads(db_uri: str) -> None:
    result = _run("get_tuple_random", db_uri)
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id, octet_length(data) FROM bench_floor_read"
        ).fetchall()
        blob = conn.execute(
            "SELECT octet_length(blob) FROM checkpoint_blobs"
            " WHERE thread_id = 'history' AND channel = 'messages' LIMIT 1"
        ).fetchone()
    assert len(rows) == workloads.HISTORY
    assert blob is not None
    # Each row holds the checkpoint's JSON, its message list and its writes.
    assert all(size > blob[0] + 500 for _, size in rows)
    assert result["floor_bytes"] == pytest.approx(
        sum(size for _, size in rows) / len(rows), rel=0.2
    )
    assert result["latency_us"] > 0 and result["floor_us"] > 0


def test_graphs_run_beside_in_memory_and_sqlite(db_uri: str) -> None:
    for name in ("graph_sync", "agraph_exit"):
        result = _run(name, db_uri)
        assert result["memory_ops"] > 0 and result["sqlite_ops"] > 0
        assert result["latency_us"] > 0 and result["memory_us"] > 0
