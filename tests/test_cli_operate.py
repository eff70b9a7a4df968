"""``langgraph-postgres stats`` and ``doctor`` against real databases: one
filled by a real graph, an empty one, ones broken on purpose (an orphan, an
invalid index, a transaction left open), and one behind a real PgBouncer."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.store.postgres._migrations import STORE_MIGRATIONS
from tests.cli_support import CHAT, FAN, STORE_ITEMS, THREADS, run_cli
from tests.conftest import Databases
from tests.pgbouncer import (
    PgBouncer,
    pgbouncer_or_skip,
)

BAD_DSN = "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2"


def scalar(uri: str, query: str) -> Any:
    with psycopg.connect(uri) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]


def execute(uri: str, *queries: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        for query in queries:
            conn.execute(query)


def findings(result: Any, check: str) -> list[dict[str, Any]]:
    return [f for f in result if f["check"] == check]


# -- stats ---------------------------------------------------------------------


def test_stats_on_the_graph_database(graph_db: str) -> None:
    data = run_cli("stats", "--json", dsn=graph_db).json()

    tables = {t["name"]: t for t in data["tables"]}
    assert set(tables) >= {
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "checkpoint_migrations",
        "store",
        "store_migrations",
    }
    for name in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "store"):
        assert tables[name]["rows_exact"] is True
        assert tables[name]["rows"] == scalar(graph_db, f"SELECT count(*) FROM {name}")
        assert tables[name]["table_bytes"] > 0 and tables[name]["index_bytes"] > 0
        assert tables[name]["total_bytes"] >= tables[name]["table_bytes"]
    assert tables["store"]["rows"] == len(STORE_ITEMS) == 4
    assert data["store_present"] is True
    assert {i["name"] for i in data["indexes"]} >= {
        "checkpoints_pkey",
        "checkpoints_metadata_idx",
        "store_pkey",
    }
    assert all(i["valid"] for i in data["indexes"])

    # 4 threads; fan-1's two Send tasks ran in namespaces of their own.
    assert data["threads"] == {
        "count": len(THREADS),
        "subgraph_namespaces": scalar(
            graph_db,
            "SELECT count(DISTINCT (thread_id, checkpoint_ns)) FROM checkpoints "
            "WHERE checkpoint_ns <> ''",
        ),
        "exact": True,
    }
    assert data["threads"]["subgraph_namespaces"] == 2

    biggest = data["biggest_threads"]
    assert biggest["exact"] is True
    assert {t["thread_id"] for t in biggest["threads"]} == set(THREADS)
    sizes = [t["bytes"] for t in biggest["threads"]]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) > 0
    per_thread = {t["thread_id"]: t["checkpoints"] for t in biggest["threads"]}
    assert per_thread[CHAT] == scalar(
        graph_db, f"SELECT count(*) FROM checkpoints WHERE thread_id = '{CHAT}'"
    )

    days = data["checkpoints_per_day"]
    assert days["exact"] is True and len(days["days"]) == 14
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert days["days"][0] == {
        "day": today,
        "checkpoints": tables["checkpoints"]["rows"],
    }
    assert sum(d["checkpoints"] for d in days["days"][1:]) == 0

    assert data["orphans"] == {
        "checked": True,
        "blobs": 0,
        "blob_bytes": 0,
        "writes": 0,
        "write_bytes": 0,
    }
    migrations = {m["history"]: m for m in data["migrations"]}
    assert migrations["checkpoint_migrations"]["current"] == SAVER_MIGRATIONS.latest
    assert migrations["checkpoint_migrations"]["latest"] == SAVER_MIGRATIONS.latest
    assert migrations["store_migrations"]["current"] == STORE_MIGRATIONS.latest
    assert {m["state"] for m in data["migrations"]} == {"current"}


def test_stats_human_output_and_options(graph_db: str) -> None:
    result = run_cli("stats", "--top", "2", "--days", "3", dsn=graph_db)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "threads:             4" in lines
    assert "subgraph namespaces: 2" in lines
    assert any(line.startswith("orphan blobs:  0") for line in lines)
    assert "Biggest threads (exact)" in lines
    biggest = lines.index("Biggest threads (exact)")
    # title, heading, rule, then the two biggest threads and a blank line
    assert lines[biggest + 3].startswith(CHAT)
    assert lines[biggest + 4].startswith(FAN)
    assert lines[biggest + 5] == ""
    assert any(
        line.startswith("checkpoint_migrations") and "current" in line for line in lines
    )
    data = run_cli("stats", "--top", "2", "--days", "3", "--json", dsn=graph_db)
    document = data.json()
    assert len(document["biggest_threads"]["threads"]) == 2
    assert len(document["checkpoints_per_day"]["days"]) == 3


def test_stats_counts_orphans_left_by_a_deleted_checkpoint(graph_db: str) -> None:
    # The newest checkpoint of chat-1 that has pending writes: deleting its
    # row leaves those writes, and the blobs only it referenced, orphaned.
    execute(
        graph_db,
        f"""DELETE FROM checkpoints c WHERE thread_id = '{CHAT}'
        AND checkpoint_id = (SELECT max(checkpoint_id) FROM checkpoints x
            WHERE x.thread_id = '{CHAT}' AND EXISTS (
                SELECT 1 FROM checkpoint_writes w WHERE w.thread_id = x.thread_id
                AND w.checkpoint_ns = x.checkpoint_ns
                AND w.checkpoint_id = x.checkpoint_id))""",
        f"""DELETE FROM checkpoints WHERE thread_id = '{CHAT}' AND checkpoint_id =
        (SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = '{CHAT}')""",
    )
    expected_writes = scalar(
        graph_db,
        """SELECT count(*) FROM checkpoint_writes w WHERE NOT EXISTS (
            SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id
            AND c.checkpoint_ns = w.checkpoint_ns
            AND c.checkpoint_id = w.checkpoint_id)""",
    )
    expected_blobs = scalar(
        graph_db,
        """SELECT count(*) FROM checkpoint_blobs b WHERE NOT EXISTS (
            SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id
            AND c.checkpoint_ns = b.checkpoint_ns
            AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)""",
    )
    assert expected_writes > 0 and expected_blobs > 0

    orphans = run_cli("stats", "--json", dsn=graph_db).json()["orphans"]
    assert orphans["checked"] is True
    assert orphans["writes"] == expected_writes
    assert orphans["blobs"] == expected_blobs
    assert orphans["write_bytes"] > 0 and orphans["blob_bytes"] > 0
    result = run_cli("stats", dsn=graph_db)
    assert f"orphan writes: {expected_writes} (" in result.out


def test_stats_on_a_database_without_tables(empty_db_uri: str) -> None:
    data = run_cli("stats", "--json", dsn=empty_db_uri).json()
    assert data["tables"] == [] and data["threads"] is None
    assert data["store_present"] is False
    assert data["migrations"] == [
        {
            "history": "checkpoint_migrations",
            "part": "saver",
            "current": None,
            "latest": SAVER_MIGRATIONS.latest,
            "state": "not set up",
        }
    ]
    result = run_cli("stats", dsn=empty_db_uri)
    assert result.code == 0
    assert "has setup() run?" in result.out


@pytest.mark.parametrize("command", ["stats", "doctor"])
def test_bad_dsn_is_one_line(command: str) -> None:
    result = run_cli(command, dsn=BAD_DSN)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: cannot connect to the database")
    assert len(result.err.strip().splitlines()) == 1


# -- doctor --------------------------------------------------------------------


def test_doctor_on_a_healthy_database(graph_db: str) -> None:
    result = run_cli("doctor", "--json", dsn=graph_db)
    assert result.code == 0, result.out + result.err
    report = result.json()
    assert all(set(f) == {"check", "status", "detail", "fix"} for f in report)
    assert not [f for f in report if f["status"] == "fail"]
    checks = {f["check"] for f in report}
    assert checks >= {
        "connection",
        "server",
        "pooler",
        "migrations",
        "privileges",
        "indexes",
        "transactions",
    }
    assert findings(report, "pooler")[0]["status"] == "ok"
    assert "direct connection" in findings(report, "pooler")[0]["detail"]
    assert {f["status"] for f in findings(report, "migrations")} == {"ok"}
    assert any(
        "CREATE on schema public" in f["detail"] for f in findings(report, "privileges")
    )
    human = run_cli("doctor", dsn=graph_db)
    assert human.code == 0
    assert "0 failure(s)" in human.out.splitlines()[-1]


def test_doctor_on_an_empty_database_says_to_run_setup(empty_db_uri: str) -> None:
    result = run_cli("doctor", "--json", dsn=empty_db_uri)
    assert result.code == 1
    report = orjson.loads(result.out)
    [failure] = [f for f in report if f["status"] == "fail"]
    assert failure["check"] == "migrations"
    assert "setup() has not run" in failure["detail"]
    assert "langgraph-postgres migrate up" in failure["fix"]

    human = run_cli("doctor", dsn=empty_db_uri)
    assert human.code == 1
    assert any(line.startswith("fail  migrations") for line in human.out.splitlines())
    assert "1 failure(s)" in human.out


def _invalid_index(uri: str, name: str) -> None:
    """Leave ``name`` invalid on checkpoints: a unique CONCURRENTLY build
    that fails on the table's duplicate thread ids."""
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(
            uri, f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON checkpoints (thread_id)"
        )
    assert scalar(
        uri,
        f"SELECT NOT indisvalid FROM pg_index WHERE indexrelid = '{name}'::regclass",
    )


