"""``prune``, ``sweep`` and ``migrate``: dry runs that change nothing and count
exactly what the real run removes, and SQL that builds what ``setup()`` does."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import psycopg
import pytest

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.store.postgres import PostgresStore
from tests.cli_support import CHAT, FAN, THREADS, build_graph, fill, run_cli

TABLES = {
    "checkpoints": "checkpoints",
    "writes": "checkpoint_writes",
    "blobs": "checkpoint_blobs",
}


def snapshot(uri: str) -> dict[str, Any]:
    """Row count and a digest of every row of the saver's tables."""
    found: dict[str, Any] = {}
    with psycopg.connect(uri) as conn:
        for kind, table in TABLES.items():
            found[kind] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                f"ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()
    return found


def counts(uri: str) -> dict[str, int]:
    return {kind: n for kind, (n, _digest) in snapshot(uri).items()}


def thread_counts(uri: str, thread_id: str) -> dict[str, int]:
    with psycopg.connect(uri) as conn:
        return {
            kind: conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s", [thread_id]
            ).fetchone()[0]
            for kind, table in TABLES.items()
        }


def state_values(uri: str, thread_id: str) -> Any:
    with PostgresSaver.from_conn_string(uri) as saver:
        graph = build_graph(saver)
        return graph.get_state({"configurable": {"thread_id": thread_id}}).values


def catalog(uri: str, schema: str = "public") -> dict[str, Any]:
    """What setup() lays out: columns, indexes, constraints, versions."""
    with psycopg.connect(uri) as conn:
        columns = conn.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, "
            "is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY 1, 2",
            [schema],
        ).fetchall()
        indexes = conn.execute(
            "SELECT i.tablename, i.indexname, "
            "replace(i.indexdef, %s, ''), x.indisvalid "
            "FROM pg_indexes i JOIN pg_index x "
            "ON x.indexrelid = format('%%I.%%I', i.schemaname, i.indexname)::regclass "
            "WHERE i.schemaname = %s ORDER BY 1, 2",
            [f"{schema}.", schema],
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
            [schema],
        ).fetchall()
        versions = {}
        for table in (
            "checkpoint_migrations",
            "store_migrations",
            "store_ext_migrations",
        ):
            name = f'"{schema}".{table}'
            exists = conn.execute("SELECT to_regclass(%s)", [name]).fetchone()
            versions[table] = (
                [r[0] for r in conn.execute(f"SELECT v FROM {name} ORDER BY v")]
                if exists and exists[0]
                else None
            )
    return {
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "versions": versions,
    }


