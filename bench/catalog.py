"""The benchmark's workload list: names, kinds, targets and descriptions.

Shared by the runner (``bench/run.py``) and the worker (``bench/workloads.py``).
It imports nothing beyond the standard library so the runner can read it
without loading any checkpointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ratio", "memory"]

#: What a target bounds, measured per repetition (the runner takes the
#: median of the repetitions):
#:
#: - ``"ratio"``: our ops/s over the baseline's, at least ``bound``;
#: - ``"floor"``: our latency over that of the workload's floor (the same
#:   bytes read, or the same rows written, by one bare prepared statement),
#:   timed in the same worker, interleaved with it: at most ``bound``;
#: - ``"share"``: our share of a graph invoke (our latency minus that of the
#:   same graph on ``InMemorySaver``, timed in the same worker, interleaved)
#:   over the baseline's share, at most ``bound``.
Measure = Literal["ratio", "floor", "share"]

#: Companions: ops a worker times interleaved with its workload, in bursts
#: inside the same slices, so that the machine's drift weighs on both alike.
#: ``floor``: the bare prepared statement of the workload (psycopg alone, an
#: async connection for an async workload); ``memory`` and ``sqlite``: the
#: same graph on ``InMemorySaver`` and on ``SqliteSaver`` over a file (the
#: latter where ``langgraph-checkpoint-sqlite`` is installed: our interpreter).
Companion = Literal["floor", "memory", "sqlite"]
FLOOR: tuple[Companion, ...] = ("floor",)
GRAPH: tuple[Companion, ...] = ("memory", "sqlite")


@dataclass(frozen=True)
class Target:
    """A speed target: ``measure`` (see :data:`Measure`) against ``bound``."""

    measure: Measure
    bound: float

    def met(self, value: float) -> bool:
        """Whether ``value`` of the measure meets the target."""
        if self.measure == "ratio":
            return value >= self.bound
        return value <= self.bound

    def text(self) -> str:
        """The target as the report writes it."""
        if self.measure == "ratio":
            return f">= {self.bound:g}x baseline"
        if self.measure == "floor":
            return f"<= {self.bound:g}x floor"
        return f"share <= {self.bound:g}x baseline's"


def ratio(bound: float) -> Target:
    """At least ``bound`` times the baseline's ops/s."""
    return Target("ratio", bound)


def floor(bound: float) -> Target:
    """At most ``bound`` times the latency of the floor."""
    return Target("floor", bound)


def share(bound: float) -> Target:
    """A share of the graph's invoke at most ``bound`` times the baseline's."""
    return Target("share", bound)


@dataclass(frozen=True)
class Spec:
    """One workload as the runner sees it.

    ``kind`` is ``"ratio"`` for a workload measured on both sides and compared,
    and ``"memory"`` for the large-data workloads (both sides, fewer
    repetitions, no target). ``target`` is what the workload must reach, if
    anything. A ``sliced`` workload runs both sides at once, timed in
    alternating short slices; the others (pools keep many calls in flight,
    so a slice would mostly time their ramp-up) run one side after the
    other.
    """

    name: str
    kind: Kind
    target: Target | None
    description: str
    sliced: bool = True
    #: ``"checkpoint"`` (the saver's workloads) or ``"store"`` (the store's);
    #: ``--only`` takes a group's name for all its workloads, and the report
    #: gives each group a section of its own.
    group: str = "checkpoint"
    #: The data a store workload starts from: ``"plain"`` (10,000 items) or
    #: ``"indexed"`` (the same with an HNSW index over their embeddings, which
    #: needs pgvector). The runner has each side load it once per run into a
    #: template database, and gives every repetition a copy of it.
    dataset: str | None = None
    #: What the worker times interleaved with the workload (see
    #: :data:`Companion`).
    companions: tuple[Companion, ...] = ()
    #: The ``durability`` a graph workload passes to ``invoke``.
    durability: Literal["sync", "async", "exit"] | None = None
    #: Repetitions, when fewer than the run's (``--reps`` caps it): the
    #: durability modes other than the default are there for users to
    #: choose by, with no target, and cost three savers' time each.
    reps: int | None = None


