"""delete_for_runs, copy_thread and prune, beyond what the conformance suite checks.

Data comes from real LangGraph runs (a parent graph with a subgraph, a
``DeltaChannel``, blob-valued and inline channels, several threads and runs),
and every check reads the tables directly as well as going through the saver.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot
from langgraph.graph import END, START, StateGraph
from psycopg import sql
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres._sql import (
    DELETE_FOR_RUNS_SQL,
    PRUNE_KEEP_LATEST_SQL,
    THREADS_OF_RUNS_SQL,
    render,
)
from langgraph.checkpoint.postgres._sql.retention import PRUNE_KEEP_LAST_SQL
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tests.dbcheck import ORPHAN_BLOBS_SQL, ORPHAN_WRITES_SQL, orphans
from tests.savers import Saves, arun_saves, run_saves

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
KEYS = {
    "checkpoints": "thread_id, checkpoint_ns, checkpoint_id",
    "checkpoint_blobs": "thread_id, checkpoint_ns, channel, version",
    "checkpoint_writes": "thread_id, checkpoint_ns, checkpoint_id, task_id, idx",
}

# -- SQL helpers ---------------------------------------------------------------


def dump(uri: str) -> dict[str, list[str]]:
    """Every row of the three tables, as text, in primary key order."""
    with psycopg.connect(uri) as conn:
        return {
            table: [
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
                        sql.Identifier(table), sql.SQL(KEYS[table])
                    )
                )
            ]
            for table in TABLES
        }


def thread_rows(uri: str, thread_id: str) -> dict[str, list[str]]:
    """A thread's rows without their ``thread_id`` column, in key order."""
    with psycopg.connect(uri) as conn:
        return {
            table: [
                row[0]
                for row in conn.execute(
                    sql.SQL(
                        "SELECT (to_jsonb(t) - 'thread_id')::text FROM {} t "
                        "WHERE thread_id = %s ORDER BY {}"
                    ).format(sql.Identifier(table), sql.SQL(KEYS[table])),
                    (thread_id,),
                )
            ]
            for table in TABLES
        }


def other_threads(rows: dict[str, list[str]], *thread_ids: str) -> dict[str, Any]:
    """``dump`` rows of every thread except ``thread_ids``."""
    prefixes = tuple(f"({t}," for t in thread_ids)
    return {
        table: [r for r in table_rows if not r.startswith(prefixes)]
        for table, table_rows in rows.items()
    }


def count(uri: str, query: str, *params: Any) -> int:
    with psycopg.connect(uri) as conn:
        return conn.execute(query, params).fetchone()[0]


# -- a real graph --------------------------------------------------------------


def _extend(state: list[Any], writes: Sequence[list[Any]]) -> list[Any]:
    out = list(state)
    for write in writes:
        out.extend(write)
    return out


class Inner(TypedDict):
    items: Annotated[list, operator.add]
    n: int


def _inner_a(state: Inner) -> dict[str, Any]:
    return {"items": [{"inner": "a", "n": state["n"]}], "n": state["n"] + 1}


def _inner_b(state: Inner) -> dict[str, Any]:
    return {"items": [{"inner": "b", "n": state["n"]}], "n": state["n"] + 1}


def _inner() -> Any:
    builder = StateGraph(Inner)
    builder.add_node("a", _inner_a)
    builder.add_node("b", _inner_b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    return builder.compile()


class Outer(TypedDict):
    log: Annotated[list, DeltaChannel(_extend, snapshot_frequency=3)]
    items: Annotated[list, operator.add]
    n: int


def _first(state: Outer) -> dict[str, Any]:
    return {"log": [f"first{state['n']}"], "items": [state["n"]], "n": state["n"] + 1}


def _last(state: Outer) -> dict[str, Any]:
    return {"log": [f"last{state['n']}"], "n": state["n"] + 1}


def graph(checkpointer: Any, *, pause: bool = False) -> Any:
    """first -> sub (a subgraph: its own namespace) -> last."""
    builder = StateGraph(Outer)
    builder.add_node("first", _first)
    builder.add_node("sub", _inner())
    builder.add_node("last", _last)
    builder.add_edge(START, "first")
    builder.add_edge("first", "sub")
    builder.add_edge("sub", "last")
    builder.add_edge("last", END)
    return builder.compile(
        checkpointer=checkpointer, interrupt_before=["last"] if pause else None
    )


def run_config(thread_id: str, run_id: str | None = None) -> Any:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if run_id is not None:
        # LangGraph copies string values of config["metadata"] into every
        # checkpoint's metadata; that is where platforms put the run id.
        config["run_id"] = uuid.UUID(run_id)
        config["metadata"] = {"run_id": run_id}
    return config


def run_input(thread_id: str, run: int) -> dict[str, Any]:
    inputs: dict[str, Any] = {"log": [f"{thread_id}/run{run}"], "items": [run]}
    if run == 0:
        inputs["n"] = 0
    return inputs


def run_ids(thread_ids: Sequence[str], runs: int) -> dict[tuple[str, int], str]:
    return {(t, r): str(uuid.uuid4()) for t in thread_ids for r in range(runs)}


def run_graphs(saver: Any, ids: dict[tuple[str, int], str]) -> None:
    g = graph(saver)
    for (thread_id, run), run_id in ids.items():
        g.invoke(run_input(thread_id, run), run_config(thread_id, run_id))


async def arun_graphs(saver: Any, ids: dict[tuple[str, int], str]) -> None:
    g = graph(saver)
    for (thread_id, run), run_id in ids.items():
        await g.ainvoke(run_input(thread_id, run), run_config(thread_id, run_id))


def view(snapshot: Any) -> dict[str, Any]:
    return {
        "values": snapshot.values,
        "next": snapshot.next,
        "metadata": snapshot.metadata,
        "tasks": [task.name for task in snapshot.tasks],
    }


def _check_run_ids_recorded(uri: str, ids: dict[tuple[str, int], str]) -> None:
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT thread_id, checkpoint_ns, metadata ->> 'run_id' FROM checkpoints"
        ).fetchall()
    assert rows and all(run_id in ids.values() for _, _, run_id in rows)
    assert {run_id for _, _, run_id in rows} == set(ids.values())
    assert any(ns for _, ns, _ in rows), "expected subgraph namespaces"


