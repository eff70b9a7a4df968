"""Where our ``get_tuple`` spends the time above its floor.

    .venv/bin/python bench/breakdown.py --uri URI_OF_AN_EMPTY_DATABASE

Ours only (it reads the saver's own statement). On the 300-checkpoint thread
of ``get_tuple_latest``, three calls are timed interleaved, in the bursts of
``workloads.run_for``: the floor (``bench/floors.py``: the same bytes by one
bare prepared SELECT), the saver's own read query run bare (prepared, binary
results fetched, nothing decoded), and the whole ``get_tuple``. The query's
excess over the floor is the server's and the wire's; the rest, up to
``get_tuple``, is the client's (decoding, building the tuple). Prints one
JSON line of mean latencies in µs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import floors
import workloads

from langgraph.checkpoint.postgres import PostgresSaver


def breakdown(uri: str, seconds: float) -> dict[str, Any]:
    """Time the floor, the bare read query and ``get_tuple``, interleaved."""
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
    workloads.fill_thread(uri, "history", workloads.HISTORY, writes=True)
    floor = floors.read_floor(uri, "history")
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

        def get_tuple() -> None:
            assert saver.get_tuple(config) is not None

        companions: dict[str, Callable[[], object]] = {
            "floor": floor.op(bare),
            "query": query,
        }
        result = workloads.run_for(get_tuple, workloads.Clock(seconds, 0.5), companions)
    return {
        "get_tuple_us": result["latency_us"],
        "query_us": result["query_us"],
        "floor_us": result["floor_us"],
        "floor_bytes": floor.bytes_per_call,
    }


def main() -> None:
    """Parse arguments, print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", required=True, help="URI of an empty database")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    print(json.dumps(breakdown(args.uri, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
