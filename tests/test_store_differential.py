"""Differential test: our store against LangGraph's ``InMemoryStore``.

One seeded random sequence of operations (puts, deletes, gets, searches,
``list_namespaces``, mixed ``batch`` calls, TTL expiries) runs against
``InMemoryStore``, the reference semantics, and against our store, sync on
every connection kind of ``SYNC_STORE_KINDS`` and async on every kind of
``ASYNC_STORE_KINDS``; every result must match. A second variant adds an
``index=`` config and semantic searches (pgvector; it skips without it).

The data is picked to reach the corners: namespace labels with the ``LIKE``
wildcards ``_`` and ``%`` and a backslash beside labels they would wrongly
match (``a_b``/``axb``, ``a%``/``a%b``), labels that are prefixes of others
(``a``/``ab``), keys with dots, and values mixing ints and floats in one
field (``3`` and ``3.0``), strings, bools, ``None``, nested dicts, lists and
fields that are sometimes missing. Filters use every operator, plain and
``None`` equality, nested dicts (``{"meta": {"lang": "en"}}``, ``{"meta":
{"score": {"$gt": 3}}}``), list equality and keys no item has.

Decisions, where the two stores cannot be compared naively:

* ``$gt``/``$gte``/``$lt``/``$lte`` are only generated on fields that are a
  number (int or float, never a bool) in every item that can reach the
  comparison: ``n`` (always present) and ``meta.score`` (always present when
  ``meta`` is a dict; a ``meta`` of another type makes the nested filter
  false before any comparison). ``InMemoryStore`` calls ``float()`` on the
  value, so it raises on a missing key or a non-numeric string and compares
  ``True`` as ``1`` and ``"3"`` as ``3``; ours never matches those (see
  ``_filters.py``). So the reference is never asked a question it cannot
  answer, and it raising fails the test. Likewise bools only ever meet bools
  in filters (Python's ``True == 1`` is not JSON's).
* Values are compared strictly (``3`` is not ``3.0``), dict key order aside.
* A search without a query: ``InMemoryStore`` returns insertion order, ours
  newest ``updated_at`` first. The test keeps the write number of every
  item (each call or ``batch`` is one transaction, so one ``now()``), and
  then checks that ours is exactly the reference's set of matches, sorted
  by write number, newest first, and cut at ``offset``/``limit``: each
  returned item is a match with the reference's value, none repeats, there
  are as many as the reference returns, and the write numbers at each
  position are the expected ones (items written by one batch tie; among
  those any order is right). When the page covers every match, it is also
  the reference's page as a set.
* A semantic search: the reference ranks by cosine in float64, pgvector in
  float4 over the same vectors (small integers, exact in float4), so the
  scores agree within 1e-4 and the order is the same except among equal
  scores (items with the same text): ours must hold, position by position,
  an item of the same tie group as the reference's full ranking, cut at
  ``offset``/``limit``. Every item has a ``text`` field, so the reference's
  "fill with unscored items" corner never arises (checked).
* ``list_namespaces`` must be exactly equal (both sort as Python tuples).
  ``InMemoryStore`` keeps an empty namespace after its last item is deleted
  (or after a ``get`` in an unknown namespace) and lists it: the reference
  here (:class:`Reference`) forgets empty namespaces first, as a database
  that stores items, not namespaces, does.
* TTL: ``InMemoryStore`` has none. A third into the run some items are put
  with a TTL of 0.3 s on ours (without on the reference) and, until two
  thirds, random puts sometimes carry one too. The test tracks when each has
  expired at the latest (the end of the call that set or, through a
  refreshing read, restarted its TTL, plus the TTL); at two thirds it waits
  until all have expired, calls ``sweep_ttl()`` (which must report exactly
  those), deletes the same keys from the reference, and checks they are
  gone and the rest remain; the random operations then go on. Until the
  sweep, expired items are still visible in ours, as in the reference.

What it found: a semantic search in a ``batch`` that also puts could see
those puts (fixed in ``_batch.py``; the minimal case is a test below); the
sync store on a caller's pipeline returned no rows (fixed meanwhile in
``_sync.py``); IVFFlat searches on a small table missed nearer items (an
index built on the empty table has arbitrary lists: setup() now waits for
data to build it, and a short page through an index is searched again
exactly, with a query no index serves).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from tests.store_embeddings import DIMS, embed_texts
from tests.stores import (
    ASYNC_STORE_KINDS,
    SYNC_STORE_KINDS,
    async_store,
    sync_store,
)

SEEDS = [11, 22, 33]
OPS = 240
SEMANTIC_OPS = 160

#: Namespace labels: LIKE wildcards and a backslash beside the labels an
#: unescaped pattern would wrongly match, and labels prefixing others.
LABELS = ["a", "b", "ab", "a_b", "axb", "a%", "a%b", "_", "%", "a\\b", "B", "ü", "x"]
FIXED_NAMESPACES = [
    ("a",),
    ("a", "b"),
    ("ab", "x"),
    ("a_b", "x"),
    ("axb", "x"),
    ("a%", "b"),
    ("a%b", "x"),
    ("_", "%"),
    ("a\\b", "x"),
    ("ü", "B", "x"),
]
KEYS = ["k", "k.1", "a.b.c", "k_", "k%", "K", "", "ü.v", "x"]
STRINGS = ["en", "fr", "x", "", "é", "a b", "1", "true", "null", 'q"uote']
TAGS = ["red", "green", "blue", "x"]
WORDS = [
    "apple", "banana", "cherry", "river", "mountain", "forest", "ocean",
    "violin", "guitar", "piano", "rocket", "planet", "comet", "bread",
    "cheese", "coffee", "winter", "summer", "garden", "castle",
]  # fmt: skip

BIG = 10**6
#: The TTL of the expiring items, in minutes (0.3 s).
TTL_MINUTES = 0.005
TTL_SECONDS = TTL_MINUTES * 60
#: Scores closer than this are one tie group (equal up to rounding).
TIE = 1e-9
SCORE_TOLERANCE = 1e-4

NamespaceKey = tuple[tuple[str, ...], str]


def canon(value: Any) -> Any:
    """``value`` as a hashable form that tells ``3`` from ``3.0`` and
    ``True`` from ``1`` but ignores dict key order."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(canon(v) for v in value))
    return (type(value).__name__, value)


