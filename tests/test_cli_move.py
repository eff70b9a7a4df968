"""``export``/``import`` and ``store``: threads moved byte for byte between
databases, refusals that leave the target as it was, and the store browsed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from langgraph.checkpoint.postgres import PostgresSaver
from tests.cli_support import (
    CHAT,
    FAN,
    PAUSED,
    RESUMED,
    SECRET,
    build_graph,
    encrypted_serde,
    run_cli,
)

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
MOVED = (CHAT, FAN, PAUSED)


def raw_rows(uri: str, threads: Sequence[str]) -> dict[str, list[str]]:
    """Each table's rows of ``threads`` as Postgres prints them (bytea in
    hex, jsonb as its text), sorted: equal only if byte-identical."""
    with psycopg.connect(uri) as conn:
        return {
            table: [
                r[0]
                for r in conn.execute(
                    f"SELECT t::text FROM {table} t WHERE thread_id = ANY(%s) "
                    "ORDER BY 1",
                    [list(threads)],
                )
            ]
            for table in TABLES
        }


def all_rows(uri: str) -> dict[str, list[str]]:
    with psycopg.connect(uri) as conn:
        return {
            table: [
                r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1")
            ]
            for table in TABLES
        }


def _config(config: Any) -> Any:
    if config is None:
        return None
    configurable = dict(config["configurable"])
    return configurable.pop("thread_id"), configurable


def history(uri: str, thread: str, serde: Any = None) -> list[Any]:
    """What ``get_state_history`` shows of ``thread``: values, next nodes,
    metadata, configs (thread id apart), tasks and interrupts."""
    with PostgresSaver.from_conn_string(uri, serde=serde) as saver:
        graph = build_graph(saver)
        return [
            {
                "values": s.values,
                "next": s.next,
                "metadata": s.metadata,
                "config": _config(s.config),
                "parent": _config(s.parent_config),
                "created_at": s.created_at,
                "tasks": [(t.id, t.name, t.path, t.interrupts) for t in s.tasks],
                "interrupts": s.interrupts,
            }
            for s in graph.get_state_history({"configurable": {"thread_id": thread}})
        ]


def renamed(snapshots: list[Any], thread: str) -> list[Any]:
    """``snapshots`` as if their configs named ``thread``."""
    return [
        {
            **s,
            "config": (thread, s["config"][1]),
            "parent": s["parent"] and (thread, s["parent"][1]),
        }
        for s in snapshots
    ]


def export(uri: str, *threads: str) -> str:
    result = run_cli("export", *threads, dsn=uri)
    assert result.code == 0, result.err
    return result.out


def test_export_then_import_reproduces_threads_byte_for_byte(
    graph_db: str, db_uri: str
) -> None:
    dump = export(graph_db, *MOVED)
    lines = dump.splitlines()
    header = orjson.loads(lines[0])
    records = [orjson.loads(line) for line in lines[1:]]
    assert header["threads"] == list(MOVED)
    # Every column travels, ours (task_path) included, as the table has it.
    assert list(header["tables"]["checkpoint_writes"]) == [
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "task_id",
        "idx",
        "channel",
        "type",
        "blob",
        "task_path",
    ]
    assert header["rows"] == {
        t: sum(1 for r in records if r["table"] == t) for t in TABLES
    }
    # Subgraph checkpoints and the DeltaChannel's blobs are in it.
    assert any(
        r["row"]["checkpoint_ns"].startswith("work:")
        for r in records
        if r["table"] == "checkpoints"
    )
    assert any(
        r["row"]["channel"] == "log" for r in records if r["table"] != "checkpoints"
    )

    result = run_cli("import", "--yes", "--json", dsn=db_uri, stdin=dump)
    assert result.json()["imported"] is True
    assert {t["thread_id"]: t["checkpoints"] for t in result.json()["threads"]} == {
        t: sum(
            1
            for r in records
            if r["table"] == "checkpoints" and r["row"]["thread_id"] == t
        )
        for t in MOVED
    }
    assert raw_rows(db_uri, MOVED) == raw_rows(graph_db, MOVED)
    assert raw_rows(db_uri, [RESUMED]) == dict.fromkeys(TABLES, [])
    for thread in MOVED:
        source = history(graph_db, thread)
        assert source and history(db_uri, thread) == source
    assert history(db_uri, PAUSED)[0]["interrupts"], "the pending interrupt moved"


def test_import_without_yes_is_a_dry_run(graph_db: str, db_uri: str) -> None:
    dump = export(graph_db, CHAT, PAUSED)
    result = run_cli("import", "--json", dsn=db_uri, stdin=dump)
    data = result.json()
    assert data["imported"] is False
    counts = raw_rows(graph_db, [CHAT])
    assert data["threads"][0] == {
        "thread_id": CHAT,
        "source_thread_id": CHAT,
        "checkpoints": len(counts["checkpoints"]),
        "checkpoint_blobs": len(counts["checkpoint_blobs"]),
        "checkpoint_writes": len(counts["checkpoint_writes"]),
        "bytes": data["threads"][0]["bytes"],
        "existing_rows": 0,
    }
    assert data["threads"][0]["bytes"] > 0
    assert all_rows(db_uri) == dict.fromkeys(TABLES, [])

    human = run_cli("import", dsn=db_uri, stdin=dump)
    assert human.code == 0
    assert "would import 2 thread(s)" in human.out
    assert "dry run: nothing was written; add --yes to import" in human.out
    assert all_rows(db_uri) == dict.fromkeys(TABLES, [])


def test_import_refuses_existing_threads_unless_replace(
    graph_db: str, db_uri: str
) -> None:
    dump = export(graph_db, CHAT)
    assert run_cli("import", "--yes", dsn=db_uri, stdin=dump).code == 0
    # The target drifts: one write fewer than the file.
    with psycopg.connect(db_uri) as conn:
        conn.execute(
            "DELETE FROM checkpoint_writes WHERE ctid = "
            "(SELECT min(ctid) FROM checkpoint_writes)"
        )
    before = all_rows(db_uri)

    for args in (("--yes",), ()):
        refused = run_cli("import", *args, dsn=db_uri, stdin=dump)
        assert refused.code == 1
        assert refused.err.startswith(f"error: thread '{CHAT}' already has rows")
        assert "--replace" in refused.err and len(refused.err.splitlines()) == 1
        assert all_rows(db_uri) == before

    replaced = run_cli("import", "--replace", "--yes", "--json", dsn=db_uri, stdin=dump)
    assert replaced.json()["threads"][0]["existing_rows"] == sum(
        len(rows) for rows in before.values()
    )
    assert raw_rows(db_uri, [CHAT]) == raw_rows(graph_db, [CHAT])


def test_import_as_renames_the_thread(graph_db: str) -> None:
    dump = export(graph_db, CHAT)
    result = run_cli("import", "--as", "chat-copy", "--yes", dsn=graph_db, stdin=dump)
    assert result.code == 0, result.err
    assert "imported 1 thread(s)" in result.out
    original = history(graph_db, CHAT)
    copy = history(graph_db, "chat-copy")
    assert copy == renamed(original, "chat-copy")
    assert [s["config"][0] for s in copy] == ["chat-copy"] * len(original)
    # The rows are the original's, but for the thread id.
    source = raw_rows(graph_db, [CHAT])
    assert raw_rows(graph_db, ["chat-copy"]) == {
        t: sorted(r.replace(f"({CHAT},", "(chat-copy,", 1) for r in rows)
        for t, rows in source.items()
    }


def test_import_as_refuses_a_file_of_two_threads(graph_db: str, db_uri: str) -> None:
    dump = export(graph_db, CHAT, FAN)
    result = run_cli("import", "--as", "x", "--yes", dsn=db_uri, stdin=dump)
    assert result.code == 1
    assert result.err == (
        "error: --as renames one thread, but the file holds 2; export the "
        "thread alone, or import without --as\n"
    )
    assert all_rows(db_uri) == dict.fromkeys(TABLES, [])


def test_export_of_an_unknown_thread_writes_nothing(
    graph_db: str, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    result = run_cli("export", CHAT, "nope", "--output", str(target), dsn=graph_db)
    assert result.code == 1
    assert result.err == "error: no thread 'nope'; see `langgraph-postgres threads`\n"
    assert not target.exists()
    assert run_cli("export", "nope", dsn=graph_db).out == ""


def test_export_to_a_file_and_import_from_it(
    graph_db: str, db_uri: str, tmp_path: Path
) -> None:
    target = tmp_path / "fan.jsonl"
    result = run_cli("export", FAN, "--output", str(target), "--json", dsn=graph_db)
    counts = raw_rows(graph_db, [FAN])
    assert result.json() == {
        "threads": [FAN],
        "rows": {t: len(rows) for t, rows in counts.items()},
        "output": str(target),
    }
    human = run_cli("import", "--input", str(target), "--yes", dsn=db_uri)
    assert human.code == 0, human.err
    assert raw_rows(db_uri, [FAN]) == counts


def test_encrypted_threads_move_without_the_key(encrypted_db: str, db_uri: str) -> None:
    dump = export(encrypted_db, SECRET)
    assert "+aes" in dump, "the blobs are encrypted, and were not decoded"
    assert run_cli("import", "--yes", dsn=db_uri, stdin=dump).code == 0
    assert raw_rows(db_uri, [SECRET]) == raw_rows(encrypted_db, [SECRET])
    source = history(encrypted_db, SECRET, encrypted_serde())
    assert source and history(db_uri, SECRET, encrypted_serde()) == source


def _edit_row(table: str, change: Callable[[dict[str, Any]], None]) -> Any:
    """An edit of the last ``table`` row of a dump."""

    def edit(lines: list[str]) -> int:
        number = max(
            i
            for i, line in enumerate(lines)
            if orjson.loads(line).get("table") == table
        )
        record = orjson.loads(lines[number])
        change(record["row"])
        lines[number] = orjson.dumps(record).decode()
        return number + 1

    return edit


def _edit_header(change: Callable[[dict[str, Any]], None]) -> Any:
    def edit(lines: list[str]) -> int:
        header = orjson.loads(lines[0])
        change(header)
        lines[0] = orjson.dumps(header).decode()
        return 1

    return edit


def _replace_line(number: int, text: str) -> Any:
    def edit(lines: list[str]) -> int:
        lines[number - 1] = text
        return number

    return edit


def _cut_last(lines: list[str]) -> int:
    del lines[-1]
    return len(lines)


def _unknown_table(lines: list[str]) -> int:
    record = orjson.loads(lines[-1])
    record["table"] = "checkpoint_things"
    lines[-1] = orjson.dumps(record).decode()
    return len(lines)


MALFORMED = {
    "bad JSON": (_replace_line(3, '{"table": "checkpoints", "row": '), "not JSON"),
    "not an export": (_edit_header(lambda h: h.update(format="csv")), "format 'csv'"),
    "newer version": (
        _edit_header(lambda h: h.update(version=2)),
        "export version 2 is not supported",
    ),
    "unknown table": (_unknown_table, "unknown table 'checkpoint_things'"),
    "unknown column": (
        _edit_row("checkpoint_writes", lambda r: r.update(colour="red")),
        "unknown column checkpoint_writes.colour",
    ),
    "missing column": (
        _edit_row("checkpoint_blobs", lambda r: r.pop("version")),
        "missing column checkpoint_blobs.version",
    ),
    "bad base64": (
        _edit_row("checkpoint_writes", lambda r: r.update(blob="not base64!")),
        "checkpoint_writes: column blob holds bad base64",
    ),
    "bad jsonb": (
        _edit_row("checkpoints", lambda r: r.update(metadata="{oops")),
        "column metadata holds invalid JSON text",
    ),
    "wrong type": (
        _edit_row("checkpoint_writes", lambda r: r.update(idx="0")),
        'column idx (integer) holds "0"',
    ),
    "foreign thread": (
        _edit_row("checkpoint_writes", lambda r: r.update(thread_id="other")),
        "thread 'other' is not in the header's threads",
    ),
    "cut short": (_cut_last, "header says"),
    "incompatible layout": (
        _edit_header(lambda h: h["tables"]["checkpoints"].update(run_id="uuid")),
        "layout does not fit the database (checkpoints.run_id is not in the database)",
    ),
    "empty": (lambda lines: lines.clear() or 1, "the input is empty"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_import_names_the_line_and_writes_nothing(
    case: str, graph_db: str, db_uri: str
) -> None:
    edit, message = MALFORMED[case]
    lines = export(graph_db, CHAT).splitlines()
    number = edit(lines)
    for args in ((), ("--yes",)):
        result = run_cli(
            "import", *args, dsn=db_uri, stdin="".join(f"{line}\n" for line in lines)
        )
        assert result.code == 1, (case, result.out)
        assert len(result.err.splitlines()) == 1, result.err
        assert result.err.startswith(f"error: line {number}: "), result.err
        assert message in result.err
        assert all_rows(db_uri) == dict.fromkeys(TABLES, [])


# -- store ---------------------------------------------------------------------


def test_store_namespaces(graph_db: str) -> None:
    result = run_cli("store", "namespaces", "--json", dsn=graph_db)
    assert result.json() == {
        "namespaces": [["docs"], ["users", "alice"], ["users", "bob"]]
    }
    users = run_cli("store", "namespaces", "--prefix", "users", "--json", dsn=graph_db)
    assert users.json() == {"namespaces": [["users", "alice"], ["users", "bob"]]}
    top = run_cli("store", "namespaces", "--max-depth", "1", dsn=graph_db)
    assert top.code == 0
    assert [line.strip() for line in top.out.splitlines()[2:]] == ["docs", "users"]


def test_store_get(graph_db: str) -> None:
    item = run_cli("store", "get", "users.alice", "profile", "--json", dsn=graph_db)
    data = item.json()
    assert (data["namespace"], data["key"], data["value"]) == (
        ["users", "alice"],
        "profile",
        {"name": "Alice", "lang": "en"},
    )
    assert data["created_at"] and data["updated_at"]
    human = run_cli("store", "get", "users.alice", "prefs", dsn=graph_db).out
    assert "namespace: users.alice" in human.splitlines()
    assert '  "theme": "dark"' in human.splitlines()
    assert "updated:" in human


@pytest.mark.parametrize(
    ("namespace", "hint"),
    [
        ("users.alice", "see `langgraph-postgres store namespaces`"),
        ("users/alice", "namespaces are written with dots (users.alice)"),
    ],
)
def test_store_get_of_an_unknown_item_is_an_error(
    graph_db: str, namespace: str, hint: str
) -> None:
    result = run_cli("store", "get", namespace, "nope", dsn=graph_db)
    assert result.code == 1
    assert result.err == (f"error: no item 'nope' in namespace '{namespace}'; {hint}\n")


def test_store_search(graph_db: str) -> None:
    found = run_cli("store", "search", "users", "--json", dsn=graph_db).json()
    assert sorted((tuple(i["namespace"]), i["key"]) for i in found["items"]) == [
        (("users", "alice"), "prefs"),
        (("users", "alice"), "profile"),
        (("users", "bob"), "profile"),
    ]
    everything = run_cli("store", "search", "--json", dsn=graph_db).json()
    assert len(everything["items"]) == 4
    french = run_cli(
        "store", "search", "users", "--filter", "lang=fr", "--json", dsn=graph_db
    ).json()
    assert [(i["key"], i["value"]["name"]) for i in french["items"]] == [
        ("profile", "Bob")
    ]
    human = run_cli("store", "search", "docs", dsn=graph_db).out
    assert "key:       readme" in human and '"text": "hello world"' in human
    none = run_cli("store", "search", "users", "--filter", "lang=de", dsn=graph_db)
    assert none.out.strip() == "(no items)"


def test_store_search_refuses_a_semantic_query(graph_db: str) -> None:
    result = run_cli("store", "search", "users", "--query", "dark", dsn=graph_db)
    assert result.code == 1
    assert result.err.startswith(
        "error: semantic search (--query) needs the application's embedding model"
    )
