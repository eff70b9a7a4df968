"""Real LangGraph graphs on our savers behave exactly as on ``InMemorySaver``.

Each scenario is written once, as a coroutine that drives a graph through a
*driver* and returns what a user would observe (values, ``next``, interrupts,
failed tasks, history, metadata) as plain data with checkpoint ids, task ids
and timestamps left out. The sync driver calls the sync graph API
(``invoke``/``get_state``/...) and never suspends, so its scenarios are run
without an event loop; the async driver calls ``ainvoke``/``aget_state``/...
Every scenario runs on ``InMemorySaver`` and on each connection kind of our
savers, and the two observations must be equal.
"""

from __future__ import annotations

import operator
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypedDict, TypeVar

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import (
    Command,
    Interrupt,
    PregelTask,
    Send,
    StateSnapshot,
    interrupt,
)

T = TypeVar("T")
Graph = Any
Config = dict[str, Any]


# --------------------------------------------------------------------------
# Drivers: the same scenario through the sync or the async graph API


class SyncDriver:
    """The sync API. Its coroutines never suspend (see :func:`run_sync`)."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self.saver = saver

    async def invoke(self, graph: Graph, inp: Any, config: Config) -> Any:
        return graph.invoke(inp, config)

    async def get_state(
        self, graph: Graph, config: Config, subgraphs: bool = False
    ) -> StateSnapshot:
        return graph.get_state(config, subgraphs=subgraphs)

    async def history(self, graph: Graph, config: Config, **kw: Any) -> list[Any]:
        return list(graph.get_state_history(config, **kw))

    async def update_state(
        self, graph: Graph, config: Config, values: Any, as_node: str | None = None
    ) -> Config:
        return graph.update_state(config, values, as_node=as_node)

    async def list(self, config: Config | None, **kw: Any) -> list[Any]:
        return list(self.saver.list(config, **kw))


class AsyncDriver:
    """The async API: ``ainvoke``, ``aget_state``, ``alist``, ..."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self.saver = saver

    async def invoke(self, graph: Graph, inp: Any, config: Config) -> Any:
        return await graph.ainvoke(inp, config)

    async def get_state(
        self, graph: Graph, config: Config, subgraphs: bool = False
    ) -> StateSnapshot:
        return await graph.aget_state(config, subgraphs=subgraphs)

    async def history(self, graph: Graph, config: Config, **kw: Any) -> list[Any]:
        return [s async for s in graph.aget_state_history(config, **kw)]

    async def update_state(
        self, graph: Graph, config: Config, values: Any, as_node: str | None = None
    ) -> Config:
        return await graph.aupdate_state(config, values, as_node=as_node)

    async def list(self, config: Config | None, **kw: Any) -> list[Any]:
        return [t async for t in self.saver.alist(config, **kw)]


Driver = SyncDriver | AsyncDriver


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on the sync driver, which never awaits anything real."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a sync scenario suspended; it must not await real I/O")


# --------------------------------------------------------------------------
# Turning what the graph API returns into plain, saver-independent data