# -- 3. copy_thread ------------------------------------------------------------


def _retag(tup: Any, thread_id: str) -> Any:
    """A checkpoint tuple as it should read under another thread id."""

    def config(c: Any) -> Any:
        if c is None:
            return None
        return {"configurable": {**c["configurable"], "thread_id": thread_id}}

    return tup._replace(
        config=config(tup.config), parent_config=config(tup.parent_config)
    )


def _check_copy(uri: str, before: dict[str, list[str]], source: list[Any]) -> None:
    src, dst = thread_rows(uri, "src"), thread_rows(uri, "dst")
    assert all(src[t] for t in TABLES), src
    assert dst == src
    with psycopg.connect(uri) as conn:
        namespaces = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = 'dst'"
            )
        }
    assert "" in namespaces and any(ns.startswith("sub:") for ns in namespaces)
    after = dump(uri)
    assert other_threads(after, "dst") == before  # the source is unchanged
    assert any(t.pending_writes for t in source)


def test_copy_thread_copies_everything_and_continues(
    saver: PostgresSaver, db_uri: str
) -> None:
    # "src": one finished run, then a second run paused before "last".
    g = graph(saver, pause=True)
    src, dst = run_config("src"), run_config("dst")
    g.invoke(run_input("src", 0), src)
    g.invoke(None, src)
    g.invoke(run_input("src", 1), src)
    assert g.get_state(src).next == ("last",)
    run_graphs(saver, run_ids(["bystander"], 1))
    before = dump(db_uri)
    source = list(saver.list({"configurable": {"thread_id": "src"}}))

    saver.copy_thread("src", "dst")
    _check_copy(db_uri, before, source)
    copied = list(saver.list({"configurable": {"thread_id": "dst"}}))
    assert copied == [_retag(t, "dst") for t in source]
    assert len({t.checkpoint["id"] for t in copied}) == len(copied)

    # A missing source copies nothing and leaves the target empty.
    before_missing = dump(db_uri)
    saver.copy_thread("no-such-thread", "empty-target")
    assert dump(db_uri) == before_missing
    assert saver.get_tuple(run_config("empty-target")) is None

    # Both threads resume from the interrupt the same way.
    assert view(g.get_state(dst)) == view(g.get_state(src))
    assert g.invoke(None, dst) == g.invoke(None, src)
    history_src = [view(s) for s in g.get_state_history(src)]
    history_dst = [view(s) for s in g.get_state_history(dst)]
    assert history_dst == history_src
    assert history_src[0]["next"] == () and history_src[0]["values"]["n"] > 0


async def test_copy_thread_copies_everything_and_continues_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    g = graph(asaver, pause=True)
    src, dst = run_config("src"), run_config("dst")
    await g.ainvoke(run_input("src", 0), src)
    await g.ainvoke(None, src)
    await g.ainvoke(run_input("src", 1), src)
    assert (await g.aget_state(src)).next == ("last",)
    await arun_graphs(asaver, run_ids(["bystander"], 1))
    before = dump(db_uri)
    source = [t async for t in asaver.alist({"configurable": {"thread_id": "src"}})]

    await asaver.acopy_thread("src", "dst")
    _check_copy(db_uri, before, source)
    copied = [t async for t in asaver.alist({"configurable": {"thread_id": "dst"}})]
    assert copied == [_retag(t, "dst") for t in source]

    before_missing = dump(db_uri)
    await asaver.acopy_thread("no-such-thread", "empty-target")
    assert dump(db_uri) == before_missing
    assert await asaver.aget_tuple(run_config("empty-target")) is None

    assert view(await g.aget_state(dst)) == view(await g.aget_state(src))
    assert await g.ainvoke(None, dst) == await g.ainvoke(None, src)
    history_src = [view(s) async for s in g.aget_state_history(src)]
    history_dst = [view(s) async for s in g.aget_state_history(dst)]
    assert history_dst == history_src
    assert history_src[0]["next"] == () and history_src[0]["values"]["n"] > 0