def test_doctor_reports_an_invalid_index(graph_db: str) -> None:
    _invalid_index(graph_db, "checkpoints_thread_unique")
    result = run_cli("doctor", "--json", dsn=graph_db)
    assert result.code == 1
    report = orjson.loads(result.out)
    [failure] = [f for f in report if f["status"] == "fail"]
    assert failure["check"] == "indexes"
    assert "checkpoints_thread_unique" in failure["detail"]
    assert "REINDEX INDEX CONCURRENTLY checkpoints_thread_unique" in failure["fix"]
    stats = run_cli("stats", "--json", dsn=graph_db).json()
    [index] = [i for i in stats["indexes"] if i["name"] == "checkpoints_thread_unique"]
    assert index["valid"] is False


def test_doctor_says_setup_rebuilds_its_own_interrupted_index(graph_db: str) -> None:
    # As if setup()'s online build of migration 12 had been interrupted.
    execute(
        graph_db,
        "DROP INDEX checkpoints_metadata_idx",
        "DELETE FROM checkpoint_migrations WHERE v = 12",
    )
    _invalid_index(graph_db, "checkpoints_metadata_idx")
    report = orjson.loads(run_cli("doctor", "--json", dsn=graph_db).out)
    [index] = [f for f in report if f["check"] == "indexes"]
    assert index["status"] == "fail"
    assert "setup()" in index["fix"] and "builds it again" in index["fix"]
    assert any(
        f["status"] == "fail" and "behind" in f["detail"]
        for f in findings(report, "migrations")
    )

    # ... and it does: after setup(), the doctor finds nothing to fail.
    with PostgresSaver.from_conn_string(graph_db) as saver:
        saver.setup()
    after = run_cli("doctor", "--json", dsn=graph_db)
    assert after.code == 0, after.out
    assert findings(after.json(), "indexes")[0]["status"] == "ok"