def plain(obj: Any) -> Any:
    """``obj`` with snapshots, tasks, interrupts and errors made comparable."""
    if isinstance(obj, StateSnapshot):
        return snap(obj)
    if isinstance(obj, PregelTask):
        return task(obj)
    if isinstance(obj, Interrupt):
        return {"interrupt": plain(obj.value)}
    if isinstance(obj, BaseException):
        return {"raised": type(obj).__name__, "text": str(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    return obj


def meta(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Checkpoint metadata, with the ids in ``parents`` reduced to namespaces."""
    if metadata is None:
        return None
    out = {k: v for k, v in metadata.items() if k != "parents"}
    out["parents"] = sorted(ns.split(":")[0] for ns in metadata.get("parents", {}))
    return out


def task(t: PregelTask) -> dict[str, Any]:
    if isinstance(t.state, StateSnapshot):
        state: Any = snap(t.state)
    else:
        state = None if t.state is None else "config"
    return {
        "name": t.name,
        "error": None if t.error is None else str(t.error),
        "interrupts": [plain(i.value) for i in t.interrupts],
        "state": state,
        "result": plain(t.result),
    }


def snap(s: StateSnapshot) -> dict[str, Any]:
    return {
        "values": plain(s.values),
        "next": s.next,
        "metadata": meta(s.metadata),
        "tasks": sorted((task(t) for t in s.tasks), key=repr),
        "interrupts": [plain(i.value) for i in s.interrupts],
        "has_parent": s.parent_config is not None,
    }


def ids(config: Config | None) -> tuple[str, str, str] | None:
    if config is None:
        return None
    c = config["configurable"]
    return (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])


def chained(history: list[StateSnapshot]) -> bool:
    """Each entry's parent is the next (older) entry; the oldest has none."""
    parents = [ids(s.parent_config) for s in history]
    return parents == [ids(s.config) for s in history[1:]] + [None]


def tdef(thread_id: str) -> Config:
    return {"configurable": {"thread_id": thread_id}}


# --------------------------------------------------------------------------
# Graphs


class Chat(TypedDict, total=False):
    messages: Annotated[list[str], operator.add]
    count: int


def chat_graph(saver: BaseCheckpointSaver) -> Graph:
    def reply(state: Chat) -> Chat:
        n = state.get("count", 0) + 1
        return {"messages": [f"reply {n} to {state['messages'][-1]}"], "count": n}

    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    answer: str
    n: int


def ask_graph(saver: BaseCheckpointSaver, calls: Counter[str]) -> Graph:
    def prep(state: Log) -> Log:
        calls["prep"] += 1
        return {"log": ["prep"]}

    def ask(state: Log) -> Log:
        calls["ask"] += 1
        answer = interrupt({"question": "proceed?", "seen": list(state["log"])})
        return {"log": [f"asked:{answer}"], "answer": answer}

    def done(state: Log) -> Log:
        return {"log": ["done"]}

    builder = StateGraph(Log)
    builder.add_node("prep", prep)
    builder.add_node("ask", ask)
    builder.add_node("done", done)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "ask")
    builder.add_edge("ask", "done")
    builder.add_edge("done", END)
    return builder.compile(checkpointer=saver)


class Fan(TypedDict, total=False):
    topic: str
    results: Annotated[list[str], operator.add]


def fan_graph(saver: BaseCheckpointSaver, calls: Counter[str]) -> Graph:
    def fan(state: Fan) -> list[Send]:
        return [Send("work", {"topic": state["topic"], "i": i}) for i in range(3)]

    def work(arg: dict[str, Any]) -> Fan:
        calls["work"] += 1
        return {"results": [f"{arg['topic']}-{arg['i']}"]}

    builder = StateGraph(Fan)
    builder.add_node("work", work)
    builder.add_conditional_edges(START, fan, ["work"])
    builder.add_edge("work", END)
    return builder.compile(checkpointer=saver, interrupt_before=["work"])


class Ok(TypedDict, total=False):
    ok: Annotated[list[str], operator.add]


def failing_graph(saver: BaseCheckpointSaver, calls: Counter[str]) -> Graph:
    good_done = threading.Event()

    def good(state: Ok) -> Ok:
        calls["good"] += 1
        good_done.set()
        return {"ok": ["good"]}

    def bad(state: Ok) -> Ok:
        calls["bad"] += 1
        if calls["bad"] == 1:
            # Let ``good`` finish (and its write be recorded) before failing.
            good_done.wait(5)
            time.sleep(0.05)
            raise ValueError("bad node failed on its first call")
        return {"ok": ["bad-recovered"]}

    builder = StateGraph(Ok)
    builder.add_node("good", good)
    builder.add_node("bad", bad)
    builder.add_edge(START, "good")
    builder.add_edge(START, "bad")
    builder.add_edge("good", END)
    builder.add_edge("bad", END)
    return builder.compile(checkpointer=saver)


class Parent(TypedDict, total=False):
    topic: str
    log: Annotated[list[str], operator.add]
    answer: str


class Child(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    answer: str


def nested_graph(saver: BaseCheckpointSaver, calls: Counter[str]) -> Graph:
    def sub_a(state: Child) -> Child:
        calls["sub_a"] += 1
        return {"steps": [f"sub_a:{state['topic']}"]}

    def sub_ask(state: Child) -> Child:
        calls["sub_ask"] += 1
        answer = interrupt(
            {"question": "inside the subgraph?", "topic": state["topic"]}
        )
        return {"steps": [f"sub_ask:{answer}"], "answer": answer}

    sub = StateGraph(Child)
    sub.add_node("sub_a", sub_a)
    sub.add_node("sub_ask", sub_ask)
    sub.add_edge(START, "sub_a")
    sub.add_edge("sub_a", "sub_ask")
    sub.add_edge("sub_ask", END)

    def pre(state: Parent) -> Parent:
        calls["pre"] += 1
        return {"log": ["pre"]}

    def post(state: Parent) -> Parent:
        return {"log": [f"post:{state['answer']}"]}

    builder = StateGraph(Parent)
    builder.add_node("pre", pre)
    builder.add_node("child", sub.compile())
    builder.add_node("post", post)
    builder.add_edge(START, "pre")
    builder.add_edge("pre", "child")
    builder.add_edge("child", "post")
    builder.add_edge("post", END)
    return builder.compile(checkpointer=saver)


def steps_graph(saver: BaseCheckpointSaver) -> Graph:
    def a(state: Log) -> Log:
        return {"log": ["a"], "n": state.get("n", 0) + 1}

    def b(state: Log) -> Log:
        return {"log": [f"b saw n={state.get('n')}"]}

    builder = StateGraph(Log)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver, interrupt_before=["b"])


# --------------------------------------------------------------------------
# Scenarios: each returns what a user would observe


async def run_chat(d: Driver) -> dict[str, Any]:
    graph = chat_graph(d.saver)
    cfg = tdef("chat")
    replies = []
    for text in ["hi", "how are you", "bye"]:
        replies.append(await d.invoke(graph, {"messages": [text]}, cfg))
    return {
        "replies": replies,
        "state": snap(await d.get_state(graph, cfg)),
        "history_len": len(await d.history(graph, cfg)),
    }


async def run_interrupt(d: Driver) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    graph = ask_graph(d.saver, calls)
    cfg = tdef("ask")
    first = plain(await d.invoke(graph, {"log": ["start"]}, cfg))
    paused = snap(await d.get_state(graph, cfg))
    resumed = plain(await d.invoke(graph, Command(resume="yes"), cfg))
    return {
        "first": first,
        "paused": paused,
        "resumed": resumed,
        "final": snap(await d.get_state(graph, cfg)),
        "calls": dict(calls),
    }


async def run_send(d: Driver) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    graph = fan_graph(d.saver, calls)
    cfg = tdef("fan")
    out: dict[str, Any] = {}
    for round_ in ("x", "y"):
        first = await d.invoke(graph, {"topic": round_}, cfg)
        paused = await d.get_state(graph, cfg)
        done = await d.invoke(graph, None, cfg)
        state = await d.get_state(graph, cfg)
        out[round_] = {
            "first": plain(first),
            "paused_next": paused.next,
            "paused_tasks": sorted(t.name for t in paused.tasks),
            "results": sorted(done["results"]),
            "state_results": sorted(state.values["results"]),
            "state_next": state.next,
            "step": state.metadata["step"],
        }
    out["calls"] = dict(calls)
    return out


async def run_failing(d: Driver) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    graph = failing_graph(d.saver, calls)
    cfg = tdef("fail")
    try:
        await d.invoke(graph, {"ok": ["start"]}, cfg)
        raised = None
    except ValueError as exc:
        raised = plain(exc)
    failed = await d.get_state(graph, cfg)
    observed = {
        "raised": raised,
        "failed": snap(failed),
        "failed_next": failed.next,
        "error_tasks": [t.name for t in failed.tasks if t.error],
        "error_text": [str(t.error) for t in failed.tasks if t.error],
        "calls_after_failure": dict(calls),
    }
    # Retrying runs only the failed node: ``good``'s saved write is reused.
    retried = await d.invoke(graph, None, cfg)
    observed["retried"] = {**retried, "ok": sorted(retried["ok"])}
    observed["calls_after_retry"] = dict(calls)
    final = await d.get_state(graph, cfg)
    observed["final_ok"] = sorted(final.values["ok"])
    observed["final_next"] = final.next
    return observed


async def run_subgraph(d: Driver) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    graph = nested_graph(d.saver, calls)
    cfg = tdef("nested")
    out: dict[str, Any] = {}
    for round_ in ("one", "two"):
        inp = {"topic": round_, "log": [round_]}
        first = plain(await d.invoke(graph, inp, cfg))
        paused = await d.get_state(graph, cfg, subgraphs=True)
        shallow = await d.get_state(graph, cfg)
        (child,) = paused.tasks
        assert isinstance(child.state, StateSnapshot)
        # The subgraph's own checkpoint, addressed by the config it reports.
        direct = await d.get_state(graph, child.state.config)
        resumed = plain(await d.invoke(graph, Command(resume=f"yes-{round_}"), cfg))
        out[round_] = {
            "first": first,
            "paused": snap(paused),
            "shallow": snap(shallow),
            "direct": snap(direct),
            "resumed": resumed,
            "final": snap(await d.get_state(graph, cfg, subgraphs=True)),
        }
    out["calls"] = dict(calls)
    return out


async def run_update_state(d: Driver) -> dict[str, Any]:
    graph = steps_graph(d.saver)
    cfg = tdef("upd")
    seen: list[Any] = []

    async def look(label: str, result: Any = None) -> None:
        seen.append((label, plain(result), snap(await d.get_state(graph, cfg))))

    await look("paused", await d.invoke(graph, {"log": ["start"]}, cfg))
    updated = await d.update_state(graph, cfg, {"log": ["manual"], "n": 5})
    await look("update", ids(updated)[:2])
    await look("continue", await d.invoke(graph, None, cfg))
    updated = await d.update_state(graph, cfg, {"log": ["as a"]}, as_node="a")
    await look("update as a", ids(updated)[:2])
    await look("continue again", await d.invoke(graph, None, cfg))
    updated = await d.update_state(graph, cfg, {"n": 100}, as_node="b")
    await look("update as b", ids(updated)[:2])
    await look("new input", await d.invoke(graph, {"log": ["again"]}, cfg))
    return {"seen": seen}


async def run_history(d: Driver) -> dict[str, Any]:
    graph = chat_graph(d.saver)
    cfg = tdef("hist")
    for text in ["one", "two"]:
        await d.invoke(graph, {"messages": [text]}, cfg)
    await d.update_state(graph, cfg, {"messages": ["edited"]})
    await d.invoke(graph, {"messages": ["three"]}, cfg)
    history = await d.history(graph, cfg)
    limited = await d.history(graph, cfg, limit=3)
    before = await d.history(graph, cfg, before=history[2].config)
    loops = await d.history(graph, cfg, filter={"source": "loop"})

    def rows(entries: list[StateSnapshot]) -> list[Any]:
        return [
            (s.metadata["source"], s.metadata["step"], s.values, s.next)
            for s in entries
        ]

    return {
        "rows": rows(history),
        "chained": chained(history),
        "limited": rows(limited),
        "limited_ids": [ids(s.config) for s in limited]
        == [ids(s.config) for s in history[:3]],
        "before": rows(before),
        "before_ids": [ids(s.config) for s in before]
        == [ids(s.config) for s in history[3:]],
        "loops": rows(loops),
    }


async def run_metadata(d: Driver) -> dict[str, Any]:
    graph = chat_graph(d.saver)
    alice = {
        "configurable": {"thread_id": "m1", "user": "alice"},
        "metadata": {"tier": 2},
    }
    bob = {"configurable": {"thread_id": "m2", "user": "bob"}, "metadata": {"tier": 3}}
    for text in ["a1", "a2"]:
        await d.invoke(graph, {"messages": [text]}, alice)
    await d.invoke(graph, {"messages": ["b1"]}, bob)
    state = await d.get_state(graph, tdef("m1"))

    async def found(config: Config | None, **kw: Any) -> list[Any]:
        tuples = await d.list(config, **kw)
        return sorted(
            (t.config["configurable"]["thread_id"], t.metadata["step"]) for t in tuples
        )

    listed = await d.list(tdef("m1"))
    return {
        "state_metadata": meta(state.metadata),
        "listed_metadata": [meta(t.metadata) for t in listed],
        "alice": await found(None, filter={"user": "alice"}),
        "tier2": await found(None, filter={"tier": 2}),
        "alice_tier2": await found(None, filter={"user": "alice", "tier": 2}),
        "alice_tier3": await found(None, filter={"user": "alice", "tier": 3}),
        "bob_in_m1": await found(tdef("m1"), filter={"user": "bob"}),
        "bob": await found(None, filter={"user": "bob"}),
        "carol": await found(None, filter={"user": "carol"}),
        "all": await found(None),
    }


async def run_isolation(d: Driver) -> dict[str, Any]:
    graph = chat_graph(d.saver)
    t1, t2 = tdef("iso-1"), tdef("iso-2")
    for text in ["first", "second", "third"]:
        await d.invoke(graph, {"messages": [text]}, t1)
    await d.invoke(graph, {"messages": ["other"]}, t2)
    h1 = await d.history(graph, t1)
    h2 = await d.history(graph, t2)
    return {
        "t1": snap(await d.get_state(graph, t1)),
        "t2": snap(await d.get_state(graph, t2)),
        "unused": snap(await d.get_state(graph, tdef("iso-3"))),
        "h1": [(s.values, s.next) for s in h1],
        "h2": [(s.values, s.next) for s in h2],
        "h1_threads": sorted({ids(s.config)[0] for s in h1}),
        "h2_threads": sorted({ids(s.config)[0] for s in h2}),
        "t2_listed": len(await d.list(t2)),
        "unused_listed": len(await d.list(tdef("iso-3"))),
    }


async def run_time_travel(d: Driver) -> dict[str, Any]:
    graph = chat_graph(d.saver)
    cfg = tdef("tt")
    for text in ["one", "two", "three"]:
        await d.invoke(graph, {"messages": [text]}, cfg)
    history = await d.history(graph, cfg)
    (past,) = [
        s
        for s in history
        if s.metadata["source"] == "loop" and s.values.get("count") == 1 and not s.next
    ]
    replayed = snap(await d.get_state(graph, past.config))
    forked = await d.invoke(graph, {"messages": ["fork"]}, past.config)
    head = await d.get_state(graph, cfg)
    # Walk the new head's ancestry back to the first checkpoint.
    lineage, lineage_ids = [], []
    node: StateSnapshot | None = head
    while node is not None:
        lineage.append((node.metadata["source"], node.values.get("count")))
        lineage_ids.append(ids(node.config))
        parent = node.parent_config
        node = None if parent is None else await d.get_state(graph, parent)
    after = await d.history(graph, cfg)
    return {
        "replayed": replayed,
        "forked": forked,
        "head": snap(head),
        "lineage": lineage,
        "forks_from_past": ids(past.config) in lineage_ids,
        "history_len": (len(history), len(after)),
        "after": [(s.metadata["source"], s.values.get("count")) for s in after],
    }


Scenario = Callable[[Driver], Awaitable[dict[str, Any]]]

SCENARIOS: dict[str, Scenario] = {
    "chat": run_chat,
    "interrupt": run_interrupt,
    "send": run_send,
    "failing": run_failing,
    "subgraph": run_subgraph,
    "update_state": run_update_state,
    "history": run_history,
    "metadata": run_metadata,
    "isolation": run_isolation,
    "time_travel": run_time_travel,
}


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_sync_api_matches_in_memory(name: str, saver: BaseCheckpointSaver) -> None:
    scenario = SCENARIOS[name]
    expected = run_sync(scenario(SyncDriver(InMemorySaver())))
    assert run_sync(scenario(SyncDriver(saver))) == expected


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_async_api_matches_in_memory(
    name: str, asaver: BaseCheckpointSaver
) -> None:
    scenario = SCENARIOS[name]
    expected = await scenario(AsyncDriver(InMemorySaver()))
    assert await scenario(AsyncDriver(asaver)) == expected


# What the baseline itself must show, so that agreeing with it means something.
BASELINE_FACTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "chat": lambda o: (
        o["state"]["values"]["count"] == 3
        and len(o["state"]["values"]["messages"]) == 6
    ),
    "interrupt": lambda o: (
        o["paused"]["next"] == ("ask",)
        and o["paused"]["interrupts"][0]["question"] == "proceed?"
        and o["final"]["values"]["answer"] == "yes"
        and o["calls"] == {"prep": 1, "ask": 2}
    ),
    "send": lambda o: (
        o["y"]["results"] == ["x-0", "x-1", "x-2", "y-0", "y-1", "y-2"]
        and o["x"]["paused_tasks"] == ["work"] * 3
        and o["calls"] == {"work": 6}
    ),
    "failing": lambda o: (
        o["raised"]["raised"] == "ValueError"
        and o["error_tasks"] == ["bad"]
        and o["failed"]["values"]["ok"] == ["start", "good"]
        and o["calls_after_retry"] == {"good": 1, "bad": 2}
    ),
    "subgraph": lambda o: (
        o["one"]["paused"]["tasks"][0]["state"]["next"] == ("sub_ask",)
        and o["two"]["paused"]["tasks"][0]["state"]["values"]["steps"] == ["sub_a:two"]
        and o["two"]["final"]["values"]["answer"] == "yes-two"
        and o["calls"] == {"pre": 2, "sub_a": 2, "sub_ask": 4}
    ),
    "update_state": lambda o: (
        [s[2]["metadata"]["source"] for s in o["seen"]].count("update") == 3
    ),
    "history": lambda o: (
        o["chained"]
        and o["limited_ids"]
        and o["before_ids"]
        and "update" in [r[0] for r in o["rows"]]
    ),
    "metadata": lambda o: (
        o["state_metadata"]["user"] == "alice"
        and o["state_metadata"]["tier"] == 2
        and len(o["alice"]) == 6
        and o["carol"] == []
    ),
    "isolation": lambda o: o["h2_threads"] == ["iso-2"] and o["unused"]["values"] == {},
    "time_travel": lambda o: (
        o["head"]["values"]["count"] == 2
        and o["forks_from_past"]
        and ("loop", 3) not in o["lineage"]
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_in_memory_baseline_exercises_the_scenario(name: str) -> None:
    observed = run_sync(SCENARIOS[name](SyncDriver(InMemorySaver())))
    assert BASELINE_FACTS[name](observed), observed