# -- 3. argument errors change nothing -----------------------------------------

# Ids whose characters are themselves ids: a bare string iterated as a list of
# ids would hit these.
BARE_THREAD = "thread-1"
BARE_RUN = "run-1"


def _populate_bare_ids(saver: PostgresSaver) -> None:
    threads = [BARE_THREAD, *BARE_THREAD]
    runs = [BARE_RUN, *BARE_RUN]
    for i, thread_id in enumerate(dict.fromkeys(threads)):
        parent: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        for step in range(3):
            checkpoint = empty_checkpoint()
            checkpoint["id"] = f"00000000-0000-6000-8000-{i:06d}{step:06d}"
            checkpoint["channel_values"] = {"v": [thread_id, step]}
            checkpoint["channel_versions"] = {"v": f"{step + 1:032}.0"}
            run_id = runs[(i + step) % len(runs)]
            parent = saver.put(
                parent,
                checkpoint,
                {"run_id": run_id, "step": step},
                dict(checkpoint["channel_versions"]),
            )
            saver.put_writes(parent, [("v", [step])], f"task-{step}")


def _check_refusals(
    uri: str, attempt: Callable[[str], Any], positive: Callable[[], Any]
) -> None:
    before = dump(uri)
    assert all(before[t] for t in TABLES)
    with pytest.raises(ValueError) as info:
        attempt("prune_bogus")
    message = str(info.value)
    assert "'bogus'" in message and "'keep_latest'" in message and "'delete'" in message
    assert dump(uri) == before
    for name in ("prune", "prune_delete", "delete_for_runs"):
        with pytest.raises(TypeError, match="list"):
            attempt(name)
        assert dump(uri) == before, name
    # The same data does change when the ids come as lists.
    positive()
    after = dump(uri)
    assert after != before
    assert not any(
        row.startswith(f"({BARE_THREAD},") for rows in after.values() for row in rows
    )


def test_bad_arguments_raise_and_change_nothing(
    saver: PostgresSaver, db_uri: str
) -> None:
    _populate_bare_ids(saver)

    def attempt(name: str) -> Any:
        if name == "prune_bogus":
            return saver.prune([BARE_THREAD], strategy="bogus")
        if name == "prune":
            return saver.prune(BARE_THREAD)  # type: ignore[arg-type]
        if name == "prune_delete":
            return saver.prune(BARE_THREAD, strategy="delete")  # type: ignore[arg-type]
        return saver.delete_for_runs(BARE_RUN)  # type: ignore[arg-type]

    def positive() -> None:
        saver.prune([BARE_THREAD], strategy="delete")
        saver.delete_for_runs([BARE_RUN])

    _check_refusals(db_uri, attempt, positive)


async def test_bad_arguments_raise_and_change_nothing_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    with PostgresSaver.from_conn_string(db_uri) as builder:
        _populate_bare_ids(builder)
    before = dump(db_uri)
    with pytest.raises(ValueError, match="keep_latest"):
        await asaver.aprune([BARE_THREAD], strategy="bogus")
    assert dump(db_uri) == before
    with pytest.raises(TypeError, match="list"):
        await asaver.aprune(BARE_THREAD)  # type: ignore[arg-type]
    assert dump(db_uri) == before
    with pytest.raises(TypeError, match="list"):
        await asaver.aprune(BARE_THREAD, strategy="delete")  # type: ignore[arg-type]
    assert dump(db_uri) == before
    with pytest.raises(TypeError, match="list"):
        await asaver.adelete_for_runs(BARE_RUN)  # type: ignore[arg-type]
    assert dump(db_uri) == before
    await asaver.aprune([BARE_THREAD], strategy="delete")
    await asaver.adelete_for_runs([BARE_RUN])
    assert dump(db_uri) != before


# -- 3. delete_for_runs uses an index ------------------------------------------


def test_delete_for_runs_lookup_uses_the_run_id_index(db_uri: str) -> None:
    with psycopg.connect(db_uri) as conn:
        conn.execute(
            """
            INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                checkpoint, metadata)
            SELECT 't' || (i % 50), '', lpad(i::text, 12, '0'), '{}'::jsonb,
                jsonb_build_object('run_id', 'run-' || (i % 400), 'step', i)
            FROM generate_series(1, 4000) i
            """
        )
        conn.execute("ANALYZE checkpoints")
        conn.execute("SET enable_seqscan = off")
        lookup = conn.execute(
            "EXPLAIN SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
            "WHERE metadata ->> 'run_id' = ANY(%s::text[])",
            (["run-7", "run-9"],),
        ).fetchall()
        plan = "\n".join(r[0] for r in lookup)
        assert "checkpoints_run_id_idx" in plan, plan
        # And the query delete_for_runs finds the runs' threads with; the
        # deletes then name one thread each, read by primary key.
        full = conn.execute(
            "EXPLAIN " + render(THREADS_OF_RUNS_SQL, None),
            {"run_ids": ["run-7", "run-9"]},
        ).fetchall()
        plan = "\n".join(r[0] for r in full)
        assert "checkpoints_run_id_idx" in plan, plan
        per_thread = conn.execute(
            "EXPLAIN " + render(DELETE_FOR_RUNS_SQL, None),
            {"thread_id": "t7", "run_ids": ["run-7", "run-9"]},
        ).fetchall()
        plan = "\n".join(r[0] for r in per_thread)
        assert "Seq Scan" not in plan, plan
        conn.rollback()


