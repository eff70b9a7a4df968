"""Store databases written by langgraph-checkpoint-postgres 3.2.0, and back.

``tests/fixtures/upstream-3.2.0-store`` holds every row of two store
databases that package wrote (one with an index config and pgvector, one
plain) and what it returned for a fixed list of reads. Here:

1. Forward. Each test loads those rows into an empty database at the
   fixture's own layout (the existing package's migrations, from our
   ``MIGRATIONS`` and ``VECTOR_MIGRATIONS`` rendered for the recorded index
   config, nothing else), checks the layout is the recorded one, and lets
   our ``setup()`` take it from there: it must apply our own migration (in
   ``store_ext_migrations``) and nothing else, and leave every row as it
   was. Every recorded read then returns what the package returned,
   through every connection kind (the full list on one sync and one async
   kind, a subset on the others).
2. Our store writes on: puts, updates, deletes and semantic searches on the
   loaded database give the right results, checked against a model of the
   data recomputed in Python with the fixture's embedding.
3. Rollback. What our store writes keeps the meaning the 3.x layout gives
   to its rows (checked at SQL level), and the existing package itself, run
   in its own interpreter (``UPSTREAM_PYTHON``), reads it as our store
   does; its ``setup()`` finds nothing to do.

Timestamps: ``expires_at`` is absolute, so the loader moves it by the time
since the recording (``now() - recorded_at``): the TTL reads replay as
recorded. ``created_at`` and ``updated_at`` stay as recorded, so that gets
return exactly the recorded items; nothing reads them relative to now.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import math
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from langgraph.store.base import get_text_at_path, tokenize_path
from psycopg import sql
from psycopg.types.json import Jsonb

from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from langgraph.store.postgres.base import MIGRATIONS, VECTOR_MIGRATIONS
from tests.conftest import Databases
from tests.store_embeddings import DIMS, FIELDS, embed_text, embed_texts
from tests.stores import (
    ASYNC_STORE_KINDS,
    SYNC_STORE_KINDS,
    async_store,
    require_pgvector,
    sync_store,
)
from tests.upstream import upstream_python

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "upstream-3.2.0-store"
READER = Path(__file__).parent / "upstream_store_reader.py"

ALICE_MEM = ("users", "alice", "memories")
BOB = ("users", "bob")

#: Primary keys of the store tables, in the fixture's dump order.
PRIMARY_KEYS = {
    "store_migrations": ["v"],
    "vector_migrations": ["v"],
    "store_ext_migrations": ["v"],
    "store": ["prefix", "key"],
    "store_vectors": ["prefix", "key", "field_name"],
}
#: How the existing package's setup() creates a table of applied versions.
VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS {} (v INTEGER PRIMARY KEY)"
TIMESTAMPS = ("created_at", "updated_at", "expires_at")
SCORE_TOLERANCE = 1e-4


# --------------------------------------------------------------------------
# The fixture on disk
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreFixture:
    name: str
    rows: tuple[tuple[str, dict[str, Any]], ...]
    expected: dict[str, Any]

    @property
    def indexed(self) -> bool:
        return "store_vectors" in self.expected["schema"]["tables"]

    @property
    def recorded_at(self) -> datetime:
        return datetime.fromisoformat(self.expected["recorded_at"])

    def table(self, name: str) -> list[dict[str, Any]]:
        return [row for table, row in self.rows if table == name]


@cache
def read_store_fixture(indexed: bool) -> StoreFixture:
    suffix = "" if indexed else "-plain"
    rows = []
    with open(FIXTURE_DIR / f"rows{suffix}.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                rows.append((record["table"], record["row"]))
    expected = json.loads(
        (FIXTURE_DIR / f"expected{suffix}.json").read_text(encoding="utf-8")
    )
    return StoreFixture("indexed" if indexed else "plain", tuple(rows), expected)


def index_json() -> dict[str, Any]:
    """The recorded index config, without its embedding function."""
    recorded = dict(read_store_fixture(True).expected["index"])
    assert recorded.pop("embed") == "tests.store_embeddings.embed_texts"
    assert (recorded["dims"], recorded["fields"]) == (DIMS, FIELDS)
    return recorded


def index_config() -> dict[str, Any]:
    """The index config the fixture was recorded with (dims 16, hnsw, cosine)."""
    return {**index_json(), "embed": embed_texts}


def store_options(fixture: StoreFixture, **ttl: Any) -> dict[str, Any]:
    """Our store's options for ``fixture``: its index config, ``ttl`` if given."""
    options: dict[str, Any] = {"ttl": ttl or None}
    if fixture.indexed:
        options["index"] = index_config()
    return options


# --------------------------------------------------------------------------
# Building the fixture's database
# --------------------------------------------------------------------------


def layout_statements(fixture: StoreFixture) -> list[str]:
    """The existing package's migrations for the fixture, as it ran them.

    Its setup() creates each table of applied versions first, then runs
    ``MIGRATIONS`` as they are and ``VECTOR_MIGRATIONS`` filled the way that
    package fills them (``sql % params`` with the params computed from the
    store's index config), skipping those whose condition is false.
    """
    assert len(MIGRATIONS) == len(fixture.table("store_migrations")) == 4
    statements = [VERSIONS_TABLE.format("store_migrations"), *MIGRATIONS]
    if fixture.indexed:
        statements.append(VERSIONS_TABLE.format("vector_migrations"))
        holder = SimpleNamespace(index_config=index_json())
        assert len(VECTOR_MIGRATIONS) == len(fixture.table("vector_migrations")) == 3
        for migration in VECTOR_MIGRATIONS:
            if migration.condition and not migration.condition(holder):
                continue
            params = {k: f(holder) for k, f in (migration.params or {}).items()}
            statements.append(migration.sql % params if params else migration.sql)
    return statements


def load_store_fixture(uri: str, fixture: StoreFixture) -> None:
    """Recreate the fixture's database in the empty database at ``uri``:
    its layout, then every row, ``expires_at`` moved by the time since the
    recording (measured on the server's clock). ``setup()`` is the caller's."""
    with psycopg.connect(uri, autocommit=True) as conn:
        # Autocommit: the ANN index migration builds CONCURRENTLY, as it did.
        for statement in layout_statements(fixture):
            conn.execute(statement)
        with conn.transaction():
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            shift = now - fixture.recorded_at
            for table, row in fixture.rows:
                values = []
                for column, value in row.items():
                    if column in TIMESTAMPS and value is not None:
                        value = datetime.fromisoformat(value)
                        if column == "expires_at":
                            value += shift
                    elif column == "value":
                        value = Jsonb(value)
                    values.append(value)
                conn.execute(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        sql.Identifier(table),
                        sql.SQL(", ").join(map(sql.Identifier, row)),
                        sql.SQL(", ").join(sql.Placeholder() * len(row)),
                    ),
                    values,
                )


