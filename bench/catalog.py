"""The benchmark's workload list: names, kinds, targets and descriptions.

Shared by the runner (``bench/run.py``) and the worker (``bench/workloads.py``).
It imports nothing beyond the standard library so the runner can read it
without loading any checkpointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ratio", "floor", "memory"]


@dataclass(frozen=True)
class Spec:
    """One workload as the runner sees it.

    ``kind`` is ``"ratio"`` for a workload measured on both sides and compared,
    ``"floor"`` for the psycopg-only floor (measured once, no ratio) and
    ``"memory"`` for the large-data workloads (both sides, fewer repetitions,
    no target). ``target`` is the wanted median ratio ours/theirs, if any.
    A ``sliced`` workload runs both sides at once, timed in alternating short
    slices; the others (pools keep many calls in flight, so a slice would
    mostly time their ramp-up) run one side after the other.
    """

    name: str
    kind: Kind
    target: float | None
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


SPECS: tuple[Spec, ...] = (
    Spec("put", "ratio", 1.3, "put of a realistic checkpoint, one connection"),
    Spec("aput", "ratio", 1.3, "async put of a realistic checkpoint"),
    Spec("put_writes", "ratio", 1.5, "put_writes of 3 writes"),
    Spec("aput_writes", "ratio", 1.5, "async put_writes of 3 writes"),
    Spec("get_tuple_latest", "ratio", 3.0, "get_tuple latest, 300-ckpt thread"),
    Spec("aget_tuple_latest", "ratio", 3.0, "async get_tuple latest"),
    Spec("get_tuple_random", "ratio", 3.0, "get_tuple by random id, 300 ckpts"),
    Spec("aget_tuple_random", "ratio", 3.0, "async get_tuple by random id"),
    Spec(
        "get_tuple_legacy",
        "ratio",
        None,
        "get_tuple latest, 300 ckpts in format v2 (pre-v4 sends)",
    ),
    Spec("list_20", "ratio", 2.0, "list(limit=20) on a 300-ckpt thread"),
    Spec("alist_20", "ratio", 2.0, "async alist(limit=20)"),
    Spec("list_all", "ratio", 3.0, "list of a whole 300-ckpt thread"),
    Spec("alist_all", "ratio", 3.0, "async alist of a whole 300-ckpt thread"),
    Spec("graph", "ratio", 1.5, "3-node StateGraph invoke"),
    Spec("agraph", "ratio", 1.5, "3-node StateGraph ainvoke"),
    Spec(
        "async_pool",
        "ratio",
        2.0,
        "64 tasks, AsyncConnectionPool(8), cycles",
        sliced=False,
    ),
    Spec(
        "sync_pool_threads",
        "ratio",
        1.5,
        "8 threads, ConnectionPool(8), cycles",
        sliced=False,
    ),
    Spec(
        "floor", "floor", None, "psycopg only: prepared INSERT + SELECT", sliced=False
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