# -- 4. atomicity --------------------------------------------------------------

FAIL_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION lgcp_fail() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(nullif(current_setting('lgcp.rows', true), ''), '0')::int + 1;
BEGIN
    PERFORM set_config('lgcp.rows', n::text, true);
    IF n >= TG_ARGV[0]::int THEN
        RAISE EXCEPTION 'lgcp injected failure on % (row %)', TG_TABLE_NAME, n;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""


def _backup(uri: str) -> None:
    with psycopg.connect(uri) as conn:
        conn.execute(FAIL_FUNCTION_SQL)
        for table in TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                    sql.Identifier(f"backup_{table}"), sql.Identifier(table)
                )
            )


def _restore(uri: str) -> None:
    with psycopg.connect(uri) as conn:
        conn.execute("TRUNCATE " + ", ".join(TABLES))
        for table in TABLES:
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                    sql.Identifier(table), sql.Identifier(f"backup_{table}")
                )
            )


def _install_failure(uri: str, table: str, nth: int) -> None:
    with psycopg.connect(uri) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER lgcp_fail BEFORE INSERT OR UPDATE OR DELETE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION lgcp_fail({})"
            ).format(sql.Identifier(table), sql.Literal(str(nth)))
        )


def _remove_failure(uri: str, table: str) -> None:
    with psycopg.connect(uri) as conn:
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS lgcp_fail ON {}").format(
                sql.Identifier(table)
            )
        )


def _touched(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict:
    """Rows an operation inserted or deleted (an update counts once), by table."""
    touched = {}
    for table in TABLES:
        old, new = set(before[table]), set(after[table])
        if n := max(len(old - new), len(new - old)):
            touched[table] = n
    return touched


@dataclass
class Op:
    name: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tables: tuple[str, ...]  # what it must touch on this data


def _atomicity_data(uri: str) -> tuple[list[Op], dict[tuple[str, int], str]]:
    """Two threads of real runs (three runs each), and the operations to try."""
    ids = run_ids(["t1", "t2"], 3)
    with PostgresSaver.from_conn_string(uri) as builder:
        run_graphs(builder, ids)
        latest = builder.get_tuple(run_config("t1"))
    _check_run_ids_recorded(uri, ids)
    assert latest is not None
    checkpoint = dict(latest.checkpoint)
    checkpoint["id"] = str(uuid.uuid4())
    versions = dict(checkpoint["channel_versions"])
    new_versions = {
        "items": f"{999:032}.1",
        "extra": f"{1:032}.1",
        "n": f"{999:032}.2",
    }
    versions.update(new_versions)
    checkpoint["channel_versions"] = versions
    checkpoint["channel_values"] = {
        **checkpoint["channel_values"],
        "items": [1, {"two": 2}],
        "extra": {"x": b"\x00"},
        "n": 99,
    }
    everything = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    ops = [
        Op(
            "put",
            "put",
            (latest.config, checkpoint, {"source": "update", "step": 99}, new_versions),
            {},
            ("checkpoints", "checkpoint_blobs"),
        ),
        Op(
            "put_writes",
            "put_writes",
            (
                latest.config,
                [("items", [7]), ("log", ["w"]), ("__error__", "boom")],
                "task-x",
                "~x",
            ),
            {},
            ("checkpoint_writes",),
        ),
        Op("delete_thread", "delete_thread", ("t1",), {}, everything),
        Op(
            "delete_for_runs",
            "delete_for_runs",
            ([ids["t1", 1], ids["t2", 0]],),
            {},
            everything,
        ),
        Op("copy_thread", "copy_thread", ("t1", "t3"), {}, everything),
        Op(
            "prune_keep_latest",
            "prune",
            (["t1", "t2"],),
            {"strategy": "keep_latest"},
            everything,
        ),
        Op(
            "prune_delete", "prune", (["t1", "t2"],), {"strategy": "delete"}, everything
        ),
    ]
    return ops, ids


async def _check_atomicity(uri: str, call: Callable[[Op], Awaitable[Any]]) -> int:
    ops, _ = _atomicity_data(uri)
    _backup(uri)
    cases = 0
    for op in ops:
        _restore(uri)
        before = dump(uri)
        await call(op)  # without a failure: what does it touch?
        touched = _touched(before, dump(uri))
        assert set(touched) == set(op.tables), (op.name, touched)
        for table, rows in touched.items():
            for nth in range(1, min(rows, 2) + 1):
                _restore(uri)
                _install_failure(uri, table, nth)
                try:
                    with pytest.raises(psycopg.Error, match="lgcp injected failure"):
                        await call(op)
                finally:
                    _remove_failure(uri, table)
                assert dump(uri) == before, (op.name, table, nth)
                cases += 1
    return cases


def test_every_mutation_is_atomic(saver: PostgresSaver, db_uri: str) -> None:
    # The checks are shared with the async saver's test, hence a coroutine
    # around the sync call.
    async def call(op: Op) -> Any:
        return getattr(saver, op.method)(*op.args, **op.kwargs)

    cases = asyncio.run(_check_atomicity(db_uri, call))
    assert cases >= 30


async def test_every_mutation_is_atomic_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    async def call(op: Op) -> Any:
        return await getattr(asaver, "a" + op.method)(*op.args, **op.kwargs)

    cases = await _check_atomicity(db_uri, call)
    assert cases >= 30


# -- 5. row accounting ---------------------------------------------------------

THREADS = ["t1", "t2", "t3", "t4"]


def _orphan_checks_can_see_orphans(uri: str) -> None:
    """The orphan queries do count a stray blob and a stray write."""
    with psycopg.connect(uri) as conn:
        conn.execute(
            "INSERT INTO checkpoint_blobs VALUES ('t1', '', 'stray', 'v', 'json', '')"
        )
        conn.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, "
            "task_id, idx, channel, type, blob) "
            "VALUES ('t1', '', 'nope', 'x', 0, 'c', 'json', '')"
        )
        assert conn.execute(ORPHAN_BLOBS_SQL).fetchone()[0] == 1
        assert conn.execute(ORPHAN_WRITES_SQL).fetchone()[0] == 1
        conn.rollback()


