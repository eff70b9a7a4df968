"""Databases written by other packages, read and continued through our savers.

``tests/fixtures/`` holds every row (bytea as hex) of two real databases:

* ``upstream-3.2.0``: written by ``langgraph-checkpoint-postgres`` 3.2.0 with
  LangGraph 1.2, schema at migration 9;
* ``legacy-0.2-sends``: written by LangGraph 0.2 with the 2.0 package, schema
  at migration 8, paused with pending sends stored the pre-v4 way.

Each test loads such rows into an empty database at the fixture's own schema
version (our ``MIGRATIONS[:n]``, nothing else), lets ``setup()`` take it from
there, and checks through every saver kind that current LangGraph sees what
``expected.json`` recorded, and that our savers can carry on writing to it.
The last test checks at SQL level that what our savers write keeps the
meaning the 3.x layout gives to its rows.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, StateSnapshot, interrupt
from psycopg import sql
from psycopg.types.json import Jsonb
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.base import MIGRATIONS
from tests.conftest import Databases
from tests.savers import ASYNC_KINDS, SYNC_KINDS, async_saver, sync_saver

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM = "upstream-3.2.0"
LEGACY = "legacy-0.2-sends"

DATA_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
PRIMARY_KEYS = {
    "checkpoint_migrations": ("v",),
    "checkpoints": ("thread_id", "checkpoint_ns", "checkpoint_id"),
    "checkpoint_blobs": ("thread_id", "checkpoint_ns", "channel", "version"),
    "checkpoint_writes": (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "task_id",
        "idx",
    ),
}
JSON_COLUMNS = ("checkpoint", "metadata")


# --------------------------------------------------------------------------
# Fixtures on disk
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    name: str
    rows: tuple[tuple[str, dict[str, Any]], ...]
    expected: dict[str, Any]

    @property
    def version(self) -> int:
        """The schema version the database was at: its highest migration."""
        return max(
            row["v"] for table, row in self.rows if table == "checkpoint_migrations"
        )

    def columns(self, table: str) -> list[str]:
        """The columns the fixture has for ``table`` (its schema version's)."""
        for name, row in self.rows:
            if name == table:
                return list(row)
        raise AssertionError(f"fixture {self.name} has no {table} rows")


@cache
def read_fixture(name: str) -> Fixture:
    folder = FIXTURES / name
    rows = []
    with open(folder / "rows.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                rows.append((record["table"], record["row"]))
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return Fixture(name, tuple(rows), expected)


def _to_db(column: str, value: Any) -> Any:
    if column == "blob":
        return None if value is None else bytes.fromhex(value)
    if column in JSON_COLUMNS:
        return Jsonb(value)
    return value


def load_fixture(uri: str, fixture: Fixture) -> None:
    """Recreate the fixture's database in the empty database at ``uri``.

    The schema is built at the fixture's own version by running our migrations
    ``0..version`` and nothing else (not even their bookkeeping rows: the
    fixture's ``checkpoint_migrations`` rows are among its rows), then every
    row is inserted as it was. ``setup()`` is left to the caller.
    """
    with psycopg.connect(uri) as conn, conn.cursor() as cur:
        for statement in MIGRATIONS[: fixture.version + 1]:
            cur.execute(statement)
        for table, row in fixture.rows:
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            )
            cur.execute(query, [_to_db(c, v) for c, v in row.items()])


def dump(uri: str, fixture: Fixture) -> dict[str, list[tuple[Any, ...]]]:
    """The data tables' rows, in the fixture's columns, exactly as stored.

    JSONB comes back as its text and bytea as bytes, so that two dumps are
    equal only if the stored values are.
    """
    result = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        for table in DATA_TABLES:
            columns = fixture.columns(table)
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{}::text").format(sql.Identifier(c))
                    if c in JSON_COLUMNS
                    else sql.Identifier(c)
                    for c in columns
                ),
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, PRIMARY_KEYS[table])),
            )
            result[table] = conn.execute(query).fetchall()
    return result


