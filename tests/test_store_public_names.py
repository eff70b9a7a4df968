"""The store names code written for ``langgraph-checkpoint-postgres`` 3.2.0 imports.

Read from 3.2.0 installed in a separate virtualenv (never this one): the
``__all__`` of ``langgraph.store.postgres``, the public names of its ``base``
module, the parameters of the constructors and ``from_conn_string``, and the
public methods of both stores. Ours may add keyword-only parameters
(``schema=``, ``timeout=``), never drop or reorder one.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from langgraph.store.base import BaseStore

UPSTREAM_ALL = ["AsyncPostgresStore", "PoolConfig", "PostgresStore"]

#: Public names of 3.2.0's ``langgraph.store.postgres.base`` that are its own
#: (not re-exported from psycopg, typing or langgraph).
UPSTREAM_BASE_NAMES = [
    "ANNIndexConfig",
    "BasePostgresStore",
    "C",
    "HNSWConfig",
    "IVFFlatConfig",
    "MIGRATIONS",
    "Migration",
    "PLACEHOLDER",
    "PoolConfig",
    "PostgresIndexConfig",
    "PostgresStore",
    "Row",
    "TTLConfig",
    "VECTOR_MIGRATIONS",
    "get_distance_operator",
]

#: (name, kind, default) of the parameters in 3.2.0, after ``self`` / ``cls``.
UPSTREAM_INIT = [
    ("conn", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
    ("pipe", "KEYWORD_ONLY", None),
    ("deserializer", "KEYWORD_ONLY", None),
    ("index", "KEYWORD_ONLY", None),
    ("ttl", "KEYWORD_ONLY", None),
]
UPSTREAM_FROM_CONN_STRING = [
    ("conn_string", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
    ("pipeline", "KEYWORD_ONLY", False),
    ("pool_config", "KEYWORD_ONLY", None),
    ("index", "KEYWORD_ONLY", None),
    ("ttl", "KEYWORD_ONLY", None),
]
UPSTREAM_METHODS = [
    "abatch",
    "adelete",
    "aget",
    "alist_namespaces",
    "aput",
    "asearch",
    "batch",
    "delete",
    "from_conn_string",
    "get",
    "list_namespaces",
    "put",
    "search",
    "setup",
    "start_ttl_sweeper",
    "stop_ttl_sweeper",
    "sweep_ttl",
]


def _parameters(function: Any) -> list[tuple[str, str, Any]]:
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return [(p.name, p.kind.name, p.default) for p in parameters]


def _stores() -> list[type[Any]]:
    from langgraph.store.postgres import AsyncPostgresStore, PostgresStore

    return [PostgresStore, AsyncPostgresStore]


def test_all_lists_the_upstream_names() -> None:
    module = importlib.import_module("langgraph.store.postgres")
    assert sorted(module.__all__) == UPSTREAM_ALL
    for name in UPSTREAM_ALL:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("name", UPSTREAM_BASE_NAMES)
def test_base_has_the_upstream_name(name: str) -> None:
    base = importlib.import_module("langgraph.store.postgres.base")
    assert hasattr(base, name)


@pytest.mark.parametrize("store", _stores(), ids=lambda s: s.__name__)
def test_constructors_keep_the_upstream_parameters(store: type[Any]) -> None:
    ours = _parameters(store.__init__)
    assert ours[: len(UPSTREAM_INIT)] == UPSTREAM_INIT
    assert all(kind == "KEYWORD_ONLY" for _, kind, _ in ours[len(UPSTREAM_INIT) :])
    ours = _parameters(store.from_conn_string)
    assert ours[: len(UPSTREAM_FROM_CONN_STRING)] == UPSTREAM_FROM_CONN_STRING
    extra = ours[len(UPSTREAM_FROM_CONN_STRING) :]
    assert all(kind == "KEYWORD_ONLY" for _, kind, _ in extra)


@pytest.mark.parametrize("store", _stores(), ids=lambda s: s.__name__)
def test_stores_have_the_upstream_methods(store: type[Any]) -> None:
    from langgraph.store.postgres.base import BasePostgresStore

    assert issubclass(store, BaseStore)
    assert issubclass(store, BasePostgresStore)
    assert store.supports_ttl is True
    missing = [name for name in UPSTREAM_METHODS if not callable(getattr(store, name))]
    assert missing == []


def test_migrations_have_the_upstream_shape() -> None:
    from langgraph.store.postgres.base import MIGRATIONS, VECTOR_MIGRATIONS, Migration

    assert len(MIGRATIONS) == 4  # store_migrations 0-3 in 3.2.0
    assert all(isinstance(sql, str) for sql in MIGRATIONS)
    assert len(VECTOR_MIGRATIONS) == 3  # vector_migrations 0-2
    assert Migration._fields == ("sql", "params", "condition")

    class Store:
        index_config = {
            "dims": 8,
            "embed": lambda texts: texts,
            "ann_index_config": {"kind": "hnsw", "m": 8},
        }

    # Filled in as the existing package fills them: sql % {name: f(store)}.
    table, index = VECTOR_MIGRATIONS[1], VECTOR_MIGRATIONS[2]
    assert table.params is not None and index.params is not None
    sql = table.sql % {k: f(Store()) for k, f in table.params.items()}
    assert "embedding vector(8)" in sql
    sql = index.sql % {k: f(Store()) for k, f in index.params.items()}
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m = 8)" in sql
    assert index.condition is not None and index.condition(Store())


def test_pool_config_takes_the_upstream_keys() -> None:
    from langgraph.store.postgres import PoolConfig

    assert {"min_size", "max_size", "kwargs"} <= set(PoolConfig.__annotations__)