KEY = ("thread_id", "checkpoint_ns", "checkpoint_id")


def _tuples(saver: PostgresSaver) -> dict[tuple[str, str, str], Any]:
    return {
        tuple(t.config["configurable"][k] for k in KEY): t for t in saver.list(None)
    }


class Accounting:
    """Checks after each lifecycle operation on the row-accounting data."""

    def __init__(self, uri: str, ids: dict[tuple[str, int], str]) -> None:
        self.uri = uri
        self.ids = ids

    def start(self, tuples: dict[Any, Any]) -> None:
        _check_run_ids_recorded(self.uri, self.ids)
        assert orphans(self.uri) == (0, 0)
        _orphan_checks_can_see_orphans(self.uri)
        self.tuples = tuples

    def after(
        self, tuples: dict[Any, Any], *, gone_threads: Sequence[str] = ()
    ) -> None:
        """No orphans; every surviving checkpoint reads back as before."""
        assert orphans(self.uri) == (0, 0)
        assert set(tuples) <= set(self.tuples)
        assert len(tuples) < len(self.tuples), "the operation deleted nothing"
        for key, tup in tuples.items():
            old = self.tuples[key]
            assert tup.checkpoint == old.checkpoint, key
            assert tup.metadata == old.metadata, key
            assert tup.pending_writes == old.pending_writes, key
        for thread_id in gone_threads:
            assert not any(k[0] == thread_id for k in tuples)
            for table in TABLES:
                assert not count(
                    self.uri,
                    f"SELECT count(*) FROM {table} WHERE thread_id = %s",
                    thread_id,
                )
        self.tuples = tuples

    def check_runs_deleted(self, tuples: dict[Any, Any], run_ids: list[str]) -> None:
        remaining = {t.metadata.get("run_id") for t in tuples.values()}
        assert not remaining & set(run_ids)
        # Everything else of those threads is still there.
        for key, old in self.tuples.items():
            if old.metadata.get("run_id") not in run_ids:
                assert key in tuples, key


def test_row_accounting_after_lifecycle_operations(
    saver: PostgresSaver, db_uri: str
) -> None:
    ids = run_ids(THREADS, 3)
    run_graphs(saver, ids)
    g = graph(saver)
    states = {t: view(g.get_state(run_config(t))) for t in THREADS}
    acc = Accounting(db_uri, ids)
    acc.start(_tuples(saver))

    saver.prune(["t1"], strategy="keep_latest")
    acc.after(_tuples(saver))
    assert view(g.get_state(run_config("t1"))) == states["t1"]

    doomed = [ids["t2", 1], ids["t3", 0]]
    saver.delete_for_runs(doomed)
    tuples = _tuples(saver)
    acc.check_runs_deleted(tuples, doomed)
    acc.after(tuples)
    assert view(g.get_state(run_config("t2"))) == states["t2"]  # run 2 is intact

    saver.delete_thread("t4")
    acc.after(_tuples(saver), gone_threads=["t4"])

    saver.prune(["t2", "t3"], strategy="delete")
    acc.after(_tuples(saver), gone_threads=["t2", "t3", "t4"])
    assert view(g.get_state(run_config("t1"))) == states["t1"]