def assert_holds_fixture_rows(uri: str, fixture: Fixture) -> None:
    """The database holds exactly the fixture's rows (values compared parsed)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        for table in (*DATA_TABLES, "checkpoint_migrations"):
            columns = fixture.columns(table)
            key = [columns.index(c) for c in PRIMARY_KEYS[table]]
            wanted = sorted(
                (
                    tuple(
                        bytes.fromhex(v) if c == "blob" and v is not None else v
                        for c, v in row.items()
                    )
                    for name, row in fixture.rows
                    if name == table
                ),
                key=lambda r: [r[i] for i in key],
            )
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, PRIMARY_KEYS[table])),
            )
            assert conn.execute(query).fetchall() == wanted, table


def migration_versions(uri: str) -> list[int]:
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        return [v for (v,) in rows.fetchall()]


def task_paths(uri: str) -> list[str]:
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute("SELECT task_path FROM checkpoint_writes")
        return [p for (p,) in rows.fetchall()]


def fresh_load(databases: Databases, name: str, *, setup: bool = True) -> str:
    """A new database holding fixture ``name``, set up by our saver if asked.

    ``setup()`` runs through a plain connection here, so that the tests using
    this check reading and writing through every kind independently of
    ``setup()``, which has tests of its own below.
    """
    uri = databases.create(migrated=False)
    load_fixture(uri, read_fixture(name))
    if setup:
        with PostgresSaver.from_conn_string(uri) as saver:
            saver.setup()
    return uri


@pytest.fixture(scope="module")
def module_databases(server_uri: str, template_db: str) -> Iterator[Databases]:
    """Databases shared by the read-only tests of this module."""
    dbs = Databases(server_uri, template_db)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="module")
def upstream_uri(module_databases: Databases) -> str:
    """The 3.2.0 database, loaded and set up once; tests only read it."""
    return fresh_load(module_databases, UPSTREAM)


@pytest.fixture(scope="module")
def legacy_uri(module_databases: Databases) -> str:
    """The 0.2 database, loaded and set up once; tests only read it."""
    return fresh_load(module_databases, LEGACY)


# --------------------------------------------------------------------------
# The graphs that wrote the fixtures
# --------------------------------------------------------------------------


class State(TypedDict, total=False):
    messages: Annotated[list, operator.add]
    fan: Annotated[list, operator.add]
    count: int
    answer: str


def agent(state: State) -> dict[str, Any]:
    count = state.get("count", 0)
    reply = f"reply {count} \u00e9\u4e2d\U0001f600"
    return {"messages": [{"role": "ai", "content": reply}], "count": count + 1}


def ask(state: State) -> dict[str, Any]:
    return {"answer": interrupt({"question": "approve?"})}


def done(state: State) -> dict[str, Any]:
    return {"messages": [{"role": "ai", "content": f"done {state['answer']}"}]}


def fan_out(state: Any) -> list[Send]:
    return [Send("work", {"fan": [i]}) for i in range(3)]


def work(state: Any) -> dict[str, Any]:
    return {"fan": [state["fan"][0] * 10]}


def ok(state: State) -> dict[str, Any]:
    return {"count": 1}


def boom(state: State) -> dict[str, Any]:
    raise ValueError("boom")


def inner(state: State) -> dict[str, Any]:
    return {"messages": [{"role": "ai", "content": "from inner"}]}


def ask_sub(state: State) -> dict[str, Any]:
    interrupt("sub?")
    return {}


def build_graph(name: str, saver: BaseCheckpointSaver) -> Any:
    """Compile the upstream fixture's graph ``name`` onto ``saver``."""
    builder = StateGraph(State)
    if name == "chat":
        builder.add_node("agent", agent)
        builder.add_edge(START, "agent")
        builder.add_edge("agent", END)
    elif name == "interrupt":
        builder.add_node("ask", ask)
        builder.add_node("done", done)
        builder.add_edge(START, "ask")
        builder.add_edge("ask", "done")
        builder.add_edge("done", END)
    elif name == "fanout":
        builder.add_node("work", work)
        builder.add_conditional_edges(START, fan_out, ["work"])
        builder.add_edge("work", END)
    elif name == "failing":
        builder.add_node("ok", ok)
        builder.add_node("boom", boom)
        builder.add_edge(START, "ok")
        builder.add_edge(START, "boom")
    elif name == "subgraph":
        sub = StateGraph(State)
        sub.add_node("inner", inner)
        sub.add_edge(START, "inner")
        sub2 = StateGraph(State)
        sub2.add_node("ask", ask_sub)
        sub2.add_edge(START, "ask")
        builder.add_node("sub", sub.compile())
        builder.add_node("sub2", sub2.compile())
        builder.add_edge(START, "sub")
        builder.add_edge("sub", "sub2")
        builder.add_edge("sub2", END)
    else:
        raise AssertionError(f"unknown graph {name!r}")
    return builder.compile(checkpointer=saver)