def shifted_rows(fixture: StoreFixture, shift: timedelta) -> list[dict[str, Any]]:
    """The fixture's rows as :func:`dump_rows` returns them after a load
    that moved ``expires_at`` by ``shift``."""
    records = []
    for table, row in fixture.rows:
        row = dict(row)
        if row.get("expires_at") is not None:
            row["expires_at"] = iso(datetime.fromisoformat(row["expires_at"]) + shift)
        records.append({"table": table, "row": row})
    return records


def load_shift(uri: str, fixture: StoreFixture) -> timedelta:
    """The shift the loader applied, read back from an item with a TTL."""
    key = next(r for r in fixture.table("store") if r["expires_at"] is not None)
    with psycopg.connect(uri, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT expires_at FROM store WHERE prefix = %s AND key = %s",
            (key["prefix"], key["key"]),
        ).fetchone()[0]  # type: ignore[index]
    return stored - datetime.fromisoformat(key["expires_at"])


def fresh_load(databases: Databases, fixture: StoreFixture) -> str:
    """A new database holding ``fixture`` (pgvector checked when needed)."""
    uri = databases.create(migrated=False)
    if fixture.indexed:
        require_pgvector(uri)
    load_store_fixture(uri, fixture)
    return uri


def our_setup(uri: str, fixture: StoreFixture) -> None:
    """Our ``setup()`` with the fixture's index config, on a plain connection."""
    with PostgresStore.from_conn_string(uri, **store_options(fixture)) as store:
        store.setup()


@pytest.fixture(scope="module")
def module_databases(server_uri: str, template_db: str) -> Iterator[Databases]:
    """Databases shared by the read-only tests of this module."""
    dbs = Databases(server_uri, template_db)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="module")
def indexed_uri(module_databases: Databases) -> str:
    """The indexed fixture, loaded and set up by us once; tests only read it
    (their reads restart TTLs, which moves ``expires_at``, never a result)."""
    fixture = read_store_fixture(True)
    uri = fresh_load(module_databases, fixture)
    our_setup(uri, fixture)
    return uri


@pytest.fixture(scope="module")
def plain_uri(module_databases: Databases) -> str:
    """The plain fixture, loaded and set up by us once."""
    fixture = read_store_fixture(False)
    uri = fresh_load(module_databases, fixture)
    our_setup(uri, fixture)
    return uri


# --------------------------------------------------------------------------
# What a database holds
# --------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC, as the fixture records them."""
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def store_tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [
        table
        for table in PRIMARY_KEYS
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]  # type: ignore[index]
    ]


def dump_rows(uri: str) -> list[dict[str, Any]]:
    """Every row of the store tables, as the fixture's ``rows.jsonl`` has
    them: primary key order (byte-wise), columns in table order, timestamps
    as ISO 8601 UTC, jsonb parsed, vectors in pgvector's text form."""
    records = []
    with psycopg.connect(uri, autocommit=True) as conn:
        for table in store_tables(conn):
            columns = conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s"
                " ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            select = sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(name))
                if udt in ("vector", "halfvec")
                else sql.Identifier(name)
                for name, udt in columns
            )
            order = sql.SQL(", ").join(
                sql.SQL('{} COLLATE "C"').format(sql.Identifier(c))
                if c != "v"
                else sql.Identifier(c)
                for c in PRIMARY_KEYS[table]
            )
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                select, sql.Identifier(table), order
            )
            for row in conn.execute(query):
                out = {}
                for (name, _), value in zip(columns, row):
                    out[name] = iso(value) if isinstance(value, datetime) else value
                records.append({"table": table, "row": out})
    return records


def dump_schema(uri: str) -> dict[str, Any]:
    """Columns, constraints, indexes and extensions of the store tables, as
    ``expected.json`` records them (``record.py``'s query)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        tables = store_tables(conn)
        columns: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
        for table, name, type_, not_null, default in conn.execute(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                   a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY c.relname, a.attnum
            """,
            (tables,),
        ):
            columns[table].append(
                {"name": name, "type": type_, "not_null": not_null, "default": default}
            )
        constraints = [
            {"table": t, "name": n, "definition": d}
            for t, n, d in conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
                " ORDER BY 1, 2"
            )
        ]
        indexes = [
            {"table": t, "name": n, "definition": d}
            for t, n, d in conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = 'public' ORDER BY 1, 2"
            )
        ]
        extensions = dict(
            conn.execute(
                "SELECT extname, extversion FROM pg_extension"
                " WHERE extname <> 'plpgsql' ORDER BY 1"
            ).fetchall()
        )
    return {
        "tables": tables,
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
        "extensions": extensions,
    }