async def test_row_accounting_after_lifecycle_operations_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    async def tuples() -> dict[Any, Any]:
        return {
            tuple(t.config["configurable"][k] for k in KEY): t
            async for t in asaver.alist(None)
        }

    ids = run_ids(THREADS, 3)
    await arun_graphs(asaver, ids)
    g = graph(asaver)
    states = {t: view(await g.aget_state(run_config(t))) for t in THREADS}
    acc = Accounting(db_uri, ids)
    acc.start(await tuples())

    await asaver.aprune(["t1"], strategy="keep_latest")
    acc.after(await tuples())
    assert view(await g.aget_state(run_config("t1"))) == states["t1"]

    doomed = [ids["t2", 1], ids["t3", 0]]
    await asaver.adelete_for_runs(doomed)
    current = await tuples()
    acc.check_runs_deleted(current, doomed)
    acc.after(current)
    assert view(await g.aget_state(run_config("t2"))) == states["t2"]

    await asaver.adelete_thread("t4")
    acc.after(await tuples(), gone_threads=["t4"])

    await asaver.aprune(["t2", "t3"], strategy="delete")
    acc.after(await tuples(), gone_threads=["t2", "t3", "t4"])
    assert view(await g.aget_state(run_config("t1"))) == states["t1"]


# -- 6. prune(strategy="keep_latest") -------------------------------------------

THREAD_T = {"configurable": {"thread_id": "t"}}


def _cfg(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _cid(config: Any) -> str:
    return config["configurable"]["checkpoint_id"]


def _parent_ids(tuples: Any) -> dict[str, str | None]:
    """Each checkpoint's id -> its parent's id (None for no parent)."""
    return {
        _cid(t.config): _cid(t.parent_config) if t.parent_config else None
        for t in tuples
    }


def _saved_writes(uri: str, thread_id: str, checkpoint_id: str) -> list[str]:
    """The channels of the writes stored for a checkpoint id, sorted."""
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT channel FROM checkpoint_writes "
            "WHERE thread_id = %s AND checkpoint_id = %s ORDER BY channel",
            (thread_id, checkpoint_id),
        ).fetchall()
    return [r[0] for r in rows]


def _namespace_rows(uri: str, thread_id: str, ns: str) -> int:
    query = "SELECT count(*) FROM {} WHERE thread_id = %s AND checkpoint_ns = %s"
    return sum(count(uri, query.format(table), thread_id, ns) for table in TABLES)


# A run saves a superstep's writes in the background, where they can commit
# before their checkpoint does: prune leaves them for it.
EARLY = [("early", 1), ("also", [2])]


def test_prune_keeps_writes_saved_before_their_checkpoint(
    saver: PostgresSaver, db_uri: str
) -> None:
    config = saver.put(_cfg("t"), empty_checkpoint(), {}, {})
    config = saver.put(config, empty_checkpoint(), {}, {})
    ahead = empty_checkpoint()  # newer than the saved ones, not saved yet
    saver.put_writes(_cfg("t", "", ahead["id"]), EARLY, "task")
    saver.prune(["t"])
    assert len(list(saver.list(THREAD_T))) == 1
    assert _saved_writes(db_uri, "t", ahead["id"]) == ["also", "early"]
    loaded = saver.get_tuple(saver.put(config, ahead, {}, {}))
    assert loaded is not None
    assert loaded.pending_writes == [("task", c, v) for c, v in EARLY]


async def test_prune_keeps_writes_saved_before_their_checkpoint_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    config = await asaver.aput(_cfg("t"), empty_checkpoint(), {}, {})
    config = await asaver.aput(config, empty_checkpoint(), {}, {})
    ahead = empty_checkpoint()
    await asaver.aput_writes(_cfg("t", "", ahead["id"]), EARLY, "task")
    await asaver.aprune(["t"])
    assert len([t async for t in asaver.alist(THREAD_T)]) == 1
    assert _saved_writes(db_uri, "t", ahead["id"]) == ["also", "early"]
    loaded = await asaver.aget_tuple(await asaver.aput(config, ahead, {}, {}))
    assert loaded is not None
    assert loaded.pending_writes == [("task", c, v) for c, v in EARLY]


COUNTERS = {"counters_since_delta_snapshot": {"log": [1, 1]}}