class LegacyState(TypedDict, total=False):
    fan: Annotated[list, operator.add]
    log: Annotated[list, operator.add]


def start(state: LegacyState) -> dict[str, Any]:
    return {"log": ["start"]}


def build_legacy_graph(saver: BaseCheckpointSaver) -> Any:
    builder = StateGraph(LegacyState)
    builder.add_node("start", start)
    builder.add_node("work", work)
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", fan_out, ["work"])
    builder.add_edge("work", END)
    return builder.compile(checkpointer=saver, interrupt_before=["work"])


# --------------------------------------------------------------------------
# What LangGraph shows of a thread
# --------------------------------------------------------------------------


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def observe(
    state: StateSnapshot, history: list[StateSnapshot], namespaces: list[str]
) -> dict[str, Any]:
    """A thread as ``expected.json`` records it (every field but ``graph``)."""
    return {
        "values": state.values,
        "next": list(state.next),
        "interrupts": [i.value for i in state.interrupts],
        "tasks_with_error": [t.name for t in state.tasks if t.error],
        "history_len": len(history),
        "history_ids": [h.config["configurable"]["checkpoint_id"] for h in history],
        "history_sources": [h.metadata["source"] for h in history],
        "history_steps": [h.metadata["step"] for h in history],
        "list_all_ns": namespaces,
    }


def check_thread(
    state: StateSnapshot,
    history: list[StateSnapshot],
    namespaces: list[str],
    expected: dict[str, Any],
) -> None:
    wanted = {k: v for k, v in expected.items() if k != "graph"}
    observed = observe(state, history, namespaces)
    # Every recorded field is compared: a new one in expected.json fails here.
    assert observed.keys() == wanted.keys()
    assert observed == wanted
    # The interrupts hang off the tasks they came from, too.
    task_interrupts = [i.value for t in state.tasks for i in t.interrupts]
    assert task_interrupts == expected["interrupts"]
    # A pending task that is a subgraph shows the subgraph's state, found
    # under the namespace the database holds for it.
    names = {t.name for t in state.tasks}
    subgraph_ns = sorted(
        t.state.config["configurable"]["checkpoint_ns"]
        for t in state.tasks
        if isinstance(t.state, StateSnapshot)
    )
    assert subgraph_ns == [ns for ns in namespaces if ns.split(":")[0] in names]


UPSTREAM_THREADS = sorted(read_fixture(UPSTREAM).expected["threads"])


@pytest.mark.parametrize("thread_id", UPSTREAM_THREADS)
@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_upstream_thread_sync(upstream_uri: str, kind: str, thread_id: str) -> None:
    expected = read_fixture(UPSTREAM).expected["threads"][thread_id]
    config = thread_config(thread_id)
    with sync_saver(kind, upstream_uri) as saver:
        graph = build_graph(expected["graph"], saver)
        state = graph.get_state(config, subgraphs=True)
        history = list(graph.get_state_history(config))
        namespaces = sorted(
            {t.config["configurable"]["checkpoint_ns"] for t in saver.list(config)}
        )
    check_thread(state, history, namespaces, expected)


