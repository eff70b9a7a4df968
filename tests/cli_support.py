"""What the command line's tests share: databases filled by a real graph, and
running ``langgraph-postgres`` in-process as a user's shell would.

The graph covers what ``threads``/``history``/``show``/``diff``/``export``
must handle: several turns, ``Send`` fan-out into a subgraph (checkpoints in
child namespaces), an ``interrupt`` left pending, a ``DeltaChannel``, run
metadata (``user``), and a twin database written through LangGraph's
``EncryptedSerializer``. Each is filled once per session and cloned for every
test (``CREATE DATABASE ... TEMPLATE``), so a test may write freely.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import psycopg
import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt
from psycopg import sql
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.cli import main
from langgraph.store.postgres import PostgresStore

#: The AES key the encrypted database was written with (16 bytes).
AES_KEY = "0123456789abcdef"

#: Threads of the filled database and what they hold.
CHAT = "chat-1"  # 3 turns, user alice
FAN = "fan-1"  # Send fan-out into a subgraph: child namespaces, user bob
PAUSED = "paused-1"  # interrupted at "review", user alice
RESUMED = "resumed-1"  # interrupted, then resumed with Command(resume=...)
SECRET = "secret-1"  # in the encrypted database only
THREADS = (CHAT, FAN, PAUSED, RESUMED)
#: Store items: (namespace, key, value).
STORE_ITEMS = (
    (("users", "alice"), "profile", {"name": "Alice", "lang": "en"}),
    (("users", "alice"), "prefs", {"theme": "dark"}),
    (("users", "bob"), "profile", {"name": "Bob", "lang": "fr"}),
    (("docs",), "readme", {"text": "hello world"}),
)


def _extend(current: list, updates: Sequence[list]) -> list:
    result = list(current)
    for update in updates:
        result.extend(update)
    return result


class State(TypedDict, total=False):
    messages: Annotated[list, operator.add]
    log: Annotated[list, DeltaChannel(_extend, snapshot_frequency=3)]
    results: Annotated[list, operator.add]
    items: list
    ask: bool


class WorkState(TypedDict, total=False):
    item: str
    results: Annotated[list, operator.add]


def _do(state: WorkState) -> dict[str, Any]:
    return {"results": [state["item"].upper()]}


def _chat(state: State) -> dict[str, Any]:
    last = state["messages"][-1] if state.get("messages") else ""
    turn = len(state.get("log") or []) + 1
    return {"messages": [f"bot: re {last}"], "log": [f"turn {turn}"]}


def _fan_out(state: State) -> Any:
    items = state.get("items") or []
    return [Send("work", {"item": i}) for i in items] if items else "review"


def _review(state: State) -> dict[str, Any]:
    if not state.get("ask"):
        return {}
    answer = interrupt("approve?")
    return {"messages": [f"approved: {answer}"], "ask": False}


def build_graph(checkpointer: Any) -> Any:
    """The test graph, compiled with ``checkpointer``."""
    sub = StateGraph(WorkState)
    sub.add_node("do", _do)
    sub.add_edge(START, "do")
    sub.add_edge("do", END)
    builder = StateGraph(State)
    builder.add_node("chat", _chat)
    builder.add_node("work", sub.compile())
    builder.add_node("review", _review)
    builder.add_edge(START, "chat")
    builder.add_conditional_edges("chat", _fan_out, ["work", "review"])
    builder.add_edge("work", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=checkpointer)


def _config(thread_id: str, user: str) -> Any:
    return {"configurable": {"thread_id": thread_id}, "metadata": {"user": user}}


def fill(uri: str, *, serde: Any = None, threads: Sequence[str] = THREADS) -> None:
    """Run the test graph into the (set up) database at ``uri``."""
    with PostgresSaver.from_conn_string(uri, serde=serde) as saver:
        graph = build_graph(saver)
        if CHAT in threads:
            for text in ("hello", "how are you?", "bye"):
                graph.invoke({"messages": [f"user: {text}"]}, _config(CHAT, "alice"))
        if FAN in threads:
            graph.invoke(
                {"messages": ["user: split"], "items": ["a", "b"]}, _config(FAN, "bob")
            )
        if PAUSED in threads:
            graph.invoke(
                {"messages": ["user: ask"], "ask": True}, _config(PAUSED, "alice")
            )
        if RESUMED in threads:
            config = _config(RESUMED, "carol")
            graph.invoke({"messages": ["user: ask"], "ask": True}, config)
            graph.invoke(Command(resume="yes"), config)
        if SECRET in threads:
            for text in ("top", "secret"):
                graph.invoke({"messages": [f"user: {text}"]}, _config(SECRET, "dave"))


def fill_store(uri: str) -> None:
    with PostgresStore.from_conn_string(uri) as store:
        for namespace, key, value in STORE_ITEMS:
            store.put(namespace, key, value)


def encrypted_serde() -> EncryptedSerializer:
    return EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY.encode())


# -- databases ---------------------------------------------------------------


def _clone(server_uri: str, template: str) -> str:
    name = f"lgcp_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def _drop(server_uri: str, name: str) -> None:
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@contextlib.contextmanager
def _template(server_uri: str, base: str, fill_it: Any) -> Iterator[str]:
    name = _clone(server_uri, base)
    try:
        fill_it(psycopg.conninfo.make_conninfo(server_uri, dbname=name))
        yield name
    finally:
        _drop(server_uri, name)


@pytest.fixture(scope="session")
def graph_template(server_uri: str, template_db: str) -> Iterator[str]:
    """A database name: set up, filled by :func:`fill` and :func:`fill_store`."""

    def fill_all(uri: str) -> None:
        fill(uri)
        fill_store(uri)

    with _template(server_uri, template_db, fill_all) as name:
        yield name


@pytest.fixture(scope="session")
def encrypted_template(server_uri: str, template_db: str) -> Iterator[str]:
    """A database name: thread :data:`SECRET` written with AES (:data:`AES_KEY`)."""

    def fill_secret(uri: str) -> None:
        fill(uri, serde=encrypted_serde(), threads=[SECRET])

    with _template(server_uri, template_db, fill_secret) as name:
        yield name


def _clone_fixture(server_uri: str, template: str) -> Iterator[str]:
    name = _clone(server_uri, template)
    try:
        yield psycopg.conninfo.make_conninfo(server_uri, dbname=name)
    finally:
        _drop(server_uri, name)


@pytest.fixture
def graph_db(server_uri: str, graph_template: str) -> Iterator[str]:
    """URI of this test's own copy of the graph-filled database."""
    yield from _clone_fixture(server_uri, graph_template)