def _delta_thread() -> Saves:
    """A DeltaChannel thread whose kept chain started a subgraph call.

    Root namespace: r0 and r1 store "log" (snapshots), r2 and r3 only write
    to it, so keep_latest keeps r3 back to r1 and deletes r0. "call:kept"
    started from r2 and keeps its latest; "call:gone" started from r0 and
    goes entirely, even a write whose checkpoint is not saved; "inner", a
    `checkpointer=True` subgraph (no ":"), keeps its latest. Returns the root
    configs and the latest config of each subgraph namespace.
    """
    calls: dict[str, Any] = {}
    step = 0

    def put(parent: Any, log: list[str] | None, metadata: Any) -> Any:
        nonlocal step
        step += 1
        checkpoint = empty_checkpoint()
        checkpoint["v"] = 4
        versions = {"log": f"{step:032}.0", "other": f"{step:032}.0"}
        checkpoint["channel_versions"] = versions
        checkpoint["channel_values"] = {"other": ["other", step]}  # a blob
        if log is not None:
            checkpoint["channel_values"]["log"] = _DeltaSnapshot(log)
        return "put", (parent, checkpoint, metadata, dict(versions))

    def call(ns: str, root: Any) -> Saves:
        metadata = {"parents": {"": _cid(root)}}
        first = yield put(_cfg("t", ns), None, metadata)
        yield "put_writes", (first, [("x", 1)], "inner-task")
        calls[ns] = yield put(first, None, metadata)

    r0 = yield put(_cfg("t"), ["a"], {})
    yield "put_writes", (r0, [("log", ["b"])], "task")
    yield from call("call:gone", r0)
    yield from call("inner", r0)
    r1 = yield put(r0, ["a", "b"], {})
    yield "put_writes", (r1, [("log", ["c"])], "task")
    r2 = yield put(r1, None, COUNTERS)
    yield "put_writes", (r2, [("log", ["d"])], "task")
    yield from call("call:kept", r2)
    r3 = yield put(r2, None, COUNTERS)
    yield "put_writes", (_cfg("t", "call:gone", "not-saved"), [("x", 2)], "late")
    return [r0, r1, r2, r3], calls


def _check_delta_history(history: Any) -> None:
    assert history["log"]["seed"] == _DeltaSnapshot(["a", "b"])
    assert [w[2] for w in history["log"]["writes"]] == [["c"], ["d"]]


def _check_delta_thread_pruned(
    uri: str, saved: Any, before: dict[str, Any], after: list[Any]
) -> None:
    roots, calls = saved
    r0, r1, r2, r3 = (_cid(c) for c in roots)
    by_ns: dict[str, list[Any]] = {}
    for t in after:
        by_ns.setdefault(t.config["configurable"]["checkpoint_ns"], []).append(t)
    assert sorted(by_ns) == ["", "call:kept", "inner"]
    # The chain stays linked; the parent of its oldest checkpoint is gone.
    assert _parent_ids(by_ns[""]) == {r3: r2, r2: r1, r1: None}
    for ns in ("call:kept", "inner"):
        assert _parent_ids(by_ns[ns]) == {_cid(calls[ns]): None}
    for t in after:  # what is kept reads back as before
        old = before[_cid(t.config)]
        assert t.checkpoint == old.checkpoint
        assert t.metadata == old.metadata
        assert t.pending_writes == old.pending_writes
    assert _namespace_rows(uri, "t", "call:gone") == 0
    assert _saved_writes(uri, "t", r0) == []
    assert orphans(uri) == (0, 0)


def test_prune_keeps_delta_chains_and_the_subgraph_calls_they_started(
    saver: PostgresSaver, db_uri: str
) -> None:
    saved = run_saves(saver, _delta_thread())
    latest = _cfg("t")
    history = saver.get_delta_channel_history(config=latest, channels=["log"])
    _check_delta_history(history)
    before = {_cid(t.config): t for t in saver.list(THREAD_T)}

    saver.prune(["t"])
    _check_delta_thread_pruned(db_uri, saved, before, list(saver.list(THREAD_T)))
    assert saver.get_delta_channel_history(config=latest, channels=["log"]) == history
    walked = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=latest, channels=["log"]
    )
    assert walked == history


async def test_prune_keeps_delta_chains_and_the_subgraph_calls_they_started_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    saved = await arun_saves(asaver, _delta_thread())
    latest = _cfg("t")
    history = await asaver.aget_delta_channel_history(config=latest, channels=["log"])
    _check_delta_history(history)
    before = {_cid(t.config): t async for t in asaver.alist(THREAD_T)}

    await asaver.aprune(["t"])
    after = [t async for t in asaver.alist(THREAD_T)]
    _check_delta_thread_pruned(db_uri, saved, before, after)
    found = await asaver.aget_delta_channel_history(config=latest, channels=["log"])
    assert found == history


# Before checkpoint format v4, a checkpoint's pending sends are its parent's
# writes to TASKS: that parent stays, with its writes and blobs, and loses
# its own parent. Pruned together: "v3" keeps the parent; "v4" (whose sends
# are in the checkpoint) and "v3-no-sends" (no TASKS writes) do not.
SEND_THREADS = {"v3": (3, True), "v4": (4, True), "v3-no-sends": (3, False)}


def _send_threads() -> Saves:
    """Three checkpoints per thread, each with writes; the middle one's
    include a send. Returns the configs saved, by thread."""
    configs: dict[str, list[Any]] = {}
    for thread_id, (v, sends) in SEND_THREADS.items():
        config = _cfg(thread_id)
        configs[thread_id] = []
        for i in range(3):
            checkpoint = empty_checkpoint()  # format v2 unless told otherwise
            checkpoint["v"] = v
            if v < 4:
                checkpoint["pending_sends"] = []  # type: ignore[typeddict-unknown-key]
            checkpoint["channel_versions"] = {"value": f"{i + 1:032}.0"}
            checkpoint["channel_values"] = {"value": ["value", i]}  # a blob
            versions = dict(checkpoint["channel_versions"])
            config = yield "put", (config, checkpoint, {}, versions)
            writes = [(TASKS, "send"), ("x", 1)] if sends and i == 1 else [("x", 1)]
            yield "put_writes", (config, writes, "task")
            configs[thread_id].append(config)
    return configs