SPECS: tuple[Spec, ...] = (
    Spec(
        "put",
        "ratio",
        floor(1.15),
        "put of a realistic checkpoint, one connection",
        companions=FLOOR,
    ),
    Spec(
        "aput",
        "ratio",
        floor(1.15),
        "async put of a realistic checkpoint",
        companions=FLOOR,
    ),
    Spec(
        "put_writes", "ratio", floor(1.15), "put_writes of 3 writes", companions=FLOOR
    ),
    Spec(
        "aput_writes",
        "ratio",
        floor(1.15),
        "async put_writes of 3 writes",
        companions=FLOOR,
    ),
    Spec(
        "get_tuple_latest",
        "ratio",
        floor(1.3),
        "get_tuple latest, 300-ckpt thread",
        companions=FLOOR,
    ),
    Spec(
        "aget_tuple_latest",
        "ratio",
        floor(1.3),
        "async get_tuple latest",
        companions=FLOOR,
    ),
    Spec(
        "get_tuple_random",
        "ratio",
        floor(1.3),
        "get_tuple by random id, 300 ckpts",
        companions=FLOOR,
    ),
    Spec(
        "aget_tuple_random",
        "ratio",
        floor(1.3),
        "async get_tuple by random id",
        companions=FLOOR,
    ),
    Spec(
        "get_tuple_legacy",
        "ratio",
        None,
        "get_tuple latest, 300 ckpts in format v2 (pre-v4 sends)",
        companions=FLOOR,
    ),
    Spec(
        "list_20",
        "ratio",
        ratio(3.0),
        "list(limit=20) on a 300-ckpt thread",
        companions=FLOOR,
    ),
    Spec("alist_20", "ratio", ratio(3.0), "async alist(limit=20)", companions=FLOOR),
    Spec(
        "list_all",
        "ratio",
        ratio(3.0),
        "list of a whole 300-ckpt thread",
        companions=FLOOR,
    ),
    Spec(
        "alist_all",
        "ratio",
        ratio(3.0),
        "async alist of a whole 300-ckpt thread",
        companions=FLOOR,
    ),
    Spec(
        "graph",
        "ratio",
        share(0.5),
        "3-node StateGraph invoke, durability async (the default)",
        companions=GRAPH,
        durability="async",
    ),
    Spec(
        "agraph",
        "ratio",
        share(0.5),
        "3-node StateGraph ainvoke, durability async (the default)",
        companions=GRAPH,
        durability="async",
    ),
    Spec(
        "graph_sync",
        "ratio",
        None,
        "the same invoke, durability sync",
        companions=GRAPH,
        durability="sync",
        reps=3,
    ),
    Spec(
        "agraph_sync",
        "ratio",
        None,
        "the same ainvoke, durability sync",
        companions=GRAPH,
        durability="sync",
        reps=3,
    ),
    Spec(
        "graph_exit",
        "ratio",
        None,
        "the same invoke, durability exit",
        companions=GRAPH,
        durability="exit",
        reps=3,
    ),
    Spec(
        "agraph_exit",
        "ratio",
        None,
        "the same ainvoke, durability exit",
        companions=GRAPH,
        durability="exit",
        reps=3,
    ),
    Spec(
        "async_pool",
        "ratio",
        ratio(2.5),
        "64 tasks, AsyncConnectionPool(8), cycles",
        sliced=False,
    ),
    Spec(
        "sync_pool_threads",
        "ratio",
        ratio(2.5),
        "8 threads, ConnectionPool(8), cycles",
        sliced=False,
    ),
    Spec(
        "memory_list",
        "memory",
        None,
        "list() over 5,000 ckpts of 100 KB",
        sliced=False,
    ),
    Spec(
        "get_tuple_deep",
        "memory",
        None,
        "get_tuple, 10,000-ckpt vs 10 thread",
        sliced=False,
    ),
    Spec(
        "store_put",
        "ratio",
        None,
        "put of one new item per call",
        group="store",
        dataset="plain",
    ),
    Spec(
        "store_get",
        "ratio",
        None,
        "get of a random item",
        group="store",
        dataset="plain",
    ),
    Spec(
        "store_search_filter",
        "ratio",
        None,
        "search of a prefix holding all items, 2-key filter, limit 10",
        group="store",
        dataset="plain",
    ),
    Spec(
        "store_semantic",
        "ratio",
        None,
        "search by query, 256 dims, HNSW, cosine, limit 10",
        group="store",
        dataset="indexed",
    ),
    Spec(
        "store_list_namespaces",
        "ratio",
        None,
        "list_namespaces under a prefix: all 200 namespaces",
        group="store",
        dataset="plain",
    ),
    Spec(
        "store_abatch50",
        "ratio",
        None,
        "async abatch of 50 ops: 20 puts, 25 gets, 5 searches",
        group="store",
        dataset="plain",
    ),
)

BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SPECS}

#: The workloads of each group, by the group's name.
GROUPS: dict[str, list[str]] = {}
for _spec in SPECS:
    GROUPS.setdefault(_spec.group, []).append(_spec.name)
del _spec

#: The line a sliced worker prints once it is ready for its first slice.
READY = "READY"
