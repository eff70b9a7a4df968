"""Going back to langgraph-checkpoint-postgres 3.2.0 after our migrations.

Our migrations from 10 on are additive, so the existing package, installed
again, must open a database this package migrated to its latest version and
wrote to, and read what we wrote as we read it. The existing package runs
in an interpreter of its own (``UPSTREAM_PYTHON``, as CI prepares it): it
owns the same import paths as ours.
"""

from __future__ import annotations

import json
import operator
import subprocess
from pathlib import Path
from typing import Annotated, Any

import psycopg
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from tests.upstream import upstream_python

READER = Path(__file__).with_name("upstream_checkpoint_reader.py")
THREADS = {"alice-1": "alice", "alice-2": "alice", "bob-1": "bob"}


class State(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


def _graph(saver: PostgresSaver) -> Any:
    """Two steps: a list value (stored as a blob) and an int (inline)."""

    def greet(state: State) -> dict[str, Any]:
        return {"messages": ["hello"], "count": state["count"] + 1}

    def answer(state: State) -> dict[str, Any]:
        return {"messages": [f"answer {state['count']}"], "count": state["count"] + 1}

    builder = StateGraph(State)
    builder.add_node("greet", greet)
    builder.add_node("answer", answer)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", "answer")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=saver)


def tuple_json(found: Any) -> dict[str, Any] | None:
    """As the reader renders a tuple, through JSON (lists for tuples)."""
    if found is None:
        return None
    rendered = {
        "config": found.config["configurable"],
        "parent": (found.parent_config or {}).get("configurable"),
        "channel_values": found.checkpoint["channel_values"],
        "metadata": found.metadata,
        "pending_writes": [list(w) for w in found.pending_writes or []],
    }
    loaded: dict[str, Any] = json.loads(json.dumps(rendered))
    return loaded


def test_the_existing_package_reads_a_database_at_our_latest_version(
    db_uri: str, tmp_path: Path
) -> None:
    python = upstream_python()  # skips (or fails) before any work
    filters = [{"user": "alice"}, {"user": "bob", "step": 1}, {"user": "nobody"}]
    with PostgresSaver.from_conn_string(db_uri) as saver:
        graph = _graph(saver)
        for thread_id, user in THREADS.items():
            config = {"configurable": {"thread_id": thread_id}}
            graph.invoke(
                {"messages": [], "count": 0}, {**config, "metadata": {"user": user}}
            )
        # A write pending on a latest checkpoint, as an interrupted run leaves.
        latest = saver.get_tuple({"configurable": {"thread_id": "bob-1"}})
        assert latest is not None
        saver.put_writes(latest.config, [("messages", ["pending"])], "task-1")
        ours = {
            "latest": [
                tuple_json(saver.get_tuple({"configurable": {"thread_id": t}}))
                for t in THREADS
            ],
            "lists": [
                [tuple_json(t) for t in saver.list(None, filter=f, limit=20)]
                for f in filters
            ],
        }
    with psycopg.connect(db_uri) as conn:
        versions = [v for (v,) in conn.execute("SELECT v FROM checkpoint_migrations")]
    assert sorted(versions) == list(range(len(MIGRATIONS)))

    request = {"uri": db_uri, "threads": list(THREADS), "filters": filters}
    # -I: neither the script's folder nor the current one (nor PYTHONPATH)
    # goes on sys.path, so the installed package is the one imported.
    done = subprocess.run(
        [python, "-I", str(READER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["version"] == "3.2.0"
    assert Path(__file__).resolve().parents[1] / "langgraph" not in (
        Path(answer["module"]).parents
    )
    # Its setup() leaves a newer database alone; it reads what we read.
    assert answer["latest"] == ours["latest"]
    assert answer["lists"] == ours["lists"]
    assert [len(found) for found in ours["lists"]] == [8, 1, 0]
    bob = ours["latest"][2]
    assert bob is not None
    assert bob["channel_values"] == {"messages": ["hello", "answer 1"], "count": 2}
    assert bob["pending_writes"] == [["task-1", "messages", ["pending"]]]
    with psycopg.connect(db_uri) as conn:
        after = [v for (v,) in conn.execute("SELECT v FROM checkpoint_migrations")]
    assert sorted(after) == sorted(versions)