def comparable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without what depends on the server rather than the layout:
    PostgreSQL 18 lists NOT NULL as constraints (earlier versions do not;
    the columns' ``not_null`` says it either way), and extension versions."""
    return {
        **schema,
        "constraints": [
            c
            for c in schema["constraints"]
            if not c["definition"].startswith("NOT NULL ")
        ],
        "extensions": sorted(schema["extensions"]),
    }


def versions(uri: str, table: str) -> list[int] | None:
    """The rows of a table of applied migrations (None: no such table)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:  # type: ignore[index]
            return None
        return [v for (v,) in conn.execute(f"SELECT v FROM {table} ORDER BY v")]


def store_row(uri: str, namespace: tuple[str, ...], key: str) -> dict[str, Any] | None:
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT *, expires_at - updated_at AS ttl_span FROM store"
            " WHERE prefix = %s AND key = %s",
            (".".join(namespace), key),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c.name for c in cur.description or ()], row))


def vectors_of(uri: str) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Every stored vector: (prefix, key) -> field_name -> embedding."""
    found: dict[tuple[str, str], dict[str, list[float]]] = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        for prefix, key, field_name, embedding in conn.execute(
            "SELECT prefix, key, field_name, embedding::text FROM store_vectors"
        ):
            found.setdefault((prefix, key), {})[field_name] = json.loads(embedding)
    return found


def server_now(uri: str) -> datetime:
    with psycopg.connect(uri, autocommit=True) as conn:
        return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


# --------------------------------------------------------------------------
# A model of the data: what searches must return, recomputed in Python
# --------------------------------------------------------------------------


def field_texts(
    value: dict[str, Any], fields: Sequence[str] = FIELDS
) -> dict[str, str]:
    """The texts an index config's ``fields`` take from ``value``, by the
    ``field_name`` the existing package gives them: the path, or ``path.i``
    when the path yields several texts."""
    named = {}
    for path in fields:
        texts = get_text_at_path(value, tokenize_path(path))
        for i, text in enumerate(texts):
            named[f"{path}.{i}" if len(texts) > 1 else path] = text
    return named


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@dataclass
class Model:
    """The items of a store and their vectors, as a search must see them.

    ``order`` ranks items by ``updated_at``: the fixture's rows by their
    recorded timestamps, then the writes of the test in the order made.
    """

    values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    vectors: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    order: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    writes: int = 0

    @classmethod
    def of(cls, fixture: StoreFixture) -> Model:
        model = cls()
        for row in fixture.table("store"):
            k = (row["prefix"], row["key"])
            model.values[k] = row["value"]
            model.order[k] = (0, row["updated_at"])
        for row in fixture.table("store_vectors"):
            k = (row["prefix"], row["key"])
            vector = json.loads(row["embedding"])
            model.vectors.setdefault(k, {})[row["field_name"]] = vector
        return model

    def put(
        self, namespace: tuple[str, ...], key: str, value: dict[str, Any], index: Any
    ) -> None:
        """A put through our store: the item's vectors are replaced."""
        k = (".".join(namespace), key)
        self.values[k] = value
        self.writes += 1
        self.order[k] = (1, f"{self.writes:06d}")
        if index is False:
            self.vectors.pop(k, None)
        else:
            texts = field_texts(value, FIELDS if index is None else index)
            self.vectors[k] = {name: embed_text(t) for name, t in texts.items()}

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        k = (".".join(namespace), key)
        self.values.pop(k, None)
        self.vectors.pop(k, None)
        self.order.pop(k, None)

    def _scope(
        self, prefix: Sequence[str], filter_: dict[str, Any] | None
    ) -> list[tuple[str, str]]:
        def matches(value: dict[str, Any]) -> bool:
            for name, want in (filter_ or {}).items():
                if isinstance(want, dict):
                    assert set(want) == {"$eq"}, "the model knows only $eq"
                    want = want["$eq"]
                if name not in value or value[name] != want:
                    return False
            return True

        return [
            k
            for k, value in self.values.items()
            if k[0].split(".")[: len(prefix)] == list(prefix) and matches(value)
        ]

    def search(
        self,
        prefix: Sequence[str] = (),
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the API's name
        limit: int = 10,
        offset: int = 0,
    ) -> list[tuple[list[str], str, float | None]]:
        """(namespace, key, score) of the page a search must return."""
        scope = self._scope(prefix, filter)
        if query is None:
            scope.sort(key=lambda k: self.order[k], reverse=True)
            return [(k[0].split("."), k[1], None) for k in scope][
                offset : offset + limit
            ]
        q = embed_text(query)
        scored = sorted(
            (
                (max(cosine(q, v) for v in self.vectors[k].values()), k)
                for k in scope
                if self.vectors.get(k)
            ),
            reverse=True,
        )
        # The order of equal scores is the database's: no ties where they
        # decide what the page shows.
        scores = [s for s, _ in scored][: offset + limit + 1]
        for a, b in zip(scores, scores[1:]):
            assert a - b > 1e-6, f"tied scores for {query!r}: {scores}"
        return [(k[0].split("."), k[1], s) for s, k in scored[offset : offset + limit]]


# --------------------------------------------------------------------------
# Calling the store, sync or async, and recording what it returns
# --------------------------------------------------------------------------


class Api:
    """Calls a :class:`PostgresStore` directly, or an async store's ``a*``
    methods, so that one scenario serves both."""

    def __init__(self, store: PostgresStore | AsyncPostgresStore) -> None:
        self.store = store
        self.is_async = isinstance(store, AsyncPostgresStore)

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async and name != "setup":
            name = "a" + name
        result = getattr(self.store, name)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


def item_json(item: Any) -> dict[str, Any] | None:
    """An item as the fixture and the reader record it."""
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


def search_args(search: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A recorded search's arguments (without its result)."""
    kwargs = {
        k: v
        for k, v in search.items()
        if k not in ("namespace_prefix", "result", "depends_on_stale_vectors")
    }
    return tuple(search["namespace_prefix"]), kwargs


def list_args(listing: dict[str, Any]) -> dict[str, Any]:
    """A recorded list_namespaces' arguments (without its result)."""
    return {
        k: tuple(v) if k in ("prefix", "suffix") else v
        for k, v in listing.items()
        if k != "result"
    }


async def observe(
    api: Api,
    gets: Sequence[Sequence[Any]],
    searches: Sequence[dict[str, Any]],
    lists: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Run reads through our store, recorded as the reader records them."""
    found: dict[str, list[Any]] = {"gets": [], "searches": [], "lists": []}
    for namespace, key in gets:
        found["gets"].append(item_json(await api("get", tuple(namespace), key)))
    for search in searches:
        prefix, kwargs = search_args(search)
        items = await api("search", prefix, **kwargs)
        found["searches"].append([item_json(item) for item in items])
    for args in lists:
        namespaces = await api("list_namespaces", **list_args(args))
        found["lists"].append([list(ns) for ns in namespaces])
    return found


def check_page(
    got: Sequence[dict[str, Any]], want: Sequence[tuple[list[str], str, Any]]
) -> None:
    """Search results are the wanted items, in order, scores within 1e-4."""
    assert [(g["namespace"], g["key"]) for g in got] == [(w[0], w[1]) for w in want]
    for g, w in zip(got, want):
        if w[2] is None:
            assert g["score"] is None, g
        else:
            assert g["score"] == pytest.approx(w[2], abs=SCORE_TOLERANCE), (g, w)


def check_recorded(observed: dict[str, Any], recorded: dict[str, Any]) -> None:
    """Our reads equal the existing package's recorded ones."""
    for kind, recorded_kind in (
        ("gets", "gets"),
        ("searches", "searches"),
        ("lists", "list_namespaces"),
    ):
        assert len(observed[kind]) == len(recorded[recorded_kind])
    for got, want in zip(observed["gets"], recorded["gets"]):
        assert got == want["result"], (want["namespace"], want["key"])
    for got, want in zip(observed["searches"], recorded["searches"]):
        page = [(r["namespace"], r["key"], r["score"]) for r in want["result"]]
        check_page(got, page)
    for got, want in zip(observed["lists"], recorded["list_namespaces"]):
        assert got == want["result"], want


def recorded_reads(
    reads: dict[str, Any], full: bool, subset: dict[str, list[int]]
) -> dict[str, Any]:
    """The recorded reads, or the ``subset`` of them (positions per kind)."""
    if full:
        return reads
    return {kind: [reads[kind][i] for i in subset[kind]] for kind in subset}


async def replay(
    api: Api, recorded: dict[str, Any], *, full: bool, subset: dict[str, list[int]]
) -> None:
    reads = recorded_reads(recorded, full, subset)
    observed = await observe(
        api,
        [(g["namespace"], g["key"]) for g in reads["gets"]],
        reads["searches"],
        reads["list_namespaces"],
    )
    assert len(observed["gets"]) == len(reads["gets"]) > 0
    check_recorded(observed, reads)


# --------------------------------------------------------------------------
# 1. Forward: the fixture's layout, our setup(), the recorded reads
# --------------------------------------------------------------------------

BOTH = [pytest.param(True, id="indexed"), pytest.param(False, id="plain")]


def test_fixture_is_what_the_readme_says() -> None:
    """The rows the tests rely on are there, as the fixture's README says."""
    fixture = read_store_fixture(True)
    assert [r["v"] for r in fixture.table("store_migrations")] == [0, 1, 2, 3]
    assert [r["v"] for r in fixture.table("vector_migrations")] == [0, 1, 2]
    rows = {(r["prefix"], r["key"]): r for r in fixture.table("store")}
    assert rows[("users.bob", "half")]["ttl_minutes"] == 10000
    assert rows[("scratch", "short-ttl")]["ttl_minutes"] == 0
    assert rows[("users.bob", "default-ttl")]["ttl_minutes"] == 20000
    stale = {(v["key"], v["field_name"]) for v in fixture.expected["stale_vectors"]}
    assert stale == {("m1", "tags[*].0"), ("m1", "tags[*].1")}
    flagged = [
        s["query"]
        for s in fixture.expected["searches"]
        if s.get("depends_on_stale_vectors")
    ]
    assert flagged == ["green tea", "install with pip", "notes about namespaces"]
    for vector in fixture.table("store_vectors"):
        # Every stored vector is the embedding of a text its item has, or
        # (the stale ones) had: m1's first tags.
        texts = field_texts(rows[(vector["prefix"], vector["key"])]["value"])
        assert json.loads(vector["embedding"]) in [
            embed_text(t) for t in ["tea", "morning", *texts.values()]
        ]
    assert not read_store_fixture(False).indexed


@pytest.mark.parametrize("indexed", BOTH)
def test_loader_rebuilds_the_recorded_database(
    databases: Databases, indexed: bool
) -> None:
    """The existing package's migrations, as ours hold them, build exactly
    the recorded layout, and the loader puts every row back."""
    fixture = read_store_fixture(indexed)
    uri = databases.create(migrated=False)
    if indexed:
        require_pgvector(uri)
    start = server_now(uri)
    load_store_fixture(uri, fixture)
    end = server_now(uri)
    assert comparable_schema(dump_schema(uri)) == comparable_schema(
        fixture.expected["schema"]
    )
    # expires_at moved by the time since the recording, nothing else moved.
    shift = load_shift(uri, fixture)
    assert start - fixture.recorded_at <= shift <= end - fixture.recorded_at
    assert dump_rows(uri) == shifted_rows(fixture, shift)


def expected_setup_schema(before: dict[str, Any]) -> dict[str, Any]:
    """The layout after our setup(): the one before, plus our migration's
    ``ttl_seconds`` column and our ``store_ext_migrations`` table."""
    after = copy.deepcopy(before)
    tables = {*before["tables"], "store_ext_migrations"}
    after["tables"] = [t for t in PRIMARY_KEYS if t in tables]
    after["columns"]["store"].append(
        {"name": "ttl_seconds", "type": "double precision", "not_null": False,
         "default": None}
    )  # fmt: skip
    after["columns"]["store_ext_migrations"] = [
        {"name": "v", "type": "integer", "not_null": True, "default": None}
    ]
    after["constraints"].append(
        {"table": "store_ext_migrations", "name": "store_ext_migrations_pkey",
         "definition": "PRIMARY KEY (v)"}
    )  # fmt: skip
    after["indexes"].append(
        {"table": "store_ext_migrations", "name": "store_ext_migrations_pkey",
         "definition": "CREATE UNIQUE INDEX store_ext_migrations_pkey ON "
         "public.store_ext_migrations USING btree (v)"}
    )  # fmt: skip
    for part in ("constraints", "indexes"):
        after[part].sort(key=lambda c: (c["table"], c["name"]))
    return comparable_schema(after)


def check_setup_effect(
    uri: str, fixture: StoreFixture, schema: dict[str, Any], rows: list[Any]
) -> None:
    """Our setup() applied our own migration and nothing else."""
    # The existing package's bookkeeping is untouched: a row of ours there
    # would make it skip its own next migration.
    assert versions(uri, "store_migrations") == [0, 1, 2, 3]
    assert versions(uri, "vector_migrations") == (
        [0, 1, 2] if fixture.indexed else None
    )
    assert versions(uri, "store_ext_migrations") == [0]
    assert comparable_schema(dump_schema(uri)) == expected_setup_schema(schema)
    after = dump_rows(uri)
    ttl_seconds = [r["row"].pop("ttl_seconds") for r in after if r["table"] == "store"]
    assert ttl_seconds == [None] * len(fixture.table("store"))
    assert [r for r in after if r["table"] != "store_ext_migrations"] == rows


def some_item(fixture: StoreFixture) -> tuple[tuple[str, ...], str]:
    row = fixture.table("store")[0]
    return tuple(row["prefix"].split(".")), row["key"]


def setup_cases(kinds: list[str]) -> list[Any]:
    return [pytest.param(kind, indexed) for kind in kinds for indexed in (True, False)]


@pytest.mark.parametrize(("kind", "indexed"), setup_cases(SYNC_STORE_KINDS))
def test_setup_applies_only_our_migration_sync(
    databases: Databases, kind: str, indexed: bool
) -> None:
    fixture = read_store_fixture(indexed)
    uri = fresh_load(databases, fixture)
    schema, rows = dump_schema(uri), dump_rows(uri)
    with sync_store(kind, uri, **store_options(fixture)) as store:
        for _ in range(2):  # the second call finds nothing to do
            store.setup()
            # The store is usable right after.
            assert store.get(*some_item(fixture), refresh_ttl=False) is not None
    check_setup_effect(uri, fixture, schema, rows)


@pytest.mark.parametrize(("kind", "indexed"), setup_cases(ASYNC_STORE_KINDS))
async def test_setup_applies_only_our_migration_async(
    databases: Databases, kind: str, indexed: bool
) -> None:
    fixture = read_store_fixture(indexed)
    uri = fresh_load(databases, fixture)
    schema, rows = dump_schema(uri), dump_rows(uri)
    async with async_store(kind, uri, **store_options(fixture)) as store:
        for _ in range(2):
            await store.setup()
            found = await store.aget(*some_item(fixture), refresh_ttl=False)
            assert found is not None
    check_setup_effect(uri, fixture, schema, rows)


# The reads the kinds other than the first sync and async ones replay
# (positions in expected.json): a dotted key with nested values, big
# numbers, a deleted item, unicode, an expired item and a namespace used as
# a key; a page, an $eq filter, a list filter; the three semantic searches
# the stale vectors sway (one with an offset, one filtered); list_namespaces
# with ``*``, with ``max_depth``, and paged. With omit_expired: an item
# expiring in a week, one with a fractional TTL, the expired one; every
# search and two listings.
SUBSET = {
    "gets": [1, 3, 5, 11, 15, 17],
    "searches": [6, 8, 10, 12, 16, 17],
    "list_namespaces": [2, 7, 11],
}
OMIT_SUBSET = {"gets": [1, 13, 15], "searches": [0, 1, 2], "list_namespaces": [0, 2]}


async def replay_indexed(api_for: Any, full: bool) -> None:
    """Every recorded read of the indexed fixture (or the subset), then the
    ``omit_expired`` replay through a store with that TTL config.

    The stale ``m1`` vectors (``depends_on_stale_vectors``) are rows of the
    database: our store reads them as the existing package did, so those
    searches return what it returned. Our store never writes such rows (the
    continuation tests check that), but fixing rows it did not write is not
    a read's business.
    """
    expected = read_store_fixture(True).expected
    async with api_for(**expected["ttl"]) as api:
        await replay(api, expected, full=full, subset=SUBSET)
    omit = expected["omit_expired"]
    async with api_for(**omit["ttl"]) as api:
        await replay(api, omit, full=full, subset=OMIT_SUBSET)


def sync_api_for(kind: str, uri: str, fixture: StoreFixture) -> Any:
    """``api_for(**ttl)``: an Api on a new sync store of ``kind`` on ``uri``
    with the fixture's index config and that TTL config."""

    @asynccontextmanager
    async def api_for(**ttl: Any) -> Any:
        with sync_store(kind, uri, **store_options(fixture, **ttl)) as store:
            yield Api(store)

    return api_for


def async_api_for(kind: str, uri: str, fixture: StoreFixture) -> Any:
    """The same with an async store."""

    @asynccontextmanager
    async def api_for(**ttl: Any) -> Any:
        async with async_store(kind, uri, **store_options(fixture, **ttl)) as store:
            yield Api(store)

    return api_for


@pytest.mark.parametrize("kind", SYNC_STORE_KINDS)
def test_indexed_fixture_reads_sync(indexed_uri: str, kind: str) -> None:
    fixture = read_store_fixture(True)
    api_for = sync_api_for(kind, indexed_uri, fixture)
    asyncio.run(replay_indexed(api_for, full=kind == SYNC_STORE_KINDS[0]))


@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
async def test_indexed_fixture_reads_async(indexed_uri: str, kind: str) -> None:
    fixture = read_store_fixture(True)
    api_for = async_api_for(kind, indexed_uri, fixture)
    await replay_indexed(api_for, full=kind == ASYNC_STORE_KINDS[0])


async def replay_plain(api_for: Any) -> None:
    """The plain fixture's reads, all of them (they are few), through a
    store without index or TTL config, as they were recorded."""
    expected = read_store_fixture(False).expected
    async with api_for() as api:
        await replay(api, expected, full=True, subset={})


@pytest.mark.parametrize("kind", SYNC_STORE_KINDS)
def test_plain_fixture_reads_sync(plain_uri: str, kind: str) -> None:
    api_for = sync_api_for(kind, plain_uri, read_store_fixture(False))
    asyncio.run(replay_plain(api_for))


@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
async def test_plain_fixture_reads_async(plain_uri: str, kind: str) -> None:
    await replay_plain(async_api_for(kind, plain_uri, read_store_fixture(False)))


# --------------------------------------------------------------------------
# 2. Writing on through our store
# --------------------------------------------------------------------------

M1_NEW = {"text": "Alice now drinks mint tea", "tags": ["mint"], "kind": "note"}
M4 = {
    "text": "Alice planted tomatoes in the garden",
    "tags": ["garden", "tomato", "summer"],
    "kind": "note",
    "nested": {"rows": [1, 2.5, None, {"deep": True}]},
}
PREFS_NEW = {"text": "Bob now prefers light mode", "theme": "light", "kind": "pref"}

#: (action, namespace, key, value, keyword arguments), each its own call.
CONTINUE_WRITES: list[tuple[str, tuple[str, ...], str, Any, dict[str, Any]]] = [
    # One tag instead of two: the first put's tags[*].0/.1 (stale already)
    # must go, replaced by tags[*].
    ("put", ALICE_MEM, "m1", M1_NEW, {}),
    ("put", ALICE_MEM, "m4", M4, {"ttl": 0.5}),
    # index=False: no vector, and no old vector either.
    ("put", BOB, "prefs", PREFS_NEW, {"index": False}),
    ("delete", BOB, "nulls", None, {}),
    ("delete", ("docsx",), "z", None, {}),
]
CONTINUE_SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": ("users",), "limit": 100},
    {"namespace_prefix": (), "filter": {"kind": "note"}, "limit": 100},
    {"namespace_prefix": (), "query": "green tea", "limit": 5},
    {"namespace_prefix": (), "query": "tomato garden summer", "limit": 3},
    {"namespace_prefix": ("users",), "query": "dark mode", "limit": 3},
    {"namespace_prefix": ("users", "bob"), "query": "solo tag", "limit": 10},
    {"namespace_prefix": (), "query": "install with pip", "limit": 4, "offset": 1},
]


async def continue_writing(api: Api, uri: str) -> None:
    """Write on the loaded fixture through our store and check every effect."""
    fixture = read_store_fixture(True)
    model = Model.of(fixture)
    recorded = {(r["prefix"], r["key"]): r for r in fixture.table("store")}
    untouched = {
        k: v
        for k, v in vectors_of(uri).items()
        if k not in {(".".join(w[1]), w[2]) for w in CONTINUE_WRITES}
    }
    for action, namespace, key, value, kwargs in CONTINUE_WRITES:
        if action == "put":
            await api("put", namespace, key, value, **kwargs)
            model.put(namespace, key, value, kwargs.get("index"))
        else:
            await api("delete", namespace, key)
            model.delete(namespace, key)
        await asyncio.sleep(0.002)  # distinct updated_at even on a coarse clock

    # The rows: values, timestamps, TTL columns, vectors.
    m1 = store_row(uri, ALICE_MEM, "m1")
    assert m1 is not None and m1["value"] == M1_NEW
    assert (
        iso(m1["created_at"]) == recorded[("users.alice.memories", "m1")]["created_at"]
    )
    assert m1["updated_at"] > m1["created_at"]
    assert m1["ttl_minutes"] is None and m1["expires_at"] is None
    m4 = store_row(uri, ALICE_MEM, "m4")
    assert m4 is not None
    # 0.5 minutes: whole minutes rounded up for the existing package, the
    # exact 30 s for us and in expires_at.
    assert (m4["ttl_minutes"], m4["ttl_seconds"]) == (1, 30.0)
    assert m4["ttl_span"] == timedelta(seconds=30)
    assert store_row(uri, BOB, "nulls") is None
    assert store_row(uri, ("docsx",), "z") is None
    stored = vectors_of(uri)
    for k, fields in model.vectors.items():
        assert stored.get(k) == fields, k
    assert stored.keys() == model.vectors.keys()
    assert stored[("users.alice.memories", "m1")].keys() == {"text", "tags[*]"}
    assert stored[("users.alice.memories", "m4")].keys() == {
        "text", "tags[*].0", "tags[*].1", "tags[*].2"
    }  # fmt: skip
    assert ("users.bob", "prefs") not in stored
    assert {k: stored[k] for k in untouched} == untouched

    # What the API returns.
    got = await api("get", ALICE_MEM, "m1")
    assert got.value == M1_NEW
    assert iso(got.created_at) == iso(m1["created_at"])
    assert (await api("get", ALICE_MEM, "m4")).value == M4
    assert (await api("get", BOB, "prefs")).value == PREFS_NEW
    assert await api("get", BOB, "nulls") is None
    for search in CONTINUE_SEARCHES:
        prefix, kwargs = search_args(search)
        found = [item_json(i) for i in await api("search", prefix, **kwargs)]
        check_page(found, model.search(prefix, **kwargs))
        for item in found:
            assert (
                item["value"]
                == model.values[(".".join(item["namespace"]), item["key"])]
            )
    expected = fixture.expected
    namespaces = [
        ns for ns in expected["list_namespaces"][0]["result"] if ns != ["docsx"]
    ]
    assert [list(ns) for ns in await api("list_namespaces")] == namespaces
    by_depth = await api("list_namespaces", max_depth=1)
    assert [list(ns) for ns in by_depth] == [["café"], ["docs"], ["scratch"], ["users"]]

    # Reads restart TTLs: a row the existing package wrote by its whole
    # ttl_minutes (it has no ttl_seconds), ours by its exact seconds.
    before = server_now(uri)
    assert (await api("get", BOB, "half")).key == "half"
    assert (await api("get", ALICE_MEM, "m4")).key == "m4"
    after = server_now(uri)
    half = store_row(uri, BOB, "half")
    assert half is not None and half["ttl_seconds"] is None
    span = timedelta(minutes=10000)
    assert before + span <= half["expires_at"] <= after + span
    m4 = store_row(uri, ALICE_MEM, "m4")
    assert m4 is not None
    assert before + timedelta(seconds=30) <= m4["expires_at"]
    assert m4["expires_at"] <= after + timedelta(seconds=30)

    # The bookkeeping of the existing package is still its own.
    assert versions(uri, "store_migrations") == [0, 1, 2, 3]
    assert versions(uri, "vector_migrations") == [0, 1, 2]


@pytest.mark.parametrize("kind", SYNC_STORE_KINDS)
def test_continue_writing_sync(databases: Databases, kind: str) -> None:
    fixture = read_store_fixture(True)
    uri = fresh_load(databases, fixture)
    with sync_store(
        kind, uri, **store_options(fixture, **fixture.expected["ttl"])
    ) as s:
        s.setup()
        asyncio.run(continue_writing(Api(s), uri))


@pytest.mark.parametrize("kind", ASYNC_STORE_KINDS)
async def test_continue_writing_async(databases: Databases, kind: str) -> None:
    fixture = read_store_fixture(True)
    uri = fresh_load(databases, fixture)
    options = store_options(fixture, **fixture.expected["ttl"])
    async with async_store(kind, uri, **options) as s:
        await s.setup()
        await continue_writing(Api(s), uri)


# --------------------------------------------------------------------------
# 3. Rollback: what our store writes, read the 3.x way and by 3.2.0 itself
# --------------------------------------------------------------------------

DANA = ("users", "dana", "memories")
NESTED = {"deep": {"list": [1, 2.5, None, {"x": "\u00e9"}]}, "flags": [True, False]}
#: (action, namespace, key, value, keyword arguments), each its own call:
#: fractional, whole and tiny TTLs, nested values, numbers JSON keeps
#: exactly, several fields embedded, an update that drops a tag (its vector
#: must go), index=False, a value whose text is null, and a deletion.
OUR_WRITES: list[tuple[str, tuple[str, ...], str, Any, dict[str, Any]]] = [
    (
        "put",
        DANA,
        "a",
        {
            "text": "Dana goes hiking in the Alps",
            "tags": ["hiking", "alps", "outdoors"],
            "kind": "note",
            "nested": NESTED,
            "big": 2**65,
            "tiny": 1e-9,
            "rank": 7,
        },
        {"ttl": 1.5},
    ),
    (
        "put",
        DANA,
        "b.c",
        {"text": "Her dog is called Pixel", "tags": ["dog"], "kind": "fact"},
        {"ttl": 10000.25},
    ),
    (
        "put",
        ("users", "dana"),
        "profile",
        {
            "text": "a profile that is never embedded",
            "name": "Dana",
            "unicode": "\u043a\u043b\u044e\u0447 \u4e2d \U0001f600",
            "empty": {},
            "list": [],
        },
        {"index": False, "ttl": 3},
    ),
    (
        "put",
        ("docs", "howto"),
        "setup.md",
        {
            "text": "How to set up the database",
            "tags": ["setup", "postgres"],
            "kind": "doc",
        },
        {},
    ),
    ("put", ("docs",), "old", {"text": "an old page", "kind": "doc"}, {}),
    ("put", ("scratch",), "blink", {"text": "gone in a blink"}, {"ttl": 0.01}),
    (
        "put",
        ("users", "erin"),
        "nulls",
        {"text": None, "tags": [None, "lonely tag"], "kind": "note"},
        {},
    ),
    (
        "put",
        DANA,
        "a",
        {
            "text": "Dana switched to rock climbing",
            "tags": ["climbing", "rock"],
            "kind": "note",
            "nested": NESTED,
            "big": 2**65,
            "tiny": 1e-9,
            "rank": 7,
        },
        {"ttl": 1.5},
    ),
    ("delete", ("docs",), "old", None, {}),
]
#: ttl (minutes) -> ttl_minutes as the existing package reads it: rounded up
#: (that package's own puts round to the nearest: 10000 and 0 for the two
#: that tell the difference).
TTL_MINUTES = {1.5: 2, 10000.25: 10001, 3: 3, 0.01: 1}

ROLLBACK_GETS = [
    [list(ns), key] for action, ns, key, *_ in OUR_WRITES if action == "put"
] + [[["users", "nobody"], "a"], [["users"], "dana"]]
ROLLBACK_SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": [], "limit": 100},
    {"namespace_prefix": ["users"], "limit": 100},
    {"namespace_prefix": ["users", "dana"], "limit": 2, "offset": 1},
    {"namespace_prefix": [], "filter": {"kind": "note"}, "limit": 100},
    {"namespace_prefix": [], "filter": {"tags": ["climbing", "rock"]}, "limit": 10},
    {"namespace_prefix": [], "filter": {"nested": {"$eq": NESTED}}, "limit": 10},
    {"namespace_prefix": [], "filter": {"rank": {"$eq": 7}}, "limit": 10},
]
#: Checked on our store only: the existing package cannot run it (its
#: filter goes through orjson, which raises TypeError on integers beyond 64
#: bits), a defect of its filters, not of what the rows mean.
OUR_ONLY_SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": [], "filter": {"big": 2**65}, "limit": 10},
]
ROLLBACK_SEMANTIC: list[dict[str, Any]] = [
    {"namespace_prefix": [], "query": "rock climbing", "limit": 3},
    {"namespace_prefix": [], "query": "a dog called Pixel", "limit": 2},
    {"namespace_prefix": ["docs"], "query": "database setup", "limit": 5},
    {"namespace_prefix": ["users"], "query": "lonely tag", "limit": 3},
    {"namespace_prefix": [], "query": "hiking outdoors", "limit": 4, "offset": 1},
    {"namespace_prefix": [], "query": "alps", "filter": {"kind": "note"}, "limit": 5},
]
ROLLBACK_LISTS: list[dict[str, Any]] = [
    {},
    {"max_depth": 1},
    {"prefix": ["users"]},
    {"suffix": ["memories"]},
    {"prefix": ["users", "*"], "max_depth": 2, "limit": 2, "offset": 1},
]
NO_REFRESH = {"refresh_on_read": False}
OMIT = {"refresh_on_read": False, "omit_expired": True}