def psql(uri: str, script: str) -> None:
    """Run ``script`` as a user would: ``psql -v ON_ERROR_STOP=1 -f``."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri, "-f", "-"],
        input=script,
        text=True,
        check=True,
        capture_output=True,
    )


# -- prune ----------------------------------------------------------------------


def test_prune_dry_run_changes_nothing_and_counts_what_yes_removes(
    graph_db: str,
) -> None:
    before, state = snapshot(graph_db), state_values(graph_db, CHAT)
    dry = run_cli("prune", CHAT, "--json", dsn=graph_db).json()
    assert snapshot(graph_db) == before
    assert dry["dry_run"] is True and dry["strategy"] == "keep_latest"
    removed = dry["removed"]
    assert removed["threads"] == 1 and removed["checkpoints"] > 0
    assert removed["bytes"] > 0 and set(dry["threads"]) == {CHAT}

    human = run_cli("prune", CHAT, dsn=graph_db)
    assert human.code == 0, human.err
    assert "would remove" in human.out
    assert "run again with --yes to delete" in human.out
    assert f"{removed['checkpoints']}" in human.out.split(CHAT, 1)[1]
    assert snapshot(graph_db) == before

    done = run_cli("prune", CHAT, "--yes", "--json", dsn=graph_db).json()
    assert done["dry_run"] is False and done["removed"] == removed
    after = counts(graph_db)
    for kind in TABLES:
        assert before[kind][0] - after[kind] == removed[kind], kind
    # keep_latest keeps what the state is read from.
    assert state_values(graph_db, CHAT) == state
    again = run_cli("prune", CHAT, "--json", dsn=graph_db).json()
    assert again["removed"]["checkpoints"] == 0


def test_prune_keep_last_two(graph_db: str) -> None:
    with psycopg.connect(graph_db) as conn:
        newest = conn.execute(
            "SELECT checkpoint_ns, checkpoint_id FROM (SELECT *, row_number() OVER "
            "(PARTITION BY checkpoint_ns ORDER BY checkpoint_id DESC) n "
            "FROM checkpoints WHERE thread_id = %s) c WHERE n <= 2",
            [CHAT],
        ).fetchall()
    before = thread_counts(graph_db, CHAT)
    args = ("prune", CHAT, "--strategy", "keep_last", "--keep", "2", "--json")
    dry = run_cli(*args, dsn=graph_db).json()
    assert thread_counts(graph_db, CHAT) == before
    done = run_cli(*args, "--yes", dsn=graph_db).json()
    assert done["removed"] == dry["removed"] and dry["keep"] == 2
    after = thread_counts(graph_db, CHAT)
    assert {k: before[k] - after[k] for k in TABLES} == {
        k: dry["removed"][k] for k in TABLES
    }
    assert dry["removed"]["checkpoints"] > 0
    with psycopg.connect(graph_db) as conn:
        kept = set(
            conn.execute(
                "SELECT checkpoint_ns, checkpoint_id FROM checkpoints "
                "WHERE thread_id = %s",
                [CHAT],
            ).fetchall()
        )
    assert set(newest) <= kept
    # keep_last 2 keeps more than keep_latest: the dry run of that removes more.
    latest = run_cli("prune", CHAT, "--json", dsn=graph_db).json()
    assert latest["removed"]["checkpoints"] > 0


def test_prune_delete_removes_whole_threads(graph_db: str) -> None:
    rows = {t: thread_counts(graph_db, t) for t in (CHAT, FAN)}
    done = run_cli(
        "prune", CHAT, FAN, "--strategy", "delete", "--yes", "--json", dsn=graph_db
    ).json()
    assert {t: {k: e[k] for k in TABLES} for t, e in done["threads"].items()} == rows
    assert thread_counts(graph_db, CHAT) == dict.fromkeys(TABLES, 0)
    assert done["removed"]["threads"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (("prune", CHAT, "--strategy", "keep_last", "--keep", "0"), "--keep"),
        (("prune", CHAT, "--strategy", "keep_last"), "--keep"),
        (("prune", CHAT, "--keep", "2"), "--keep goes with"),
        (("prune", CHAT, "--strategy", "newest"), "unknown strategy 'newest'"),
        (("prune", CHAT, "no-such-thread"), "no thread 'no-such-thread'"),
        (("sweep", "--ttl", "abc"), "--ttl 'abc' is not a duration"),
        (("sweep", "--ttl", "0"), "not a duration"),
        (("sweep",), "needs one"),
        (("sweep", "--strategy", "bogus", "--ttl", "1d"), "unknown strategy"),
        (("sweep", "--strategy", "keep_last", "--keep", "0"), "--keep"),
        (("sweep", "--strategy", "keep_latest", "--limit", "0"), "--limit"),
    ],
)
def test_bad_values_are_one_line_errors_and_change_nothing(
    graph_db: str, args: tuple[str, ...], message: str
) -> None:
    before = snapshot(graph_db)
    result = run_cli(*args, "--yes", dsn=graph_db)
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: ") and message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert snapshot(graph_db) == before


# -- sweep ----------------------------------------------------------------------


def test_sweep_dry_run_counts_what_the_sweep_removes(graph_db: str) -> None:
    before = snapshot(graph_db)
    args = ("sweep", "--strategy", "keep_latest", "--limit", "1", "--json")
    dry = run_cli(*args, dsn=graph_db).json()
    assert snapshot(graph_db) == before
    assert dry["dry_run"] is True and dry["policy"]["sweep_limit"] == 1
    assert dry["removed"]["threads"] >= 1 and dry["removed"]["bytes"] > 0

    human = run_cli("sweep", "--strategy", "keep_latest", dsn=graph_db)
    assert f"checkpoints: {dry['removed']['checkpoints']}" in human.out
    assert "run again with --yes to delete" in human.out

    done = run_cli(*args, "--yes", dsn=graph_db).json()
    assert done["removed"] == dry["removed"] and done["skipped"] == dry["skipped"]
    after = counts(graph_db)
    for kind in TABLES:
        assert before[kind][0] - after[kind] == dry["removed"][kind], kind
    # Swept threads are not visited again.
    assert run_cli(*args, dsn=graph_db).json()["removed"]["threads"] == 0


def test_sweep_by_ttl(graph_db: str) -> None:
    before = snapshot(graph_db)
    # The graph ran moments ago: nothing is a day idle.
    recent = run_cli("sweep", "--ttl", "1d", "--yes", "--json", dsn=graph_db).json()
    assert recent["removed"]["threads"] == 0 and recent["policy"]["default_ttl"] == 1440
    assert snapshot(graph_db) == before
    # Every thread is idle for a hundredth of a minute: delete removes them all.
    args = ("sweep", "--ttl", "0.01", "--limit", "3", "--json")
    dry = run_cli(*args, dsn=graph_db).json()
    assert dry["removed"]["threads"] == len(THREADS)
    assert snapshot(graph_db) == before
    done = run_cli(*args, "--yes", dsn=graph_db).json()
    assert done["removed"] == dry["removed"]
    assert counts(graph_db) == dict.fromkeys(TABLES, 0)
    assert dry["removed"]["checkpoints"] == before["checkpoints"][0]


# -- migrate --------------------------------------------------------------------


def _histories(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        entry["table"]: entry
        for info in document["components"].values()
        for entry in info["histories"]
    }


def test_migrate_status_up_to_date(graph_db: str) -> None:
    document = run_cli("migrate", "status", "--json", dsn=graph_db).json()
    assert document["pending"] == 0
    found = _histories(document)
    assert found["checkpoint_migrations"]["current"] == SAVER_MIGRATIONS.latest
    assert all(e["current"] == e["latest"] for e in found.values())
    assert "checkpoints" in document["components"]["saver"]["tables"]
    human = run_cli("migrate", "status", dsn=graph_db)
    assert "Up to date." in human.out and "checkpoint_migrations" in human.out
    sql = run_cli("migrate", "sql", dsn=graph_db)
    assert "BEGIN" not in sql.out and "up to date" in sql.out


def test_migrate_status_on_an_empty_database(empty_db_uri: str) -> None:
    document = run_cli("migrate", "status", "--json", dsn=empty_db_uri).json()
    found = _histories(document)
    assert found["checkpoint_migrations"]["current"] is None
    assert [p["version"] for p in found["checkpoint_migrations"]["pending"]] == list(
        range(SAVER_MIGRATIONS.latest + 1)
    )
    assert document["pending"] == sum(e["latest"] + 1 for e in found.values())
    assert document["components"]["saver"]["tables"] == []
    human = run_cli("migrate", "up", dsn=empty_db_uri)
    assert f"would apply {document['pending']} migration(s)" in human.out
    assert "run again with --yes" in human.out
    # A dry run created nothing, not even the table of versions.
    again = run_cli("migrate", "status", "--json", dsn=empty_db_uri).json()
    assert again == document


def test_migrate_sql_builds_what_setup_builds(
    empty_db_uri: str, db_uri: str, databases: Any
) -> None:
    script = run_cli("migrate", "sql", "--from", "0").out
    assert "INSERT INTO checkpoint_migrations (v) VALUES (12);" in script
    assert "CONCURRENTLY" not in script  # a fresh database has no rows
    psql(empty_db_uri, script)
    assert catalog(empty_db_uri) == catalog(db_uri)  # db_uri: set up by setup()
    # setup() then finds nothing to do, and a graph runs on the tables.
    with PostgresSaver.from_conn_string(empty_db_uri) as saver:
        saver.setup()
    with PostgresStore.from_conn_string(empty_db_uri) as store:
        store.setup()
    assert catalog(empty_db_uri) == catalog(db_uri)
    fill(empty_db_uri, threads=[CHAT])
    assert state_values(empty_db_uri, CHAT)["messages"][-1] == "bot: re user: bye"

    # Rendered for --schema, as setup(schema=...) runs it.
    scripted, by_setup = (databases.create(migrated=False) for _ in range(2))
    psql(scripted, run_cli("migrate", "sql", "--from", "0", "--schema", "app").out)
    with PostgresSaver.from_conn_string(by_setup, schema="app") as saver:
        saver.setup()
    with PostgresStore.from_conn_string(by_setup, schema="app") as store:
        store.setup()
    assert catalog(scripted, "app") == catalog(by_setup, "app")
    assert catalog(scripted, "app")["versions"]["checkpoint_migrations"][-1] == 12


def test_migrate_an_older_populated_database(empty_db_uri: str, db_uri: str) -> None:
    old = run_cli("migrate", "sql", "saver", "--from", "0", "--to", "9").out
    assert "VALUES (9);" in old and "VALUES (10);" not in old
    psql(empty_db_uri, old)
    fill(empty_db_uri, threads=[CHAT])  # the 3.x layout of version 9 holds it
    rows, state = counts(empty_db_uri), state_values(empty_db_uri, CHAT)

    status = run_cli("migrate", "status", "saver", "--json", dsn=empty_db_uri).json()
    saver = _histories(status)["checkpoint_migrations"]
    assert saver["current"] == 9
    assert [p["version"] for p in saver["pending"]] == [10, 11, 12]
    assert saver["pending"][1]["sql"].startswith("DROP INDEX IF EXISTS")

    # The table holds rows: setup() would build the indexes CONCURRENTLY.
    pending_sql = run_cli("migrate", "sql", "saver", dsn=empty_db_uri).out
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_run_id_idx" in (
        pending_sql
    )
    assert "VALUES (9);" not in pending_sql and "VALUES (12);" in pending_sql

    layout = catalog(empty_db_uri)
    dry = run_cli("migrate", "up", "--json", dsn=empty_db_uri).json()
    assert dry["dry_run"] is True and dry["applied"] == 0
    assert dry["before"]["pending"] == 3 + 4 + 1  # saver 10-12, store 0-3, ext 0
    assert catalog(empty_db_uri) == layout

    done = run_cli("migrate", "up", "--yes", "--json", dsn=empty_db_uri).json()
    assert done["applied"] == 8 and done["after"]["pending"] == 0
    assert catalog(empty_db_uri) == catalog(db_uri)
    assert counts(empty_db_uri) == rows
    assert state_values(empty_db_uri, CHAT) == state
    human = run_cli("migrate", "up", dsn=empty_db_uri)
    assert "Up to date: nothing to apply." in human.out


def test_the_printed_pending_sql_migrates_a_populated_database(
    empty_db_uri: str, db_uri: str
) -> None:
    psql(
        empty_db_uri, run_cli("migrate", "sql", "saver", "--to", "9", "--from", "0").out
    )
    fill(empty_db_uri, threads=[CHAT])
    psql(empty_db_uri, run_cli("migrate", "sql", dsn=empty_db_uri).out)
    assert catalog(empty_db_uri) == catalog(db_uri)
    status = run_cli("migrate", "status", "--json", dsn=empty_db_uri).json()
    assert status["pending"] == 0


def test_migrate_refuses_bad_input(graph_db: str) -> None:
    result = run_cli("migrate", "status", "--store-index", "{", dsn=graph_db)
    assert result.code == 1 and result.err.startswith("error: --store-index")
    result = run_cli("migrate", "sql", "--from", "-1", dsn=graph_db)
    assert result.code == 1 and "--from and --to" in result.err


def test_migrate_knows_the_vector_migrations_from_the_index_config(
    graph_db: str,
) -> None:
    index = '{"dims": 3}'
    args = ("migrate", "status", "store", "--store-index", index, "--json")
    document = run_cli(*args, dsn=graph_db).json()
    vectors = _histories(document)["vector_migrations"]
    assert vectors["current"] is None
    assert [p["version"] for p in vectors["pending"]] == [0, 1, 2]
    script = run_cli("migrate", "sql", "store", "--store-index", index, "--from", "0")
    assert "embedding vector(3)" in script.out
    assert "USING hnsw (embedding vector_cosine_ops)" in script.out
    # Without the config, a store with vectors is pointed at the option.
    with psycopg.connect(graph_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE vector_migrations (v INTEGER PRIMARY KEY)")
    human = run_cli("migrate", "status", "store", dsn=graph_db)
    assert "give the store's index config (--store-index)" in human.out