@pytest.mark.parametrize("thread_id", UPSTREAM_THREADS)
@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_upstream_thread_async(
    upstream_uri: str, kind: str, thread_id: str
) -> None:
    expected = read_fixture(UPSTREAM).expected["threads"][thread_id]
    config = thread_config(thread_id)
    async with async_saver(kind, upstream_uri) as saver:
        graph = build_graph(expected["graph"], saver)
        state = await graph.aget_state(config, subgraphs=True)
        history = [h async for h in graph.aget_state_history(config)]
        namespaces = sorted(
            {
                t.config["configurable"]["checkpoint_ns"]
                async for t in saver.alist(config)
            }
        )
    check_thread(state, history, namespaces, expected)


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_upstream_filter_sync(upstream_uri: str, kind: str) -> None:
    with sync_saver(kind, upstream_uri) as saver:
        found = list(saver.list(None, filter={"user": "alice"}))
    assert len(found) == read_fixture(UPSTREAM).expected["filter_user_alice"]
    assert {t.config["configurable"]["thread_id"] for t in found} == {"chat-1"}


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_upstream_filter_async(upstream_uri: str, kind: str) -> None:
    async with async_saver(kind, upstream_uri) as saver:
        found = [t async for t in saver.alist(None, filter={"user": "alice"})]
    assert len(found) == read_fixture(UPSTREAM).expected["filter_user_alice"]
    assert {t.config["configurable"]["thread_id"] for t in found} == {"chat-1"}


# --------------------------------------------------------------------------
# setup() on a foreign database
# --------------------------------------------------------------------------


def test_fixture_versions() -> None:
    """The loader builds 3.2.0's database at 9 and the 0.2 one at 8."""
    assert read_fixture(UPSTREAM).version == 9
    assert read_fixture(LEGACY).version == 8
    assert "task_path" not in read_fixture(LEGACY).columns("checkpoint_writes")


def check_setup_effect(fixture: Fixture, uri: str, before: dict[str, Any]) -> None:
    assert migration_versions(uri) == list(range(len(MIGRATIONS)))
    assert dump(uri, fixture) == before
    if "task_path" not in fixture.columns("checkpoint_writes"):
        # Migration 9 gave the old writes the column, empty.
        assert task_paths(uri) == [""] * len(before["checkpoint_writes"])


def latest_ids(fixture: Fixture) -> dict[str, str]:
    """Each thread's newest root checkpoint id, from the fixture's rows."""
    latest: dict[str, str] = {}
    for table, row in fixture.rows:
        if table == "checkpoints" and row["checkpoint_ns"] == "":
            thread_id = row["thread_id"]
            latest[thread_id] = max(latest.get(thread_id, ""), row["checkpoint_id"])
    return latest


def setup_cases(kinds: list[str]) -> list[Any]:
    """(kind, fixture) pairs: every connection kind on both fixtures.

    Through a pipeline, setup() once raced with psycopg's DEALLOCATE ALL after
    the ALTER migrations and could read a stale result; these cases guard it.
    """
    return [pytest.param(kind, name) for kind in kinds for name in (UPSTREAM, LEGACY)]


@pytest.mark.parametrize(("kind", "name"), setup_cases(SYNC_KINDS))
def test_setup_sync(databases: Databases, kind: str, name: str) -> None:
    fixture = read_fixture(name)
    uri = fresh_load(databases, name, setup=False)
    assert_holds_fixture_rows(uri, fixture)
    assert migration_versions(uri) == list(range(fixture.version + 1))
    before = dump(uri, fixture)
    with sync_saver(kind, uri) as saver:
        for _ in range(2):  # the second call finds nothing to do
            saver.setup()
            # The saver is usable right after, query after query.
            for thread_id, checkpoint_id in sorted(latest_ids(fixture).items()):
                for _ in range(2):
                    found = saver.get_tuple(thread_config(thread_id))
                    assert found is not None
                    found_id = found.config["configurable"]["checkpoint_id"]
                    assert found_id == checkpoint_id
    check_setup_effect(fixture, uri, before)


@pytest.mark.parametrize(("kind", "name"), setup_cases(ASYNC_KINDS))
async def test_setup_async(databases: Databases, kind: str, name: str) -> None:
    fixture = read_fixture(name)
    uri = fresh_load(databases, name, setup=False)
    before = dump(uri, fixture)
    async with async_saver(kind, uri) as saver:
        for _ in range(2):
            await saver.setup()
            for thread_id, checkpoint_id in sorted(latest_ids(fixture).items()):
                for _ in range(2):
                    found = await saver.aget_tuple(thread_config(thread_id))
                    assert found is not None
                    found_id = found.config["configurable"]["checkpoint_id"]
                    assert found_id == checkpoint_id
    check_setup_effect(fixture, uri, before)