@pytest.fixture
def encrypted_db(server_uri: str, encrypted_template: str) -> Iterator[str]:
    """URI of this test's own copy of the encrypted database."""
    yield from _clone_fixture(server_uri, encrypted_template)


# -- running the command line --------------------------------------------------


@dataclass
class CliResult:
    """What a shell user sees: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as the one JSON document ``--json`` prints."""
        assert self.code == 0, (self.code, self.err)
        return orjson.loads(self.out)


def run_cli(
    *args: str,
    dsn: str | None = None,
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
) -> CliResult:
    """Run ``langgraph-postgres ARGS`` in this process and capture its output.

    ``dsn`` is passed as ``--dsn`` (before the command); ``env`` sets (or,
    with ``None``, unsets) environment variables for the run; POSTGRES_URI,
    DATABASE_URL and LANGGRAPH_AES_KEY are unset unless given, so the host's
    environment never leaks in.
    """
    argv = ([f"--dsn={dsn}"] if dsn else []) + list(args)
    changes: dict[str, str | None] = {
        "POSTGRES_URI": None,
        "DATABASE_URL": None,
        "LANGGRAPH_AES_KEY": None,
        **(env or {}),
    }
    saved = {name: os.environ.get(name) for name in changes}
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sys.stdin = io.StringIO(stdin or "")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        sys.stdin = old_stdin
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return CliResult(code, out.getvalue(), err.getvalue())
