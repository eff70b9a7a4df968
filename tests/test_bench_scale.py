"""``make bench-scale`` (bench/scale.py) on a small database.

The benchmark's code path at 20,000 checkpoints over 200 threads, on the test
server: the generated rows are what the saver stores (ids, times, parent
links, blobs and writes that read back), and a whole run produces every
section of the report with figures that make sense. Speed targets are the
benchmark's business, not these tests'.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langgraph.checkpoint.postgres import PostgresSaver
from tests.dbcheck import orphans
from tests.upstream import upstream_python

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "scale.py"
CHECKPOINTS = 20_000
THREADS = 200
PER_THREAD = CHECKPOINTS // THREADS
IDLE_SHARE = 0.3

# What LangGraph writes as `ts`: datetime.now(timezone.utc).isoformat().
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
# 100 ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
UUID_EPOCH_OFFSET = 0x01B21DD213814000


def _load_scale() -> ModuleType:
    """bench/scale.py, imported by path (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _uuid6_time(checkpoint_id: str) -> datetime:
    """The time a uuid6 checkpoint id was made at."""
    value = uuid.UUID(checkpoint_id)
    assert value.version == 6, checkpoint_id
    ticks = (value.int >> 80) << 12 | (value.int >> 64) & 0x0FFF
    micros = (ticks - UUID_EPOCH_OFFSET) // 10
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)


def test_generated_rows_are_what_the_saver_stores(db_uri: str) -> None:
    scale = _load_scale()
    size = scale.Scale(CHECKPOINTS, THREADS, 20, IDLE_SHARE)
    now = datetime.now(timezone.utc)
    scale.generate(db_uri, size, now)

    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            """SELECT thread_id, checkpoint_id, parent_checkpoint_id,
                checkpoint ->> 'id', checkpoint ->> 'ts', metadata
            FROM checkpoints ORDER BY thread_id, checkpoint_id"""
        ).fetchall()
    assert len(rows) == CHECKPOINTS
    threads: dict[str, list[Any]] = {}
    for row in rows:
        threads.setdefault(row[0], []).append(row)
    assert len(threads) == THREADS
    newest_times = []
    for thread_id, history in threads.items():
        assert len(history) == PER_THREAD, thread_id
        times = []
        for n, (_, checkpoint_id, parent, json_id, ts, metadata) in enumerate(history):
            assert json_id == checkpoint_id
            assert ISO_UTC.match(ts), ts
            stamp = datetime.fromisoformat(ts)
            # The id is a uuid6 made at the checkpoint's time (100 ns apart
            # at most, its resolution being finer than ts's microseconds).
            assert abs(_uuid6_time(checkpoint_id) - stamp) < timedelta(microseconds=1)
            times.append(stamp)
            # LangGraph links each checkpoint to the one before it.
            assert parent == (history[n - 1][1] if n else None)
            assert set(metadata) == {"source", "step", "parents", "user"}
            assert re.fullmatch(r"user-\d+", metadata["user"])
        # Ids in order are times in order: the newest id is the latest.
        assert times == sorted(times) and len(set(times)) == len(times)
        newest_times.append(times[-1])
    # The idle threads last ran weeks ago, the others during the last day.
    idle = [t for t in newest_times if t < now - timedelta(days=14)]
    recent = [t for t in newest_times if t > now - timedelta(days=1)]
    assert len(idle) == round(THREADS * IDLE_SHARE)
    assert len(idle) + len(recent) == THREADS
    assert orphans(db_uri) == (0, 0)

    # The saver reads a thread back whole: messages from blobs, the
    # counter inline, its pending writes, its history.
    thread_id = rows[0][0]
    with PostgresSaver.from_conn_string(db_uri) as saver:
        config = {"configurable": {"thread_id": thread_id}}
        history = list(saver.list(config))
        latest = saver.get_tuple(config)
    assert [t.config["configurable"]["checkpoint_id"] for t in history] == [
        r[1] for r in reversed(threads[thread_id])
    ]
    assert latest is not None and latest.config == history[0].config
    values = latest.checkpoint["channel_values"]
    messages = values["messages"]
    assert len(messages) == scale.WINDOW
    assert {type(m) for m in messages} <= {AIMessage, HumanMessage, ToolMessage}
    assert isinstance(values["turns"], int)
    assert any(t.pending_writes for t in history)
    users = {t.metadata["user"] for t in saver_list_users(db_uri, "user-7")}
    assert users == {"user-7"}