def _check_sends_pruned(
    uri: str, configs: dict[str, list[Any]], after: dict[str, list[Any]]
) -> None:
    for thread_id, (v, sends) in SEND_THREADS.items():
        grandparent, parent, latest = (_cid(c) for c in configs[thread_id])
        assert _saved_writes(uri, thread_id, grandparent) == []
        if v < 4 and sends:
            assert _parent_ids(after[thread_id]) == {latest: parent, parent: None}
            head, kept = after[thread_id]
            assert head.checkpoint["channel_values"][TASKS] == ["send"]
            assert head.checkpoint["channel_values"]["value"] == ["value", 2]
            assert kept.checkpoint["channel_values"]["value"] == ["value", 1]
            assert kept.pending_writes == [("task", TASKS, "send"), ("task", "x", 1)]
        else:
            assert _parent_ids(after[thread_id]) == {latest: None}
            assert _saved_writes(uri, thread_id, parent) == []
    assert orphans(uri) == (0, 0)


def test_prune_keeps_the_parent_pre_v4_sends_are_read_from(
    saver: PostgresSaver, db_uri: str
) -> None:
    configs = run_saves(saver, _send_threads())
    saver.prune(list(SEND_THREADS))
    after = {t: list(saver.list(_cfg(t))) for t in SEND_THREADS}
    _check_sends_pruned(db_uri, configs, after)


async def test_prune_keeps_the_parent_pre_v4_sends_are_read_from_async(
    asaver: AsyncPostgresSaver, db_uri: str
) -> None:
    configs = await arun_saves(asaver, _send_threads())
    await asaver.aprune(list(SEND_THREADS))
    after = {}
    for thread_id in SEND_THREADS:
        after[thread_id] = [t async for t in asaver.alist(_cfg(thread_id))]
    _check_sends_pruned(db_uri, configs, after)


# Thirty threads of 400 checkpoints: a delta chain in the root namespace
# (a snapshot every 40th) and three subgraph calls for each root checkpoint.
PRUNE_PLAN_DATA_SQL = (
    """
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, checkpoint, metadata)
    SELECT 't' || t, ns, lpad(i::text, 8, '0'), lpad((i - 4)::text, 8, '0'),
        jsonb_build_object('v', 4,
            'channel_versions', jsonb_build_object('log', 'v' || i, 'x', 'v' || i),
            'channel_values', CASE WHEN i % 40 = 1
                THEN jsonb_build_object('log', 'snapshot') ELSE '{}' END),
        CASE WHEN ns = '' THEN jsonb_build_object('counters_since_delta_snapshot',
                jsonb_build_object('log', jsonb_build_array(1, 1)))
            ELSE jsonb_build_object('parents',
                jsonb_build_object('', lpad((i - i % 4 + 1)::text, 8, '0')))
        END
    FROM generate_series(1, 30) t, generate_series(1, 400) i,
        LATERAL (SELECT CASE WHEN i % 4 = 1 THEN '' ELSE 'sub:' || i END AS ns) n
    """,
    """
    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id,
        task_id, task_path, idx, channel, type, blob)
    SELECT thread_id, checkpoint_ns, checkpoint_id, 'task', '', k, 'log', 'json', ''
    FROM checkpoints, generate_series(0, 1) k
    """,
    """
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version,
        type, blob)
    SELECT thread_id, checkpoint_ns, 'x', checkpoint -> 'channel_versions' ->> 'x',
        'json', ''
    FROM checkpoints
    """,
)


@pytest.mark.parametrize(
    ("template", "params"),
    [
        (PRUNE_KEEP_LATEST_SQL, {"thread_id": "t7"}),
        (PRUNE_KEEP_LAST_SQL, {"thread_id": "t7", "keep": 5}),
    ],
    ids=["keep_latest", "keep_last"],
)
def test_prune_plan_looks_rows_up_by_key(
    db_uri: str, template: str, params: dict[str, Any]
) -> None:
    statement = render(template, None)
    with psycopg.connect(db_uri) as conn:
        for query in PRUNE_PLAN_DATA_SQL:
            conn.execute(query)
        conn.execute("ANALYZE")
        # Past jit_above_cost (100000 by default) Postgres compiles the
        # statement before running it, which takes longer than the prune.
        (plan,) = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
        assert plan[0]["Plan"]["Total Cost"] < 100_000
        # Every table is read through an index: by key, or the thread's rows.
        conn.execute("SET enable_seqscan = off")
        lines = [r[0] for r in conn.execute("EXPLAIN " + statement, params)]
        assert not [line for line in lines if "Seq Scan" in line], "\n".join(lines)
        conn.rollback()
