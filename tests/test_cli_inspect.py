"""``threads``, ``history``, ``show`` and ``diff`` on databases filled by the
graph of tests/cli_support.py, as a user would run them."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from langgraph.checkpoint.postgres import PostgresSaver
from tests.cli_support import (
    AES_KEY,
    CHAT,
    FAN,
    PAUSED,
    RESUMED,
    SECRET,
    THREADS,
    build_graph,
    run_cli,
)


def _failed_one_line(result: Any, *words: str) -> None:
    assert result.code != 0
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], (word, lines[0])


def _checkpoint_counts(uri: str) -> dict[str, int]:
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id"
        ).fetchall()
    return dict(rows)


def _history(uri: str, thread_id: str, ns: str = "") -> list[Any]:
    """LangGraph's own view of a namespace's checkpoints, newest first."""
    with PostgresSaver.from_conn_string(uri) as saver:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
        return list(saver.list(config))


# -- threads -----------------------------------------------------------------


def test_threads_lists_every_thread_with_its_counts(graph_db: str) -> None:
    data = run_cli("threads", "--json", dsn=graph_db).json()
    rows = {row["thread_id"]: row for row in data["threads"]}
    assert set(rows) == set(THREADS)
    assert data["total"] == 4
    counts = _checkpoint_counts(graph_db)
    assert {t: r["checkpoints"] for t, r in rows.items()} == counts
    assert rows[CHAT]["namespaces"] == [""]
    fan_ns = rows[FAN]["namespaces"]
    assert fan_ns[0] == "" and len(fan_ns) == 3
    assert all(ns.startswith("work:") for ns in fan_ns[1:])
    for row in rows.values():
        assert row["first_activity"] <= row["last_activity"]
        assert row["size_bytes"] > 0
    # Newest first: resumed-1 was the last thread the graph ran.
    assert data["threads"][0]["thread_id"] == RESUMED
    chat = _history(graph_db, CHAT)
    assert rows[CHAT]["last_activity"] == chat[0].checkpoint["ts"]
    assert rows[CHAT]["first_activity"] == chat[-1].checkpoint["ts"]

    human = run_cli("threads", dsn=graph_db)
    assert human.code == 0, human.err
    chat_line = next(line for line in human.out.splitlines() if CHAT in line)
    assert f" {counts[CHAT]} " in chat_line
    fan_line = next(line for line in human.out.splitlines() if FAN in line)
    assert "(root) +2" in fan_line


def test_threads_filters_sorts_and_limits(graph_db: str) -> None:
    alice = run_cli("threads", "--metadata", "user=alice", "--json", dsn=graph_db)
    assert {r["thread_id"] for r in alice.json()["threads"]} == {CHAT, PAUSED}
    both = run_cli(
        "threads", "--metadata", "user=alice", "--metadata", "source=input",
        "--json", dsn=graph_db,
    )  # fmt: skip
    assert {r["thread_id"] for r in both.json()["threads"]} == {CHAT, PAUSED}
    nobody = run_cli("threads", "--metadata", "user=zed", dsn=graph_db)
    assert nobody.code == 0 and "(no threads)" in nobody.out

    assert len(run_cli("threads", "--since", "1h", "--json", dsn=graph_db).json()[
        "threads"
    ]) == 4  # fmt: skip
    future = run_cli("threads", "--since", "2999-01-01", "--json", dsn=graph_db)
    assert future.json()["threads"] == []

    by_count = run_cli("threads", "--sort", "checkpoints", "--json", dsn=graph_db)
    counts = [r["checkpoints"] for r in by_count.json()["threads"]]
    assert counts == sorted(counts, reverse=True)
    by_size = run_cli("threads", "--sort", "size", "--json", dsn=graph_db).json()
    sizes = [r["size_bytes"] for r in by_size["threads"]]
    assert sizes == sorted(sizes, reverse=True)
    by_id = run_cli("threads", "--sort", "thread", "--json", dsn=graph_db).json()
    assert [r["thread_id"] for r in by_id["threads"]] == sorted(THREADS)

    two = run_cli("threads", "--sort", "thread", "--limit", "2", dsn=graph_db)
    assert two.code == 0
    assert "2 of 4 threads" in two.out
    assert sorted(THREADS)[2] not in two.out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--since", "yesterday"], ["--since", "yesterday"]),
        (["--metadata", "user"], ["--metadata", "key=value"]),
        (["--metadata", "n:=nope"], ["not JSON"]),
    ],
)
def test_threads_refuses_bad_filters(
    graph_db: str, args: list[str], words: list[str]
) -> None:
    _failed_one_line(run_cli("threads", *args, dsn=graph_db), *words)


# -- history -----------------------------------------------------------------


def test_history_newest_first_with_steps_and_pages(graph_db: str) -> None:
    truth = _history(graph_db, CHAT)
    data = run_cli("history", CHAT, "--json", "--limit", "100", dsn=graph_db).json()
    entries = data["checkpoints"]
    assert [e["checkpoint_id"] for e in entries] == [
        t.config["configurable"]["checkpoint_id"] for t in truth
    ]
    assert [e["step"] for e in entries] == list(range(len(truth) - 2, -2, -1))
    assert (
        entries[-1]["source"] == "input" and entries[-1]["parent_checkpoint_id"] is None
    )
    assert entries[0]["parent_checkpoint_id"] == entries[1]["checkpoint_id"]
    assert data["next_before"] is None

    first = run_cli("history", CHAT, "--limit", "5", "--json", dsn=graph_db).json()
    assert first["next_before"] == entries[4]["checkpoint_id"]
    second = run_cli(
        "history", CHAT, "--limit", "5", "--before", first["next_before"], "--json",
        dsn=graph_db,
    ).json()  # fmt: skip
    assert [e["checkpoint_id"] for e in second["checkpoints"]] == [
        e["checkpoint_id"] for e in entries[5:10]
    ]

    human = run_cli("history", CHAT, "--limit", "5", dsn=graph_db)
    assert human.code == 0, human.err
    lines = human.out.splitlines()
    assert entries[0]["checkpoint_id"] in lines[2]
    assert lines[2].split()[0] == str(entries[0]["step"])
    assert lines[-1] == (
        f"next page: langgraph-postgres history {CHAT} --limit 5 "
        f"--before {entries[4]['checkpoint_id']}"
    )


def test_history_next_nodes_match_langgraph(graph_db: str) -> None:
    """``next`` is derived without the graph; LangGraph's StateSnapshot, with
    the graph, must agree for every checkpoint of every thread."""
    with PostgresSaver.from_conn_string(graph_db) as saver:
        graph = build_graph(saver)
        for thread in THREADS:
            config = {"configurable": {"thread_id": thread}}
            truth = {
                s.config["configurable"]["checkpoint_id"]: sorted(s.next)
                for s in graph.get_state_history(config)
            }
            data = run_cli("history", thread, "--limit", "100", "--json", dsn=graph_db)
            ours = {e["checkpoint_id"]: e["next"] for e in data.json()["checkpoints"]}
            assert ours == truth, thread


def test_history_shows_the_pending_interrupt(graph_db: str) -> None:
    data = run_cli("history", PAUSED, "--json", dsn=graph_db).json()
    latest = data["checkpoints"][0]
    assert latest["next"] == ["review"]
    assert latest["interrupts"] == ["approve?"]
    human = run_cli("history", PAUSED, dsn=graph_db)
    row = human.out.splitlines()[2]
    assert "review" in row and "approve?" in row

    resumed = run_cli("history", RESUMED, "--json", dsn=graph_db).json()
    assert resumed["checkpoints"][0]["interrupts"] == []
    assert any(e["resumed"] for e in resumed["checkpoints"])


def test_history_of_namespaces(graph_db: str) -> None:
    root = run_cli("history", FAN, "--json", dsn=graph_db).json()["checkpoints"]
    assert {e["checkpoint_ns"] for e in root} == {""}
    fanned = [e for e in root if e["sends"]]
    assert len(fanned) == 1 and fanned[0]["next"] == ["work", "work"]

    everything = run_cli("history", FAN, "--all-ns", "--json", dsn=graph_db).json()
    namespaces = {e["checkpoint_ns"] for e in everything["checkpoints"]}
    assert len(namespaces) == 3 and "" in namespaces
    assert len(everything["checkpoints"]) == _checkpoint_counts(graph_db)[FAN]
    child = sorted(namespaces)[1]
    sub = run_cli("history", FAN, "--ns", child, "--json", dsn=graph_db).json()
    assert {e["checkpoint_ns"] for e in sub["checkpoints"]} == {child}
    assert sub["checkpoints"][-1]["next"] == ["__start__"]

    human = run_cli("history", FAN, "--all-ns", dsn=graph_db)
    assert "namespace" in human.out.splitlines()[0]
    assert child in human.out


def test_history_refuses_unknown_thread_and_checkpoint(graph_db: str) -> None:
    _failed_one_line(run_cli("history", "nope", dsn=graph_db), "no thread 'nope'")
    _failed_one_line(
        run_cli("history", CHAT, "--before", "nope", dsn=graph_db), "no checkpoint"
    )


# -- show --------------------------------------------------------------------


def test_show_latest_state(graph_db: str) -> None:
    doc = run_cli("show", CHAT, "--json", dsn=graph_db).json()
    latest = _history(graph_db, CHAT)[0]
    assert doc["checkpoint_id"] == latest.config["configurable"]["checkpoint_id"]
    assert doc["values"]["messages"] == latest.checkpoint["channel_values"]["messages"]
    assert doc["values"]["messages"][-1] == "bot: re user: bye"
    # The DeltaChannel's snapshot, shown in full.
    assert doc["values"]["log"] == ["turn 1", "turn 2", "turn 3"]
    assert doc["metadata"]["user"] == "alice"
    assert doc["next"] == [] and doc["interrupts"] == []

    human = run_cli("show", CHAT, dsn=graph_db)
    assert human.code == 0, human.err
    assert f"checkpoint: {doc['checkpoint_id']}" in human.out
    assert 'log: ["turn 1", "turn 2", "turn 3"]' in human.out
    assert "user: alice" in human.out


def test_show_one_channel(graph_db: str) -> None:
    doc = run_cli("show", CHAT, "--channel", "messages", "--json", dsn=graph_db)
    assert doc.json()["value"][0] == "user: hello"
    human = run_cli("show", CHAT, "--channel", "messages", dsn=graph_db)
    assert '  "user: how are you?",' in human.out.splitlines()
    log = run_cli("show", CHAT, "--channel", "log", "--json", dsn=graph_db).json()
    assert log["value"] == ["turn 1", "turn 2", "turn 3"]

    missing = run_cli("show", CHAT, "--channel", "nope", dsn=graph_db)
    _failed_one_line(missing, "no channel 'nope'", "log, messages")


def test_show_interrupt_sends_and_an_older_checkpoint(graph_db: str) -> None:
    paused = run_cli("show", PAUSED, "--json", dsn=graph_db).json()
    assert paused["interrupts"] == ["approve?"]
    assert paused["next"] == ["review"]
    assert [w["channel"] for w in paused["pending_writes"]] == ["__interrupt__"]
    human = run_cli("show", PAUSED, dsn=graph_db).out
    assert "interrupt: approve?" in human and "next:       review" in human

    fanned = next(
        e for e in run_cli("history", FAN, "--json", dsn=graph_db).json()["checkpoints"]
        if e["sends"]
    )  # fmt: skip
    doc = run_cli("show", FAN, fanned["checkpoint_id"], "--json", dsn=graph_db).json()
    assert doc["pending_sends"] == [
        {"node": "work", "arg": {"item": "a"}},
        {"node": "work", "arg": {"item": "b"}},
    ]
    results = [w["value"] for w in doc["pending_writes"] if w["channel"] == "results"]
    assert sorted(results) == [["A"], ["B"]]
    assert (
        '-> work: {"item": "a"}'
        in run_cli("show", FAN, fanned["checkpoint_id"], dsn=graph_db).out
    )


def test_show_subgraph_checkpoint_by_id(graph_db: str) -> None:
    entries = run_cli("history", FAN, "--all-ns", "--json", dsn=graph_db).json()
    child = next(e for e in entries["checkpoints"] if e["checkpoint_ns"])
    doc = run_cli("show", FAN, child["checkpoint_id"], "--json", dsn=graph_db).json()
    assert doc["checkpoint_ns"] == child["checkpoint_ns"]
    assert doc["values"]["item"] in ("a", "b")


def test_show_refuses_unknown_thread_and_checkpoint(graph_db: str) -> None:
    _failed_one_line(run_cli("show", "nope", dsn=graph_db), "no thread 'nope'")
    _failed_one_line(
        run_cli("show", CHAT, "nope", dsn=graph_db), "no checkpoint 'nope'"
    )
    _failed_one_line(
        run_cli("diff", CHAT, "nope", dsn=graph_db), "no checkpoint 'nope'"
    )


def test_show_encrypted_thread_needs_the_key(encrypted_db: str) -> None:
    doc = run_cli(
        "show", SECRET, "--json", dsn=encrypted_db, env={"LANGGRAPH_AES_KEY": AES_KEY}
    ).json()
    assert doc["values"]["messages"][0] == "user: top"
    assert doc["values"]["messages"][-1] == "bot: re user: secret"

    _failed_one_line(run_cli("show", SECRET, dsn=encrypted_db), "LANGGRAPH_AES_KEY")
    _failed_one_line(run_cli("history", SECRET, dsn=encrypted_db), "LANGGRAPH_AES_KEY")
    # threads reads no value: it needs no key.
    listed = run_cli("threads", "--json", dsn=encrypted_db).json()
    assert [r["thread_id"] for r in listed["threads"]] == [SECRET]


def test_langchain_messages_read_as_type_and_content() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from langgraph.checkpoint.postgres.cli._state import pretty, readable

    messages = [
        HumanMessage("what is 2+2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2}, "id": "c1"}]),
    ]
    assert readable(messages) == [
        "human: what is 2+2?",
        'ai:  [{"name": "add", "args": {"a": 2}}]',
    ]
    assert pretty(messages[0]) == "human: what is 2+2?"


# -- diff --------------------------------------------------------------------


def test_diff_of_two_checkpoints_shows_the_added_message(graph_db: str) -> None:
    entries = run_cli("history", CHAT, "--json", "--limit", "100", dsn=graph_db)
    by_step = {e["step"]: e["checkpoint_id"] for e in entries.json()["checkpoints"]}
    # Steps 0 -> 1: the chat node answered the first message.
    a, b = by_step[0], by_step[1]
    data = run_cli("diff", CHAT, a, b, "--json", dsn=graph_db).json()
    assert (data["from"], data["to"]) == (a, b)
    assert data["changed"]["messages"] == {
        "before": ["user: hello"],
        "after": ["user: hello", "bot: re user: hello"],
    }
    assert data["removed"] == {}
    human = run_cli("diff", CHAT, a, b, dsn=graph_db).out
    assert "~ messages (changed)" in human
    assert '  +  "bot: re user: hello"' in human.splitlines()

    # One id: that checkpoint against its parent.
    assert run_cli("diff", CHAT, b, "--json", dsn=graph_db).json() == data
    # Input checkpoint -> step 0: the input channels appear.
    first = run_cli("diff", CHAT, by_step[-1], by_step[0], "--json", dsn=graph_db)
    assert first.json()["added"]["messages"] == ["user: hello"]


def test_diff_defaults_to_the_latest_and_its_parent(graph_db: str) -> None:
    entries = run_cli("history", PAUSED, "--json", dsn=graph_db).json()["checkpoints"]
    data = run_cli("diff", PAUSED, "--json", dsn=graph_db).json()
    assert (data["from"], data["to"]) == (
        entries[1]["checkpoint_id"],
        entries[0]["checkpoint_id"],
    )
    assert data["changed"]["messages"]["after"][-1] == "bot: re user: ask"

    root = entries[-1]["checkpoint_id"]
    _failed_one_line(run_cli("diff", PAUSED, root, dsn=graph_db), "no parent")