class Reference(InMemoryStore):
    """``InMemoryStore``, except that ``list_namespaces`` does not list the
    empty namespaces ``InMemoryStore`` leaves behind (after deleting the last
    item of one, or a ``get`` in an unknown one)."""

    def _handle_list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        for namespace in [ns for ns, items in self._data.items() if not items]:
            del self._data[namespace]
        return super()._handle_list_namespaces(op)


@dataclass
class Call:
    """A call to make on our store; the scenario is sent back its result."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Scenario = Generator[Call, Any, None]


def run_sync(store: Any, scenario: Scenario) -> None:
    result = None
    try:
        while True:
            call = scenario.send(result)
            if call.method == "sleep":
                time.sleep(*call.args)
                result = None
            else:
                result = getattr(store, call.method)(*call.args, **call.kwargs)
    except StopIteration:
        pass


async def run_async(store: Any, scenario: Scenario) -> None:
    result = None
    try:
        while True:
            call = scenario.send(result)
            if call.method == "sleep":
                await asyncio.sleep(*call.args)
                result = None
            elif call.method == "sweep_ttl":  # async under its sync name
                result = await store.sweep_ttl()
            else:
                method = getattr(store, "a" + call.method)
                result = await method(*call.args, **call.kwargs)
    except StopIteration:
        pass


class Differential:
    """A seeded random run, and the reference's view of what ours holds."""

    def __init__(self, seed: int, *, index: dict[str, Any] | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.semantic = index is not None
        self.ref = Reference(index=index)  # type: ignore[arg-type]
        self.namespaces = list(FIXED_NAMESPACES)
        while len(self.namespaces) < len(FIXED_NAMESPACES) + 3:
            ns = tuple(self.rng.choice(LABELS) for _ in range(self.rng.randint(1, 3)))
            if ns not in self.namespaces:
                self.namespaces.append(ns)
        #: The number of the write (call or batch) that last put each item:
        #: ours orders a search without query by it, newest first.
        self.writes = 0
        self.stamps: dict[NamespaceKey, int] = {}
        #: Items with a TTL on ours: the time by which each has expired.
        self.deadlines: dict[NamespaceKey, float] = {}
        self.ttl_window = False
        self.step_no = 0
        self.doing = ""

    # -- the run ---------------------------------------------------------------

    def run(self, ops: int) -> Scenario:
        for self.step_no in range(ops):
            if self.step_no == ops // 3:
                yield from self.expiring_puts()
                self.ttl_window = True
            elif self.step_no == 2 * ops // 3:
                self.ttl_window = False
                yield from self.sweep()
            yield from self.step()
        self.step_no = ops
        yield from self.final_checks()

    def step(self) -> Scenario:
        choices: list[tuple[Any, int]] = [
            (self.put, 30),
            (self.delete, 8),
            (self.get, 12),
            (self.search, 22),
            (self.list_namespaces, 10),
            (self.batch, 8),
        ]
        if self.semantic:
            choices.append((self.semantic_search, 25))
        action = self.rng.choices(
            [a for a, _ in choices], weights=[w for _, w in choices]
        )[0]
        yield from action()

    def where(self) -> str:
        return f"seed {self.seed}, step {self.step_no}: {self.doing}"

    # -- random data -----------------------------------------------------------

    def number(self) -> int | float:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return rng.randint(-3, 10)
        if r < 0.6:
            return float(rng.randint(-3, 10))  # 3.0 beside 3
        return round(rng.uniform(-3, 10), rng.choice([1, 2]))

    def text(self) -> str:
        return " ".join(self.rng.sample(WORDS, self.rng.randint(1, 4)))

    def value(self) -> dict[str, Any]:
        rng = self.rng
        value: dict[str, Any] = {"n": self.number()}
        if rng.random() < 0.8:
            value["s"] = rng.choice(STRINGS)
        if rng.random() < 0.6:
            value["flag"] = rng.random() < 0.5
        r = rng.random()
        if r < 0.3:
            value["opt"] = None
        elif r < 0.6:
            value["opt"] = rng.choice(STRINGS)
        r = rng.random()
        if r < 0.6:
            meta: dict[str, Any] = {"score": self.number()}
            if rng.random() < 0.8:
                meta["lang"] = rng.choice(["en", "fr", None])
            if rng.random() < 0.4:
                meta["deep"] = {"x": rng.choice([1, 2.0, "1"])}
            value["meta"] = meta
        elif r < 0.7:
            value["meta"] = rng.choice(["en", ["en"], 3])
        if rng.random() < 0.7:
            value["tags"] = rng.sample(TAGS, rng.randint(0, 3))
        if rng.random() < 0.2:
            value["nested"] = {
                "list": [rng.randint(0, 2), {"a": [rng.random() < 0.5, None]}],
                "empty": {},
            }
        if self.semantic or rng.random() < 0.3:
            value["text"] = self.text()
        return value

    def namespace(self) -> tuple[str, ...]:
        return self.rng.choice(self.namespaces)

    def live(self) -> list[Item]:
        return [item for items in self.ref._data.values() for item in items.values()]

    def pick_key(self, existing: float = 0.5) -> NamespaceKey:
        items = self.live()
        if items and self.rng.random() < existing:
            item = self.rng.choice(items)
            return item.namespace, item.key
        return self.namespace(), self.rng.choice(KEYS)

    def pick_prefix(self) -> tuple[str, ...]:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return ()
        if r < 0.8:
            ns = self.namespace()
            return ns[: rng.randint(1, len(ns))]
        return tuple(rng.choice(LABELS) for _ in range(rng.randint(1, 2)))

    def page(self) -> tuple[int, int]:
        limit = self.rng.choice([1, 2, 3, 5, 10, 1000])
        offset = self.rng.choice([0, 0, 0, 1, 2, 5])
        return limit, offset

    def filter(self) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.3:
            return None
        filt = self.condition()
        if rng.random() < 0.25:
            filt.update(self.condition())
        return filt

    def condition(self) -> dict[str, Any]:
        """One filter condition, on a live item's value most of the time
        (so that it matches something) else on a fresh random one."""
        rng = self.rng
        items = self.live()
        sample = (
            rng.choice(items).value if items and rng.random() < 0.7 else self.value()
        )
        n = sample["n"]
        s = sample.get("s", rng.choice(STRINGS))
        meta = sample.get("meta")
        bound = rng.choice([n, self.number()])
        ops = ["$gt", "$gte", "$lt", "$lte"]
        options: list[Any] = [
            lambda: {"s": s},
            lambda: {"s": {"$eq": s}},
            lambda: {"s": {"$ne": s}},
            lambda: {"opt": None},
            lambda: {"opt": {"$eq": None}},
            lambda: {"opt": {"$ne": None}},
            lambda: {"opt": {"$ne": sample.get("opt", "x")}},
            lambda: {"flag": rng.random() < 0.5},
            lambda: {"flag": {"$ne": rng.random() < 0.5}},
            lambda: {"flag": None},
            lambda: {"n": n},
            lambda: {"n": float(n) if isinstance(n, int) else n},
            lambda: {"n": {"$eq": n}},
            lambda: {"n": {"$ne": n}},
            lambda: {"n": {rng.choice(ops): bound}},
            lambda: {"n": {rng.choice(ops): bound, rng.choice(ops): self.number()}},
            lambda: {"meta": {"lang": rng.choice(["en", "fr"])}},
            lambda: {"meta": {"lang": None}},
            lambda: {"meta": {"score": {rng.choice(ops): self.number()}}},
            lambda: {"meta": {"deep": {"x": rng.choice([1, 1.0, 2, "1"])}}},
            lambda: {"meta": {}},
            lambda: {"meta": meta},
            lambda: {"meta": {"$eq": meta}},
            lambda: {"meta": {"$ne": meta}},
            lambda: {"tags": sample.get("tags", [])},
            lambda: {"tags": {"$eq": sample.get("tags", ["red"])}},
            lambda: {"tags": {"$ne": sample.get("tags", ["red"])}},
            lambda: {"tags": []},
            lambda: {"nested": {"list": [rng.randint(0, 2), {"a": [True, None]}]}},
            lambda: {"nested": {"empty": {}}},
            lambda: {"nope": rng.choice(["x", 1])},
            lambda: {"nope": None},
            lambda: {"nope": {"$ne": "x"}},
            lambda: {"nope": {"$eq": None}},
            lambda: {"text": sample.get("text", "apple")},
        ]
        return rng.choice(options)()

    def ttl_kwargs(self) -> dict[str, Any]:
        if self.ttl_window and self.rng.random() < 0.15:
            return {"ttl": TTL_MINUTES}
        return {}

    # -- bookkeeping -----------------------------------------------------------

    def wrote(self, puts: list[tuple[NamespaceKey, bool, bool]]) -> None:
        """Record one write transaction: (item, deleted, with a TTL) each,
        the last of several to one item winning, as in a batch."""
        self.writes += 1
        now = time.monotonic()
        for item, deleted, ttl in puts:
            if deleted:
                self.stamps.pop(item, None)
            else:
                self.stamps[item] = self.writes
            if ttl and not deleted:
                self.deadlines[item] = now + TTL_SECONDS
            else:
                self.deadlines.pop(item, None)

    def refreshed(self, items: list[NamespaceKey]) -> None:
        """Items a refreshing read returned: their TTL restarted."""
        now = time.monotonic()
        for item in items:
            if item in self.deadlines:
                self.deadlines[item] = now + TTL_SECONDS

    # -- operations ------------------------------------------------------------

    def put(self) -> Scenario:
        ns, key = self.pick_key(existing=0.4)
        value = self.value()
        kwargs = self.ttl_kwargs()
        self.doing = f"put({ns!r}, {key!r}, {value!r}, **{kwargs!r})"
        yield Call("put", (ns, key, value), kwargs)
        self.ref.put(ns, key, value)
        self.wrote([((ns, key), False, bool(kwargs))])

    def delete(self) -> Scenario:
        ns, key = self.pick_key(existing=0.8)
        self.doing = f"delete({ns!r}, {key!r})"
        yield Call("delete", (ns, key))
        self.ref.delete(ns, key)
        self.wrote([((ns, key), True, False)])

    def get(self) -> Scenario:
        ns, key = self.pick_key(existing=0.7)
        refresh = self.rng.random() < 0.5
        self.doing = f"get({ns!r}, {key!r}, refresh_ttl={refresh})"
        ours = yield Call("get", (ns, key), {"refresh_ttl": refresh})
        self.check_item(ours, self.ref.get(ns, key))
        if refresh and ours is not None:
            self.refreshed([(ns, key)])

    def search_op(self, query: str | None = None) -> SearchOp:
        limit, offset = self.page()
        return SearchOp(
            self.pick_prefix(),
            self.filter(),
            limit,
            offset,
            query,
            self.rng.random() < 0.5,
        )

    def search(self, query: str | None = None) -> Scenario:
        op = self.search_op(query)
        self.doing = f"search: {op!r}"
        ours = yield Call(
            "search",
            (op.namespace_prefix,),
            {
                "query": op.query,
                "filter": op.filter,
                "limit": op.limit,
                "offset": op.offset,
                "refresh_ttl": op.refresh_ttl,
            },
        )
        everything = self.everything(op)
        expected = self.ref.batch([op])[0]
        self.check_search(op, ours, expected, everything)
        if op.refresh_ttl:
            self.refreshed([(r.namespace, r.key) for r in ours])

    def semantic_search(self) -> Scenario:
        items = self.live()
        if items and self.rng.random() < 0.4:
            query = self.rng.choice(items).value["text"]
        else:
            query = self.text()
        yield from self.search(query)

    def list_op(self) -> ListNamespacesOp:
        rng = self.rng
        conditions = []
        for match_type in ("prefix", "suffix"):
            if rng.random() < 0.4:
                ns = self.namespace()
                size = rng.randint(1, len(ns))
                path = list(ns[:size] if match_type == "prefix" else ns[-size:])
                if rng.random() < 0.3:
                    path[rng.randrange(size)] = "*"
                conditions.append(MatchCondition(match_type, tuple(path)))  # type: ignore[arg-type]
        return ListNamespacesOp(
            tuple(conditions) or None,
            rng.choice([None, None, 1, 2, 3]),
            rng.choice([1, 2, 5, 100]),
            rng.choice([0, 0, 1, 3]),
        )

    def list_namespaces(self) -> Scenario:
        op = self.list_op()
        kwargs: dict[str, Any] = {
            "max_depth": op.max_depth,
            "limit": op.limit,
            "offset": op.offset,
        }
        for condition in op.match_conditions or ():
            kwargs[condition.match_type] = condition.path
        self.doing = f"list_namespaces(**{kwargs!r})"
        ours = yield Call("list_namespaces", (), kwargs)
        assert ours == self.ref.batch([op])[0], self.where()

    def batch(self) -> Scenario:
        """A mixed batch: its reads see the store as it was before it, and
        of several writes to one item the last wins."""
        rng = self.rng
        ops: list[Op] = []
        ttls = []
        for _ in range(rng.randint(2, 6)):
            r = rng.random()
            if r < 0.35:
                ns, key = self.pick_key(existing=0.5)
                ttl = self.ttl_kwargs().get("ttl")
                ops.append(PutOp(ns, key, self.value(), ttl=ttl))
                ttls.append(ttl is not None)
            elif r < 0.5:
                ns, key = self.pick_key(existing=0.8)
                ops.append(PutOp(ns, key, None))
            elif r < 0.65:
                ns, key = self.pick_key(existing=0.7)
                ops.append(GetOp(ns, key, rng.random() < 0.5))
            elif r < 0.85:
                query = self.text() if self.semantic and rng.random() < 0.5 else None
                ops.append(self.search_op(query))
            else:
                ops.append(self.list_op())
        self.doing = f"batch({ops!r})"
        ours = yield Call("batch", (ops,))
        assert len(ours) == len(ops), self.where()
        # The reads of the batch, checked against the store before it.
        everything = {
            i: self.everything(op)
            for i, op in enumerate(ops)
            if isinstance(op, SearchOp)
        }
        expected = self.ref.batch(ops)
        refreshed: list[NamespaceKey] = []
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                self.check_item(ours[i], expected[i])
                if op.refresh_ttl and ours[i] is not None:
                    refreshed.append((op.namespace, op.key))
            elif isinstance(op, SearchOp):
                self.check_search(op, ours[i], expected[i], everything[i])
                if op.refresh_ttl:
                    refreshed += [(r.namespace, r.key) for r in ours[i]]
            elif isinstance(op, ListNamespacesOp):
                assert ours[i] == expected[i], self.where()
            else:
                assert ours[i] is None, self.where()
        self.refreshed(refreshed)
        puts = [op for op in ops if isinstance(op, PutOp)]
        if puts:
            self.wrote(
                [
                    ((op.namespace, op.key), op.value is None, op.ttl is not None)
                    for op in puts
                ]
            )

    def expiring_puts(self) -> Scenario:
        """Items with a TTL: new ones (one in a namespace of its own, so
        ``list_namespaces`` changes when it goes) and overwritten ones."""
        targets = [(("expiring", "ns"), "k.1")]
        targets += [self.pick_key(existing=0.5) for _ in range(4)]
        for ns, key in targets:
            value = self.value()
            self.doing = f"expiring put({ns!r}, {key!r}, {value!r})"
            yield Call("put", (ns, key, value), {"ttl": TTL_MINUTES})
            self.ref.put(ns, key, value)
            self.wrote([((ns, key), False, True)])

    def sweep(self) -> Scenario:
        """Wait until every item with a TTL has expired, sweep, and forget
        the same items in the reference."""
        self.doing = f"sweep of {sorted(self.deadlines)!r}"
        if self.deadlines:
            wait = max(self.deadlines.values()) - time.monotonic() + 0.05
            if wait > 0:
                yield Call("sleep", (wait,))
        swept = yield Call("sweep_ttl")
        assert swept == len(self.deadlines), self.where()
        expired = list(self.deadlines)
        for ns, key in expired:
            self.ref.delete(ns, key)
            del self.stamps[(ns, key)]
        self.deadlines.clear()
        for ns, key in expired:
            ours = yield Call("get", (ns, key))
            assert ours is None, self.where()
        yield from self.final_checks()

    def final_checks(self) -> Scenario:
        """Everything the reference holds, and nothing else."""
        self.doing = "final checks"
        ours = yield Call("list_namespaces", (), {"limit": BIG})
        assert ours == self.ref.list_namespaces(limit=BIG), self.where()
        op = SearchOp((), None, BIG, 0, None, False)
        ours = yield Call("search", ((),), {"limit": BIG, "refresh_ttl": False})
        self.check_search(op, ours, self.ref.batch([op])[0], self.everything(op))
        items = self.live()
        assert len(ours) == len(items), self.where()
        for item in items:
            got = yield Call("get", (item.namespace, item.key), {"refresh_ttl": False})
            self.check_item(got, item)

    # -- comparisons -----------------------------------------------------------

    def everything(self, op: SearchOp) -> list[SearchItem]:
        """Every match of ``op`` in the reference, as it ranks them."""
        everything = self.ref.batch([op._replace(limit=BIG, offset=0)])[0]
        assert everything is not None
        return everything

    def check_item(self, ours: Item | None, expected: Item | None) -> None:
        if expected is None:
            assert ours is None, f"{self.where()}: got {ours!r}"
            return
        assert ours is not None, f"{self.where()}: missing {expected!r}"
        assert ours.namespace == expected.namespace, self.where()
        assert ours.key == expected.key, self.where()
        assert canon(ours.value) == canon(expected.value), (
            f"{self.where()}: {ours.value!r} != {expected.value!r}"
        )

    def check_search(
        self,
        op: SearchOp,
        ours: list[SearchItem],
        expected: list[SearchItem],
        everything: list[SearchItem],
    ) -> None:
        where = self.where()
        got = [(r.namespace, r.key) for r in ours]
        assert len(set(got)) == len(got), f"{where}: repeats in {got!r}"
        assert len(ours) == len(expected), (
            f"{where}: {len(ours)} results, expected {len(expected)}: "
            f"{got!r} vs {[(r.namespace, r.key) for r in expected]!r}"
        )
        matches = {(r.namespace, r.key): r for r in everything}
        for r in ours:
            match = matches.get((r.namespace, r.key))
            assert match is not None, f"{where}: {r!r} does not match"
            assert canon(r.value) == canon(match.value), f"{where}: {r!r}"
        if op.query and self.semantic:
            self.check_ranking(op, ours, everything)
            return
        assert all(r.score is None for r in ours), where
        if op.offset == 0 and op.limit >= len(everything):
            assert set(got) == {(r.namespace, r.key) for r in expected}, where
        newest_first = sorted((self.stamps[item] for item in matches), reverse=True)
        assert [self.stamps[item] for item in got] == newest_first[
            op.offset : op.offset + op.limit
        ], f"{where}: not newest first: {got!r}"

    def check_ranking(
        self, op: SearchOp, ours: list[SearchItem], everything: list[SearchItem]
    ) -> None:
        where = self.where()
        assert all(r.score is not None for r in everything), (
            f"{where}: the reference returned unscored items"
        )
        groups: dict[NamespaceKey, int] = {}
        scores: dict[NamespaceKey, float] = {}
        group, previous = 0, None
        for r in everything:
            assert r.score is not None
            if previous is not None and previous - r.score > TIE:
                group += 1
            previous = r.score
            groups[(r.namespace, r.key)] = group
            scores[(r.namespace, r.key)] = r.score
        ranked = [groups[(r.namespace, r.key)] for r in everything]
        got = [(r.namespace, r.key) for r in ours]
        assert [groups[item] for item in got] == ranked[
            op.offset : op.offset + op.limit
        ], f"{where}: ranked {got!r}, reference {everything!r}"
        for r in ours:
            assert r.score is not None, where
            expected = scores[(r.namespace, r.key)]
            assert abs(r.score - expected) <= SCORE_TOLERANCE, (
                f"{where}: score {r.score} of {r.key!r}, expected {expected}"
            )


# -- the tests -----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", SYNC_STORE_KINDS)
def test_sync_store_matches_in_memory_store(db_uri: str, kind: str, seed: int) -> None:
    with sync_store(kind, db_uri) as store:
        run_sync(store, Differential(seed).run(OPS))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
async def test_async_store_matches_in_memory_store(
    db_uri: str, kind: str, seed: int
) -> None:
    async with async_store(kind, db_uri) as store:
        await run_async(store, Differential(seed).run(OPS))


def _index(ann_kind: str) -> dict[str, Any]:
    return {
        "dims": DIMS,
        "embed": embed_texts,
        "fields": ["text"],
        "distance_type": "cosine",
        "ann_index_config": {"kind": ann_kind},
    }


#: Each connection kind once, each ANN index kind sync and async.
SEMANTIC_CASES = [
    ("conn", "flat"),
    ("pool", "hnsw"),
    ("pool-defaults", "ivfflat"),
    ("pipeline", "hnsw"),
    ("aconn", "ivfflat"),
    ("apool", "flat"),
    ("apool-defaults", "hnsw"),
    ("apipeline", "ivfflat"),
]


def _cases(kinds: list[str]) -> list[Any]:
    return [case for case in SEMANTIC_CASES if case[0] in kinds]


def _reference_index() -> dict[str, Any]:
    return {"dims": DIMS, "embed": embed_texts, "fields": ["text"]}


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize(("kind", "ann_kind"), _cases(SYNC_STORE_KINDS))
def test_sync_semantic_search_matches_in_memory_store(
    vector_db_uri: str, kind: str, ann_kind: str, seed: int
) -> None:
    with sync_store(kind, vector_db_uri, index=_index(ann_kind)) as store:
        store.setup()
        differential = Differential(seed, index=_reference_index())
        run_sync(store, differential.run(SEMANTIC_OPS))


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize(("kind", "ann_kind"), _cases(ASYNC_STORE_KINDS))
async def test_async_semantic_search_matches_in_memory_store(
    vector_db_uri: str, kind: str, ann_kind: str, seed: int
) -> None:
    async with async_store(kind, vector_db_uri, index=_index(ann_kind)) as store:
        await store.setup()
        differential = Differential(seed, index=_reference_index())
        await run_async(store, differential.run(SEMANTIC_OPS))


def test_semantic_search_in_a_batch_sees_the_store_before_its_puts(
    vector_db_uri: str,
) -> None:
    """The minimal case the differential found (fixed in ``_batch.py``): the
    search came back empty, was searched again exactly after the batch had
    committed, and returned the item the same batch put."""
    ops: list[Op] = [
        SearchOp((), None, 10, 0, "apple"),
        PutOp(("docs",), "a", {"text": "apple"}),
    ]
    assert Reference(index=_reference_index()).batch(ops)[0] == []  # type: ignore[arg-type]
    with sync_store("conn", vector_db_uri, index=_index("flat")) as store:
        store.setup()
        assert store.batch(ops)[0] == []
        assert [r.key for r in store.search((), query="apple")] == ["a"]


def test_ivfflat_search_on_a_small_table_finds_the_nearest(vector_db_uri: str) -> None:
    """The case the differential found: an IVFFlat index built on an empty
    table (setup() at a first start) had arbitrary lists, and a third of the
    searches missed a nearer item. setup() now builds it only once there are
    vectors to cluster, so none does."""
    rng = random.Random(1)

    def text() -> str:
        return " ".join(rng.sample(WORDS, rng.randint(1, 4)))

    ref = InMemoryStore(index=_reference_index())  # type: ignore[arg-type]
    with sync_store("conn", vector_db_uri, index=_index("ivfflat")) as store:
        store.setup()
        for i in range(20):
            value = {"text": text()}
            store.put(("docs",), f"d{i}", value)
            ref.put(("docs",), f"d{i}", value)
        wrong = []
        for _ in range(30):
            query = text()
            ours = [r.score for r in store.search((), query=query, limit=3)]
            nearest = [r.score for r in ref.search((), query=query, limit=3)]
            if len(ours) != len(nearest) or any(
                a is None or b is None or abs(a - b) > TIE
                for a, b in zip(ours, nearest)
            ):
                wrong.append((query, ours, nearest))
        assert not wrong, f"{len(wrong)} of 30 searches miss nearer items: {wrong}"


def test_the_run_reaches_its_corners() -> None:
    """The generator does produce what the docstring promises (no database)."""
    differential = Differential(SEEDS[0])
    seen: set[str] = set()

    def walk(filt: Any) -> Iterator[str]:
        if isinstance(filt, dict):
            for k, v in filt.items():
                yield k
                yield from walk(v)

    for _ in range(2000):
        differential.ref.put(
            differential.namespace(),
            differential.rng.choice(KEYS),
            differential.value(),
        )
        seen.update(walk(differential.filter()))
    assert {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "meta", "tags"} <= seen
