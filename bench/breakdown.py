"""Where our calls spend the time above their floor.

    .venv/bin/python bench/breakdown.py --uri URI_OF_AN_EMPTY_DATABASE \
        [--only get_tuple,list_20,list_all,put_writes,graph]

Ours only (it reads the saver's own statements). Each part times calls
interleaved, in the bursts of ``workloads.run_for``, and prints one JSON line
of mean latencies in µs per round (``--rounds``), then one of the medians and
ranges:

- ``get_tuple``: on the 300-checkpoint thread of ``get_tuple_latest``, the
  floor (``bench/floors.py``: the same bytes by one bare prepared SELECT),
  the saver's own read query run bare (prepared, binary results fetched,
  nothing decoded), and the whole ``get_tuple``. The query's excess over the
  floor is the server's and the wire's; the rest, up to ``get_tuple``, is
  the client's (decoding, building the tuple).
- ``list_20`` (``list_all`` likewise, the whole thread): the floor, the
  page's query run bare as the sync saver sends it (streamed, unprepared),
  the same query prepared and fetched whole, that plus decoding every row,
  and the whole ``list``.
- ``put_writes``: the floor (the same three rows by one bare prepared
  INSERT), our statement run bare (prepared, on the floor's connection, its
  parameters built beforehand), building the statement alone (serializing
  the writes, no I/O), and the whole ``put_writes``.
- ``graph``: the 3-node graph of the ``graph`` workload (durability
  ``async``) on our saver and on ``InMemorySaver``, alternating blocks of
  invokes: wall time and CPU time per invoke, of the whole process and of
  the main thread. LangGraph writes from background threads and the
  checkpointer's client work runs under the GIL with LangGraph's own, so
  the process CPU above ``InMemorySaver``'s is the part of the share that
  no overlap with the server can hide.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import floors
import workloads
from langgraph.checkpoint.memory import InMemorySaver

from langgraph.checkpoint.postgres import PostgresSaver

Timings = dict[str, float]


def _rounds(
    main: Callable[[], object],
    companions: dict[str, Callable[[], object]],
    seconds: float,
    rounds: int,
) -> Iterator[Timings]:
    """Mean µs per call of ``main`` (as ``whole_us``) and each companion, in
    ``rounds`` runs of ``seconds`` each, all interleaved in bursts."""
    for _ in range(rounds):
        result = workloads.run_for(main, workloads.Clock(seconds, 0.3), companions)
        timings = {"whole_us": result["latency_us"]}
        timings.update((f"{name}_us", result[f"{name}_us"]) for name in companions)
        yield timings


def _setup(uri: str) -> None:
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()


_filled: list[str] = []


def _history(uri: str) -> str:
    """The 300-checkpoint thread of the read workloads, filled once."""
    if not _filled:
        workloads.fill_thread(uri, "history", workloads.HISTORY, writes=True)
        _filled.append("history")
    return _filled[0]


def _read_floor(uri: str, limit: int | None = None) -> floors.Floor:
    """``floors.read_floor`` of the thread, on a fresh copy (each part of one
    run makes its own)."""
    thread = _history(uri)
    with floors.connect(uri) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor_read")
    return floors.read_floor(uri, thread, limit=limit)


def get_tuple(uri: str, seconds: float, rounds: int) -> Iterator[Timings]:
    """The floor, the bare read query and ``get_tuple``, interleaved."""
    floor = _read_floor(uri)
    config: Any = {"configurable": {"thread_id": "history", "checkpoint_ns": ""}}
    with (
        PostgresSaver.from_conn_string(uri) as saver,
        floors.connect(uri) as bare,
    ):
        statement = saver._get_tuple_statement(config)
        cursor = bare.cursor(binary=True)

        def query() -> None:
            cursor.execute(statement.sql, statement.params, prepare=True)
            cursor.fetchall()

        def whole() -> None:
            assert saver.get_tuple(config) is not None

        companions = {"floor": floor.op(bare), "query": query}
        yield from _rounds(whole, companions, seconds, rounds)


def listing(limit: int | None) -> Callable[[str, float, int], Iterator[Timings]]:
    """``list`` of ``limit`` checkpoints (``None``: the whole thread)."""

    def run(uri: str, seconds: float, rounds: int) -> Iterator[Timings]:
        floor = _read_floor(uri, limit or 0)
        config: Any = {"configurable": {"thread_id": "history", "checkpoint_ns": ""}}
        with (
            PostgresSaver.from_conn_string(uri) as saver,
            floors.connect(uri) as bare,
        ):
            pages = saver._list_pages(config, filter=None, before=None, limit=limit)
            statements = []
            while (statement := pages.next_statement()) is not None:
                rows = saver._fetch(statement)
                pages.receive(len(rows), rows[-1] if rows else None)
                statements.append(statement)
            cursor = bare.cursor(binary=True)

            def streamed() -> None:
                for page in statements:
                    for _ in cursor.stream(page.sql, page.params):
                        pass

            def prepared() -> None:
                for page in statements:
                    cursor.execute(page.sql, page.params, prepare=True)
                    cursor.fetchall()

            def prepared_decoded() -> None:
                for page in statements:
                    cursor.execute(page.sql, page.params, prepare=True)
                    saver._load_tuples(cursor.fetchall())

            def whole() -> None:
                assert len(list(saver.list(config, limit=limit))) == (
                    limit or workloads.HISTORY
                )

            companions = {
                "floor": floor.op(bare),
                "streamed": streamed,
                "prepared": prepared,
                "prepared_decoded": prepared_decoded,
            }
            yield from _rounds(whole, companions, seconds, rounds)

    return run


def put_writes(uri: str, seconds: float, rounds: int) -> Iterator[Timings]:
    """The floor, our statement bare, building it, and ``put_writes``."""
    with (
        PostgresSaver.from_conn_string(uri) as saver,
        floors.connect(uri) as bare,
    ):
        writer = workloads.ThreadWriter(saver.get_next_version, "put_writes")
        config = saver.put(*writer.next())  # type: ignore[arg-type]
        pending = writer.writes()
        floor = floors.writes_floor(uri, pending)
        cursor = bare.cursor(binary=True)

        def build() -> Any:
            return saver._put_writes_statement(config, pending, str(uuid.uuid4()))

        # Built beforehand, so that the bare statement pays for no Python
        # beyond psycopg's, as the floor does.
        ready = iter([build().statements()[0] for _ in range(200_000)])

        def statement() -> None:
            built = next(ready)
            cursor.execute(built.sql, built.params, prepare=True)

        def whole() -> None:
            saver.put_writes(config, pending, str(uuid.uuid4()))

        companions = {"floor": floor.op(bare), "statement": statement, "build": build}
        yield from _rounds(whole, companions, seconds, rounds)


def graph(uri: str, seconds: float, rounds: int) -> Iterator[Timings]:
    """Wall and CPU time per invoke, ours against ``InMemorySaver``."""
    with PostgresSaver.from_conn_string(uri) as saver:
        sides = {
            "ours": workloads._invoker(saver, "async"),
            "memory": workloads._invoker(InMemorySaver(), "async"),
        }
        for invoke in sides.values():
            workloads._timed(invoke, 0.5)
        for number in range(rounds):
            timings: Timings = {}
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            # Blocks of 0.1 s, alternating, for the round's seconds in all.
            spent = dict.fromkeys(sides, (0, 0.0, 0.0, 0.0))
            for block in range(max(1, round(seconds / 0.2))):
                for name in order if block % 2 == 0 else reversed(order):
                    calls = 0
                    wall, cpu, main = (
                        time.perf_counter(),
                        time.process_time(),
                        time.thread_time(),
                    )
                    end = wall + 0.1
                    while time.perf_counter() < end:
                        sides[name]()
                        calls += 1
                    n, w, c, m = spent[name]
                    spent[name] = (
                        n + calls,
                        w + time.perf_counter() - wall,
                        c + time.process_time() - cpu,
                        m + time.thread_time() - main,
                    )
            for name, (n, w, c, m) in spent.items():
                timings[f"{name}_wall_us"] = w / n * 1e6
                timings[f"{name}_cpu_us"] = c / n * 1e6
                timings[f"{name}_main_thread_cpu_us"] = m / n * 1e6
            timings["share_wall_us"] = (
                timings["ours_wall_us"] - timings["memory_wall_us"]
            )
            timings["share_cpu_us"] = timings["ours_cpu_us"] - timings["memory_cpu_us"]
            yield timings


PARTS: dict[str, Callable[[str, float, int], Iterator[Timings]]] = {
    "get_tuple": get_tuple,
    "list_20": listing(20),
    "list_all": listing(None),
    "put_writes": put_writes,
    "graph": graph,
}


def main() -> None:
    """Parse arguments, print each part's rounds and summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", required=True, help="URI of an empty database")
    parser.add_argument("--only", default="get_tuple", help=", ".join(PARTS))
    parser.add_argument("--seconds", type=float, default=2.0, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _setup(args.uri)
    for part in args.only.split(","):
        results = []
        for timings in PARTS[part](args.uri, args.seconds, args.rounds):
            results.append(timings)
            print(json.dumps({part: {k: round(v, 1) for k, v in timings.items()}}))
        summary = {
            key: {
                "median": round(statistics.median(r[key] for r in results), 1),
                "range": [
                    round(min(r[key] for r in results), 1),
                    round(max(r[key] for r in results), 1),
                ],
            }
            for key in results[0]
        }
        print(json.dumps({f"{part} (medians)": summary}), flush=True)


if __name__ == "__main__":
    main()