def saver_list_users(uri: str, user: str) -> list[Any]:
    """The checkpoints of ``user`` across threads."""
    with PostgresSaver.from_conn_string(uri) as saver:
        return list(saver.list(None, filter={"user": user}))


def test_a_small_run_reports_every_section(server_uri: str, tmp_path: Path) -> None:
    upstream = upstream_python(": the benchmark compares list() with it")
    name = f"lgcp_scale_{uuid.uuid4().hex[:12]}"
    figures = tmp_path / "scale.json"
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nother sections\n")
    command = [
        sys.executable,
        str(SCRIPT),
        *("--dsn", server_uri, "--db", name),
        *("--checkpoints", str(CHECKPOINTS), "--threads", str(THREADS)),
        *("--phase-seconds", "1", "--drop", "--json", str(figures)),
        *("--baseline-python", upstream),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout
    for heading in (
        "## Scale: 20,000 checkpoints over 200 threads",
        "### a. `get_tuple`",
        '### b. `list(None, filter={"user": ...}, limit=20)`',
        "### c. A retention sweep under a graph workload",
        "### d. `setup()` on a populated database while writers write",
        "### e. Table and index sizes",
    ):
        assert heading in report, report
    with psycopg.connect(server_uri) as conn:
        major = conn.info.server_version // 10000
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)
        ).fetchall()
    assert f"PostgreSQL {major}" in report
    # --drop: the generated database goes too, as do the copies.
    assert left == []

    got = json.loads(figures.read_text())
    generated = got["info"]["generated"]
    assert generated["reused"] is False
    assert got["rows"]["generated"]["checkpoints"] == CHECKPOINTS
    assert got["rows"]["generated"]["checkpoint_blobs"] > CHECKPOINTS
    assert got["rows"]["generated"]["checkpoint_writes"] > CHECKPOINTS

    reads = got["get_tuple"]
    for side in ("big", "small", "first_reads"):
        assert 0 < reads[side]["median_ms"] <= reads[side]["p99_ms"]
    assert reads["big"]["n"] == reads["small"]["n"] > 0

    # Ours and 3.2.0, each with and without the index (the script checks
    # that they list the same checkpoints of a user).
    lists = [(r["side"], r["database"], r["cached"]) for r in got["lists"]]
    assert lists == [
        ("ours", "with index", False),
        ("ours", "with index", True),
        ("baseline", "with index", False),
        ("ours", "no index", False),
        ("baseline", "no index", False),
    ]
    assert all(r["median_ms"] > 0 and r["n"] > 0 for r in got["lists"])
    assert got["list_ratio"] > 0 and got["list_ratio_cached"] > 0

    # The sweep removed exactly the idle threads, nothing of the workload's.
    sweep = got["sweep"]
    idle = round(THREADS * IDLE_SHARE)
    assert (sweep["threads"], sweep["checkpoints"]) == (idle, idle * PER_THREAD)
    assert sweep["writes"] > 0 and sweep["blobs"] > 0
    assert sweep["alone"]["n"] > 0
    after = got["rows"]["after sweep"]["checkpoints"]
    assert after > CHECKPOINTS - idle * PER_THREAD  # plus what the graphs wrote

    setup = got["setup"]
    assert setup["seconds"] > 0 and setup["before"]["n"] > 0 and setup["after"]["n"] > 0
    assert 0 <= setup["longest_wait_s"] < setup["seconds"] + 60

    stages = got["sizes"]
    assert list(stages) == [
        "generated",
        "after sweep",
        "after VACUUM",
        "after VACUUM FULL",
    ]
    assert "checkpoints_metadata_idx" in stages["generated"]
    assert all(s["total"] > 0 for s in stages.values())
    assert stages["after VACUUM FULL"]["total"] < stages["after VACUUM"]["total"]

    # --write puts the report between the markers, and only there.
    scale = _load_scale()
    scale.write_results("## Scale\n\nfirst\n", results)
    scale.write_results("## Scale\n\nsecond\n", results)
    assert results.read_text() == (
        "# Results\n\nother sections\n\n"
        "<!-- scale:begin -->\n## Scale\n\nsecond\n<!-- scale:end -->\n"
    )
