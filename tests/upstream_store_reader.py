"""Read a store database with langgraph-checkpoint-postgres 3.2.0 itself.

``tests/test_store_compat.py`` runs this file with another interpreter, one
that has that package installed (``UPSTREAM_PYTHON``), never ours: both
packages own ``langgraph.store.postgres``. It runs with ``python -I`` (no
script folder, current folder or ``PYTHONPATH`` on ``sys.path``), so the
package imported is the installed one; the script checks that, too.

It reads a JSON request on stdin::

    {"uri": "...", "index": {"dims": 16, "fields": [...], ...} | null,
     "setup": true,
     "reads": [{"ttl": {...} | null,
                "gets": [[namespace, key], ...],
                "searches": [{"namespace_prefix": [...], "query": ..., ...}],
                "lists": [{"prefix": [...], "max_depth": 1, ...}]}]}

opens the database with the package's ``PostgresStore`` (the index config's
``embed`` is ``embed_texts`` of ``tests/store_embeddings.py``, imported by
path), calls ``setup()`` if asked, runs each read set through a store with
that set's ``ttl`` config, and prints one JSON object: the package's version,
the file it was imported from, and the results (items with value and UTC
timestamps, search scores unrounded, namespaces as lists).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "langgraph-checkpoint-postgres"
VERSION = "3.2.0"


def load_embeddings() -> Any:
    """``tests/store_embeddings.py``, imported by path."""
    path = REPO / "tests" / "store_embeddings.py"
    spec = importlib.util.spec_from_file_location("_store_embeddings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def item_json(item: Any) -> dict[str, Any] | None:
    if item is None:
        return None
    found = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
    }
    if hasattr(item, "score"):
        found["score"] = item.score
    return found


def tuples(args: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the store API takes."""
    return {k: tuple(v) if k in ("prefix", "suffix") else v for k, v in args.items()}


def run_reads(store: Any, reads: dict[str, Any]) -> dict[str, Any]:
    return {
        "gets": [item_json(store.get(tuple(ns), key)) for ns, key in reads["gets"]],
        "searches": [
            [
                item_json(item)
                for item in store.search(
                    tuple(s["namespace_prefix"]),
                    **{k: v for k, v in s.items() if k != "namespace_prefix"},
                )
            ]
            for s in reads["searches"]
        ],
        "lists": [
            [list(ns) for ns in store.list_namespaces(**tuples(args))]
            for args in reads["lists"]
        ],
    }


def main() -> None:
    installed = importlib.metadata.version(PACKAGE)
    if installed != VERSION:
        sys.exit(f"needs {PACKAGE}=={VERSION}, found {installed}")
    import langgraph.store.postgres as package
    from langgraph.store.postgres import PostgresStore

    module = Path(package.__file__).resolve()
    # Our source tree, not the repository: a virtualenv may sit inside it.
    if REPO / "langgraph" in module.parents:
        sys.exit(f"imported our own package ({module}), not {PACKAGE}")

    request = json.load(sys.stdin)
    index = request["index"]
    if index is not None:
        index = {**index, "embed": load_embeddings().embed_texts}
    uri = request["uri"]
    results = []
    if request["setup"]:
        with PostgresStore.from_conn_string(uri, index=index) as store:
            store.setup()
    for reads in request["reads"]:
        with PostgresStore.from_conn_string(uri, index=index, ttl=reads["ttl"]) as s:
            results.append(run_reads(s, reads))
    json.dump(
        {"version": installed, "module": str(module), "reads": results}, sys.stdout
    )


if __name__ == "__main__":
    main()