async def test_setup_repeated_through_async_pipeline(databases: Databases) -> None:
    """setup() is safe on every start, also through a pipeline.

    Reading a stale pipeline result was a race (about one call in ten), hence
    the many calls.
    """
    uri = databases.create()
    async with async_saver("apipeline", uri) as saver:
        for _ in range(500):
            await saver.setup()
    assert migration_versions(uri) == list(range(len(MIGRATIONS)))


# --------------------------------------------------------------------------
# Writing onto the 3.2.0 database: resume its open interrupt
# --------------------------------------------------------------------------


def check_resumed(history: list[StateSnapshot]) -> None:
    threads = read_fixture(UPSTREAM).expected["threads"]
    resumed, opened = threads["interrupt-resumed"], threads["interrupt-open"]
    state = history[0]
    assert state.values == resumed["values"]
    assert list(state.next) == resumed["next"] == []
    assert not state.interrupts and not state.tasks
    assert [h.metadata["source"] for h in history] == resumed["history_sources"]
    assert [h.metadata["step"] for h in history] == resumed["history_steps"]
    ids = [h.config["configurable"]["checkpoint_id"] for h in history]
    # The upstream checkpoints stay the first two; ours follow in order.
    assert ids[-2:] == opened["history_ids"]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_resume_upstream_interrupt_sync(databases: Databases, kind: str) -> None:
    uri = fresh_load(databases, UPSTREAM)
    config = thread_config("interrupt-open")
    with sync_saver(kind, uri) as saver:
        graph = build_graph("interrupt", saver)
        result = graph.invoke(Command(resume="yes"), config)
        history = list(graph.get_state_history(config))
    assert (
        result
        == read_fixture(UPSTREAM).expected["threads"]["interrupt-resumed"]["values"]
    )
    check_resumed(history)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_resume_upstream_interrupt_async(databases: Databases, kind: str) -> None:
    uri = fresh_load(databases, UPSTREAM)
    config = thread_config("interrupt-open")
    async with async_saver(kind, uri) as saver:
        graph = build_graph("interrupt", saver)
        result = await graph.ainvoke(Command(resume="yes"), config)
        history = [h async for h in graph.aget_state_history(config)]
    assert (
        result
        == read_fixture(UPSTREAM).expected["threads"]["interrupt-resumed"]["values"]
    )
    check_resumed(history)


# --------------------------------------------------------------------------
# The 0.2 database with pending sends
# --------------------------------------------------------------------------

LEGACY_CONFIG = thread_config("legacy-sends")


def check_legacy_before(state: StateSnapshot, history: list[StateSnapshot]) -> None:
    expected = read_fixture(LEGACY).expected["before_resume"]
    assert state.values == expected["values"]
    assert sorted(state.next) == expected["next"]
    assert len(history) == expected["history_len"]


def check_legacy_after(state: StateSnapshot) -> None:
    expected = read_fixture(LEGACY).expected["after_resume"]
    values = {k: sorted(v) for k, v in state.values.items()}
    assert values == expected["values"]
    assert list(state.next) == expected["next"]


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_legacy_before_resume_sync(legacy_uri: str, kind: str) -> None:
    with sync_saver(kind, legacy_uri) as saver:
        graph = build_legacy_graph(saver)
        state = graph.get_state(LEGACY_CONFIG)
        history = list(graph.get_state_history(LEGACY_CONFIG))
    check_legacy_before(state, history)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_legacy_before_resume_async(legacy_uri: str, kind: str) -> None:
    async with async_saver(kind, legacy_uri) as saver:
        graph = build_legacy_graph(saver)
        state = await graph.aget_state(LEGACY_CONFIG)
        history = [h async for h in graph.aget_state_history(LEGACY_CONFIG)]
    check_legacy_before(state, history)


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_legacy_resume_sync(databases: Databases, kind: str) -> None:
    uri = fresh_load(databases, LEGACY)
    with sync_saver(kind, uri) as saver:
        graph = build_legacy_graph(saver)
        graph.invoke(None, LEGACY_CONFIG)
        state = graph.get_state(LEGACY_CONFIG)
    check_legacy_after(state)