def rollback_reads(indexed: bool) -> list[dict[str, Any]]:
    """The read sets compared with the existing package: everything without
    TTL effects, then with ``omit_expired`` (``blink`` has expired)."""
    searches = ROLLBACK_SEARCHES + (ROLLBACK_SEMANTIC if indexed else [])
    return [
        {
            "ttl": NO_REFRESH,
            "gets": ROLLBACK_GETS,
            "searches": searches,
            "lists": ROLLBACK_LISTS,
        },
        {
            "ttl": OMIT,
            "gets": ROLLBACK_GETS,
            "searches": [ROLLBACK_SEARCHES[0], *ROLLBACK_SEMANTIC[:1]][
                : 2 if indexed else 1
            ],
            "lists": ROLLBACK_LISTS[:2],
        },
    ]


def write_ours(uri: str, indexed: bool) -> Model:
    """A database set up by our store, holding OUR_WRITES; ``blink`` expired."""
    model = Model()
    options: dict[str, Any] = {"index": index_config()} if indexed else {}
    with PostgresStore.from_conn_string(uri, ttl=NO_REFRESH, **options) as store:
        store.setup()
        for action, namespace, key, value, kwargs in OUR_WRITES:
            if action == "put":
                store.put(namespace, key, value, **kwargs)
                model.put(namespace, key, value, kwargs.get("index"))
            else:
                store.delete(namespace, key)
                model.delete(namespace, key)
            time.sleep(0.002)
    time.sleep(1.0)  # blink's TTL, 0.6 s, runs out
    return model


