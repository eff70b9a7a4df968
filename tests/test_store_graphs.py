"""Real graphs with long-term memory: our saver and our store together.

A chat graph remembers facts about a user across threads: a node saves what
the user says into the store (through ``get_store()``), another recalls the
most relevant memory by semantic search (or, without pgvector, by a filter)
through the ``store`` parameter LangGraph injects into nodes, and the
checkpointer keeps each thread's conversation. The same scenario runs on
``InMemorySaver`` + ``InMemoryStore`` and on ours, sync and async, and what
the user sees must be the same.
"""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from tests.store_embeddings import DIMS, embed_texts
from tests.stores import has_pgvector

INDEX: dict[str, Any] = {"dims": DIMS, "embed": embed_texts, "fields": ["text"]}


class State(TypedDict):
    user: str
    messages: Annotated[list[str], operator.add]
    recalled: str | None


def remember(state: State) -> dict[str, Any]:
    """Save the user's last message as a memory (a sync node: get_store())."""
    store = get_store()
    text = state["messages"][-1]
    if text.startswith("remember "):
        fact = text.removeprefix("remember ")
        store.put(
            ("memories", state["user"]),
            str(uuid.uuid5(uuid.NAMESPACE_URL, fact)),
            {"text": fact},
        )
    return {}


def make_recall(semantic: bool) -> Any:
    def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
        text = state["messages"][-1]
        if not text.startswith("what "):
            return {"recalled": None}
        namespace = ("memories", state["user"])
        if semantic:
            found = store.search(namespace, query=text.removeprefix("what "), limit=1)
        else:
            found = store.search(namespace, filter={"text": text.removeprefix("what ")})
        return {
            "recalled": found[0].value["text"] if found else None,
            "messages": [f"bot: {found[0].value['text'] if found else 'no idea'}"],
        }

    return recall


def make_arecall(semantic: bool) -> Any:
    async def arecall(state: State, *, store: BaseStore) -> dict[str, Any]:
        text = state["messages"][-1]
        if not text.startswith("what "):
            return {"recalled": None}
        namespace = ("memories", state["user"])
        if semantic:
            found = await store.asearch(
                namespace, query=text.removeprefix("what "), limit=1
            )
        else:
            found = await store.asearch(
                namespace, filter={"text": text.removeprefix("what ")}
            )
        return {
            "recalled": found[0].value["text"] if found else None,
            "messages": [f"bot: {found[0].value['text'] if found else 'no idea'}"],
        }

    return arecall


def build(recall: Any) -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    return builder


SEMANTIC_TURNS = [
    ("t1", "remember coffee with oat milk"),
    ("t1", "remember allergic to peanuts"),
    ("t2", "what coffee milk"),
    ("t3", "what peanuts allergy"),
]
EXACT_TURNS = [
    ("t1", "remember coffee with oat milk"),
    ("t2", "what coffee with oat milk"),
    ("t2", "what tea"),
]


def observe(graph: Any, turns: list[tuple[str, str]]) -> list[Any]:
    seen = []
    for thread, text in turns:
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        out = graph.invoke({"user": "alice", "messages": [text]}, config)
        seen.append((thread, out["recalled"], list(out["messages"])))
    return seen


async def aobserve(graph: Any, turns: list[tuple[str, str]]) -> list[Any]:
    seen = []
    for thread, text in turns:
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        out = await graph.ainvoke({"user": "alice", "messages": [text]}, config)
        seen.append((thread, out["recalled"], list(out["messages"])))
    return seen


def expected(semantic: bool) -> list[Any]:
    store = InMemoryStore(index=INDEX) if semantic else InMemoryStore()  # type: ignore[arg-type]
    graph = build(make_recall(semantic)).compile(
        checkpointer=InMemorySaver(), store=store
    )
    return observe(graph, SEMANTIC_TURNS if semantic else EXACT_TURNS)


@pytest.mark.parametrize("semantic", [False, True], ids=["filter", "semantic"])
def test_sync_graph_with_memory(db_uri: str, semantic: bool) -> None:
    if semantic and not has_pgvector(db_uri):
        pytest.skip("the test server has no pgvector extension")
    index = INDEX if semantic else None
    with (
        PostgresSaver.from_conn_string(db_uri) as saver,
        PostgresStore.from_conn_string(db_uri, index=index) as store,  # type: ignore[arg-type]
    ):
        store.setup()
        graph = build(make_recall(semantic)).compile(checkpointer=saver, store=store)
        seen = observe(graph, SEMANTIC_TURNS if semantic else EXACT_TURNS)
        # The conversation of t1 is in the checkpointer, the facts in the store.
        state = graph.get_state({"configurable": {"thread_id": "t1"}})
        turns = SEMANTIC_TURNS if semantic else EXACT_TURNS
        assert state.values["messages"] == [t for th, t in turns if th == "t1"]
        assert len(store.search(("memories", "alice"))) == (2 if semantic else 1)
    assert seen == expected(semantic)


@pytest.mark.parametrize("semantic", [False, True], ids=["filter", "semantic"])
async def test_async_graph_with_memory(db_uri: str, semantic: bool) -> None:
    if semantic and not has_pgvector(db_uri):
        pytest.skip("the test server has no pgvector extension")
    index = INDEX if semantic else None
    async with (
        AsyncPostgresSaver.from_conn_string(
            db_uri, pool_config={"max_size": 4}
        ) as saver,
        AsyncPostgresStore.from_conn_string(
            db_uri,
            pool_config={"max_size": 4},
            index=index,  # type: ignore[arg-type]
        ) as store,
    ):
        await store.setup()
        # The sync node `remember` runs in a worker thread and calls the
        # async store's sync put, which runs on the store's loop.
        graph = build(make_arecall(semantic)).compile(checkpointer=saver, store=store)
        seen = await aobserve(graph, SEMANTIC_TURNS if semantic else EXACT_TURNS)
    assert seen == expected(semantic)
