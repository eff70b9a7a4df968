"""Read a checkpoint database with langgraph-checkpoint-postgres 3.2.0 itself.

``tests/test_checkpoint_rollback.py`` runs this file with another interpreter,
one that has that package installed (``UPSTREAM_PYTHON``), never ours: both
packages own ``langgraph.checkpoint.postgres``. It runs with ``python -I``
(no script folder, current folder or ``PYTHONPATH`` on ``sys.path``), so the
package imported is the installed one; the script checks that, too.

It reads a JSON request on stdin::

    {"uri": "...", "threads": ["t1", ...], "filters": [{"user": "u1"}, ...]}

calls the package's ``PostgresSaver.setup()``, then ``get_tuple`` of each
thread's latest checkpoint and ``list(None, filter=..., limit=20)`` for each
filter, and prints one JSON object: the package's version, the file it was
imported from, and each tuple as :func:`tuple_json` renders it.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "langgraph-checkpoint-postgres"
VERSION = "3.2.0"


def tuple_json(found: Any) -> dict[str, Any] | None:
    """What a user sees of a ``CheckpointTuple``, as JSON (the graphs of the
    test keep JSON-able values in their channels and writes)."""
    if found is None:
        return None
    return {
        "config": found.config["configurable"],
        "parent": (found.parent_config or {}).get("configurable"),
        "channel_values": found.checkpoint["channel_values"],
        "metadata": found.metadata,
        "pending_writes": [list(w) for w in found.pending_writes or []],
    }


def main() -> None:
    installed = importlib.metadata.version(PACKAGE)
    if installed != VERSION:
        sys.exit(f"needs {PACKAGE}=={VERSION}, found {installed}")
    import langgraph.checkpoint.postgres as package
    from langgraph.checkpoint.postgres import PostgresSaver

    module = Path(package.__file__).resolve()
    # Our source tree, not the repository: a virtualenv may sit inside it.
    if REPO / "langgraph" in module.parents:
        sys.exit(f"imported our own package ({module}), not {PACKAGE}")

    request = json.load(sys.stdin)
    with PostgresSaver.from_conn_string(request["uri"]) as saver:
        saver.setup()
        latest = [
            tuple_json(saver.get_tuple({"configurable": {"thread_id": t}}))
            for t in request["threads"]
        ]
        lists = [
            [tuple_json(t) for t in saver.list(None, filter=f, limit=20)]
            for f in request["filters"]
        ]
    json.dump(
        {"version": installed, "module": str(module), "latest": latest, "lists": lists},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