def check_rows_keep_3x_meaning(uri: str, indexed: bool, model: Model) -> None:
    """Read the rows the way the 3.x layout defines them."""
    puts = {
        (".".join(ns), key): (value, kwargs)
        for action, ns, key, value, kwargs in OUR_WRITES
        if action == "put"
    }
    assert versions(uri, "store_migrations") == [0, 1, 2, 3]
    assert versions(uri, "vector_migrations") == ([0, 1, 2] if indexed else None)
    assert versions(uri, "store_ext_migrations") == [0]
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT prefix, key, value, jsonb_typeof(value -> 'big'), created_at,"
            " updated_at, expires_at, ttl_minutes FROM store"
        ).fetchall()
    assert {(r[0], r[1]) for r in rows} == set(model.values)
    assert ("docs", "old") not in model.values
    for prefix, key, value, big_type, created, updated, expires, minutes in rows:
        # The namespace is its labels joined by dots; the value the jsonb
        # of the dict put last, numbers and all.
        value_put, kwargs = puts[(prefix, key)]
        assert value == value_put == model.values[(prefix, key)]
        if "big" in value:
            assert big_type == "number" and value["big"] == 2**65
        ttl = kwargs.get("ttl")
        if ttl is None:
            assert (expires, minutes) == (None, None)
        else:
            # Whole minutes rounded up (3.x refreshes by them: never
            # shorter than asked); expires_at exact.
            assert minutes == TTL_MINUTES[ttl] == math.ceil(ttl)
            assert expires - updated == timedelta(seconds=ttl * 60)
        if key == "a":  # updated: created_at is the first put's
            assert created < updated
        else:
            assert created == updated
    if not indexed:
        return
    stored = vectors_of(uri)
    # Fields named as the existing package names them, each the embedding
    # of the text now at that path; none for index=False, the deleted item
    # or the dropped third tag.
    assert stored == model.vectors
    assert stored[("users.dana.memories", "a")].keys() == {
        "text", "tags[*].0", "tags[*].1"
    }  # fmt: skip
    assert stored[("users.erin", "nulls")].keys() == {"tags[*]"}
    assert ("users.dana", "profile") not in stored
    for (prefix, key), fields in stored.items():
        texts = field_texts(puts[(prefix, key)][0])
        assert fields == {name: embed_text(t) for name, t in texts.items()}