@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_legacy_resume_async(databases: Databases, kind: str) -> None:
    uri = fresh_load(databases, LEGACY)
    async with async_saver(kind, uri) as saver:
        graph = build_legacy_graph(saver)
        await graph.ainvoke(None, LEGACY_CONFIG)
        state = await graph.aget_state(LEGACY_CONFIG)
    check_legacy_after(state)


# --------------------------------------------------------------------------
# What our savers write keeps the 3.x meaning
# --------------------------------------------------------------------------

PRIMITIVE_JSON_TYPES = {"null", "string", "number", "boolean"}


def check_rows_keep_3x_meaning(uri: str, saver: PostgresSaver) -> tuple[int, int]:
    """Read the rows at ``uri`` the way 3.x does and compare with our saver.

    3.x keeps primitive channel values inline in ``checkpoint`` and rebuilds
    the others from the blob keyed by (channel, ``channel_versions[channel]``),
    skipping ``empty`` ones; a version with no blob means no value (3.2.0
    writes blobs only for the values it does not inline, so a consumed
    channel such as ``__start__`` keeps its version and has no blob).
    Returns how many non-inline versions had a blob and how many had none.
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        checkpoints = conn.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id, checkpoint, "
            "jsonb_typeof(metadata) FROM checkpoints"
        ).fetchall()
        blobs = {
            (t, ns, ch, ver): (ty, blob)
            for t, ns, ch, ver, ty, blob in conn.execute(
                "SELECT thread_id, checkpoint_ns, channel, version, type, blob "
                "FROM checkpoint_blobs"
            ).fetchall()
        }
        inline_types = conn.execute(
            "SELECT DISTINCT jsonb_typeof(v.value) FROM checkpoints, "
            "jsonb_each(checkpoint -> 'channel_values') v"
        ).fetchall()
        writes = conn.execute("SELECT task_path, channel FROM checkpoint_writes")
        writes_rows = writes.fetchall()
    assert checkpoints and writes_rows
    assert {t for (t,) in inline_types} <= PRIMITIVE_JSON_TYPES
    with_blob = without_blob = 0
    for thread_id, ns, checkpoint_id, checkpoint, metadata_type in checkpoints:
        assert metadata_type == "object"
        inline = checkpoint["channel_values"]
        rebuilt = dict(inline)
        for channel, version in checkpoint["channel_versions"].items():
            if channel in inline:
                continue
            found = blobs.get((thread_id, ns, channel, version))
            if found is None:
                without_blob += 1
                continue
            with_blob += 1
            if found[0] != "empty":
                rebuilt[channel] = saver.serde.loads_typed(found)
        config = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
            }
        }
        stored = saver.get_tuple(config)
        assert stored is not None
        # Every value our saver sees is one a 3.x reader finds, and no other.
        assert rebuilt == stored.checkpoint["channel_values"], config
    for task_path, channel in writes_rows:
        # Writes of tasks carry the task's path; only the value a Command
        # resumes with belongs to no task, as in 3.x.
        assert task_path or channel == "__resume__", channel
    return with_blob, without_blob


def test_written_rows_keep_3x_meaning(databases: Databases) -> None:
    uri = databases.create()
    with sync_saver("conn", uri) as saver:
        chat = build_graph("chat", saver)
        config = thread_config("w-chat")
        chat.invoke({"messages": [{"role": "human", "content": "hi"}]}, config)
        chat.invoke({"messages": [{"role": "human", "content": "again"}]}, config)
        chat.update_state(config, {"answer": "x"})
        asking = build_graph("interrupt", saver)
        config = thread_config("w-interrupt")
        asking.invoke({"messages": []}, config)
        asking.invoke(Command(resume="ok"), config)
        build_graph("fanout", saver).invoke({"fan": []}, thread_config("w-fanout"))
        build_graph("subgraph", saver).invoke({}, thread_config("w-subgraph"))
        with_blob, _ = check_rows_keep_3x_meaning(uri, saver)
    assert with_blob > 0


def test_upstream_rows_have_the_same_meaning(upstream_uri: str) -> None:
    """The same reading of 3.2.0's own rows; they, too, leave versions blobless."""
    with sync_saver("conn", upstream_uri) as saver:
        with_blob, without_blob = check_rows_keep_3x_meaning(upstream_uri, saver)
    assert with_blob > 0 and without_blob > 0