def test_doctor_reports_a_long_open_transaction(graph_db: str) -> None:
    with psycopg.connect(graph_db, application_name="stuck-worker") as other:
        # A snapshot kept for the whole transaction: vacuum may not remove
        # rows that it could still see.
        other.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        other.execute("SELECT count(*) FROM checkpoints")  # opens a transaction
        pid = other.info.backend_pid
        time.sleep(1.2)
        result = run_cli("doctor", "--max-xact-age", "1s", "--json", dsn=graph_db)
        default = run_cli("doctor", "--json", dsn=graph_db)
    assert result.code == 0  # a warning, not a failure
    [stuck] = [
        f for f in findings(result.json(), "transactions") if f["status"] == "warn"
    ]
    assert f"pid {pid}" in stuck["detail"] and "stuck-worker" in stuck["detail"]
    assert "idle in transaction" in stuck["detail"]
    assert "holding back vacuum" in stuck["detail"]
    assert f"pg_terminate_backend({pid})" in stuck["fix"]
    # Under the default limit (5 minutes) it is not reported.
    assert {f["status"] for f in findings(default.json(), "transactions")} == {"ok"}


def test_doctor_rejects_a_malformed_duration(graph_db: str) -> None:
    result = run_cli("doctor", "--max-xact-age", "soon", dsn=graph_db)
    assert result.code == 2
    assert "not a duration" in result.err


# -- doctor behind a real PgBouncer (transaction mode) --------------------------


@pytest.fixture(scope="module")
def pgbouncer(server_uri: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test server (as in
    tests/test_poolers.py: skipped without the binary unless
    REQUIRE_PGBOUNCER=1)."""
    with pgbouncer_or_skip(server_uri) as bouncer:
        yield bouncer


def test_doctor_through_pgbouncer_says_what_to_set(
    databases: Databases, pgbouncer: PgBouncer
) -> None:
    uri = pgbouncer.uri(databases.create())
    result = run_cli("doctor", "--json", dsn=uri)
    assert result.code == 0, result.out + result.err
    [pooler] = findings(result.json(), "pooler")
    assert pooler["status"] == "warn"
    assert "transaction pooler" in pooler["detail"]
    assert "prepare_threshold=None" in pooler["fix"]
    assert "without pipeline mode" in pooler["fix"]