@pytest.mark.parametrize("indexed", BOTH)
def test_our_rows_keep_3x_meaning(databases: Databases, indexed: bool) -> None:
    uri = databases.create(migrated=False)
    if indexed:
        require_pgvector(uri)
    model = write_ours(uri, indexed)
    check_rows_keep_3x_meaning(uri, indexed, model)
    # And our store reads them as the model says.
    options: dict[str, Any] = {"index": index_config()} if indexed else {}
    with PostgresStore.from_conn_string(uri, ttl=NO_REFRESH, **options) as store:
        searches = ROLLBACK_SEARCHES + OUR_ONLY_SEARCHES
        for search in searches + (ROLLBACK_SEMANTIC if indexed else []):
            prefix, kwargs = search_args(search)
            found = [item_json(i) for i in store.search(prefix, **kwargs)]
            check_page(found, model.search(prefix, **kwargs))


def run_upstream(
    uri: str, indexed: bool, reads: list[dict[str, Any]], cwd: Path
) -> list[dict[str, Any]]:
    """Run the existing package's setup() and ``reads`` on ``uri``."""
    request = {
        "uri": uri,
        "index": index_json() if indexed else None,
        "setup": True,
        "reads": reads,
    }
    # -I: neither the script's folder nor the current one (nor PYTHONPATH)
    # goes on sys.path, so the installed package is the one imported.
    done = subprocess.run(
        [upstream_python(), "-I", str(READER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["version"] == "3.2.0"
    # Not our source tree (a virtualenv may sit inside the repository).
    ours = Path(__file__).resolve().parents[1] / "langgraph"
    assert ours not in Path(answer["module"]).parents
    return answer["reads"]


def ours(uri: str, indexed: bool, reads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same reads through our store (a sync one: the kinds are covered
    elsewhere; here the question is what the rows mean)."""
    results = []
    for read_set in reads:
        options: dict[str, Any] = {"index": index_config()} if indexed else {}
        with PostgresStore.from_conn_string(uri, ttl=read_set["ttl"], **options) as s:
            observed = observe(
                Api(s), read_set["gets"], read_set["searches"], read_set["lists"]
            )
            results.append(asyncio.run(observed))
    return results


def check_same_reads(upstream: list[dict[str, Any]], our: list[dict[str, Any]]) -> None:
    """The existing package returns what ours returns, item for item; scores
    within 1e-4 (both compute them in the database)."""
    assert len(upstream) == len(our)
    for theirs, mine in zip(upstream, our):
        assert theirs["gets"] == mine["gets"]
        assert theirs["lists"] == mine["lists"]
        assert len(theirs["searches"]) == len(mine["searches"])
        for a, b in zip(theirs["searches"], mine["searches"]):
            strip = [{k: v for k, v in item.items() if k != "score"} for item in a]
            assert strip == [{k: v for k, v in i.items() if k != "score"} for i in b]
            for x, y in zip(a, b):
                if y["score"] is None:
                    assert x["score"] is None
                else:
                    assert x["score"] == pytest.approx(y["score"], abs=SCORE_TOLERANCE)


@pytest.mark.parametrize("indexed", BOTH)
def test_existing_package_reads_our_rows(
    databases: Databases, tmp_path: Path, indexed: bool
) -> None:
    """Rolling back: 3.2.0 itself opens a database our store set up and
    wrote, finds its migrations applied, and reads what ours reads."""
    upstream_python()  # skips (or fails) before any work
    uri = databases.create(migrated=False)
    if indexed:
        require_pgvector(uri)
    model = write_ours(uri, indexed)
    reads = rollback_reads(indexed)
    mine = ours(uri, indexed, reads)
    schema, rows = dump_schema(uri), dump_rows(uri)
    theirs = run_upstream(uri, indexed, reads, tmp_path)
    # Its setup() found every migration applied (and the reads restart no
    # TTL): nothing changed.
    assert dump_schema(uri) == schema
    assert dump_rows(uri) == rows
    check_same_reads(theirs, mine)
    # The reads meant something: the model agrees with both, and with
    # omit_expired the expired item (only it) is gone.
    keys = [(".".join(ns), key) for ns, key in ROLLBACK_GETS]
    values = [model.values.get(k) for k in keys]
    assert [g and g["value"] for g in mine[0]["gets"]] == values
    blink = ("scratch", "blink")
    values[keys.index(blink)] = None
    assert [g and g["value"] for g in mine[1]["gets"]] == values
    assert ["scratch"] in mine[0]["lists"][1]
    assert ["scratch"] not in mine[1]["lists"][1]


def test_existing_package_reads_the_continued_fixture(
    databases: Databases, tmp_path: Path
) -> None:
    """The fixture database after our setup() and our writes: 3.2.0 reads
    every recorded read as ours does (stale vectors included, where our
    writes left any: none are left on the items we rewrote)."""
    upstream_python()  # skips (or fails) before any work
    fixture = read_store_fixture(True)
    uri = fresh_load(databases, fixture)
    options = store_options(fixture, **NO_REFRESH)
    with sync_store("conn", uri, **options) as store:
        store.setup()
        model = Model.of(fixture)
        for action, namespace, key, value, kwargs in CONTINUE_WRITES:
            if action == "put":
                store.put(namespace, key, value, **kwargs)
                model.put(namespace, key, value, kwargs.get("index"))
            else:
                store.delete(namespace, key)
                model.delete(namespace, key)
            time.sleep(0.002)
    expected = fixture.expected
    reads = [
        {
            "ttl": ttl,
            "gets": [[g["namespace"], g["key"]] for g in source["gets"]],
            "searches": [
                {
                    k: v
                    for k, v in s.items()
                    if k not in ("result", "depends_on_stale_vectors")
                }
                for s in source["searches"]
            ],
            "lists": [
                {k: v for k, v in entry.items() if k != "result"}
                for entry in source["list_namespaces"]
            ],
        }
        for ttl, source in ((NO_REFRESH, expected), (OMIT, expected["omit_expired"]))
    ]
    mine = ours(uri, True, reads)
    schema, rows = dump_schema(uri), dump_rows(uri)
    theirs = run_upstream(uri, True, reads, tmp_path)
    assert dump_schema(uri) == schema
    assert dump_rows(uri) == rows
    check_same_reads(theirs, mine)
    # The searches that the stale m1 vectors swayed no longer see them.
    for search, found in zip(reads[0]["searches"], mine[0]["searches"]):
        prefix, kwargs = search_args(search)
        check_page(found, model.search(prefix, **kwargs))
