"""The store's database layout, migration by migration.

Three histories, each with its table of applied versions:

* ``store_migrations`` (0-3) and ``vector_migrations`` (0-2) reproduce the
  layout of ``langgraph-checkpoint-postgres`` 3.2.0, version for version, so
  a database it set up is recognised as ours and it still reads ours. We
  never add rows there: that package applies "every migration after the
  highest recorded version", so a row of ours would make it skip its own
  next migration.
* ``store_ext_migrations`` records our own, additive changes.

``MIGRATIONS`` and ``VECTOR_MIGRATIONS`` keep the names and shapes the
existing package exports (the vector ones take ``%(dims)s`` and the like).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from langgraph.checkpoint.postgres._pg.migrations import Migrations, OnlineBuild
from langgraph.store.postgres._config import VectorIndex
from langgraph.store.postgres._sql import render

#: Key of the advisory lock that serialises the store's ``setup()`` across
#: processes ("lgst" in ASCII; the saver's is "lgcp").
STORE_SETUP_LOCK_KEY = 0x6C677374

STORE_TEMPLATES: list[str] = [
    # 0
    """CREATE TABLE IF NOT EXISTS $store (
    prefix text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (prefix, key)
)""",
    # 1: searches by namespace prefix (LIKE 'a.b.%')
    "CREATE INDEX IF NOT EXISTS store_prefix_idx "
    "ON $store USING btree (prefix text_pattern_ops)",
    # 2
    "ALTER TABLE $store ADD COLUMN IF NOT EXISTS expires_at timestamp with time "
    "zone, ADD COLUMN IF NOT EXISTS ttl_minutes integer",
    # 3: the sweeper finds expired items without a scan
    "CREATE INDEX IF NOT EXISTS idx_store_expires_at ON $store (expires_at) "
    "WHERE expires_at IS NOT NULL",
]

STORE_ONLINE_BUILDS = {
    1: OnlineBuild(
        "$store",
        "$store_prefix_idx",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS store_prefix_idx "
        "ON $store USING btree (prefix text_pattern_ops)",
    ),
    3: OnlineBuild(
        "$store",
        "$idx_store_expires_at",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_store_expires_at "
        "ON $store (expires_at) WHERE expires_at IS NOT NULL",
    ),
}

#: Ours, additive, recorded in ``store_ext_migrations``.
EXT_TEMPLATES: list[str] = [
    # 0: TTLs to the second (``ttl_minutes`` is an integer, so a TTL of half
    # a minute would be stored as 0). A nullable column without a default:
    # adding it does not rewrite the table.
    "ALTER TABLE $store ADD COLUMN IF NOT EXISTS ttl_seconds double precision",
]

#: Creates the extension only when missing: CREATE EXTENSION IF NOT EXISTS
#: needs privileges even when the extension is there.
CREATE_PGVECTOR = """DO $$$$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        CREATE EXTENSION vector;
    END IF;
END $$$$"""

CREATE_VECTORS_TABLE = """CREATE TABLE IF NOT EXISTS $store_vectors (
    prefix text NOT NULL,
    key text NOT NULL,
    field_name text NOT NULL,
    embedding {vector_type}({dims}),
    created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (prefix, key, field_name),
    FOREIGN KEY (prefix, key) REFERENCES $store (prefix, key) ON DELETE CASCADE
)"""

CREATE_ANN_INDEX = (
    "CREATE INDEX {concurrently}IF NOT EXISTS store_vectors_embedding_idx "
    "ON $store_vectors USING {kind} (embedding {operator_class}){options}"
)

#: The last version of ``vector_migrations`` (the ANN index), recorded only
#: when an index was built: a flat store leaves it for a later store with
#: an index to build.
LAST_VECTOR_VERSION = 2

STORE_MIGRATIONS = Migrations(
    templates=STORE_TEMPLATES,
    versions_table="store_migrations",
    render=render,
    lock_key=STORE_SETUP_LOCK_KEY,
    online_builds=STORE_ONLINE_BUILDS,
)

EXT_MIGRATIONS = Migrations(
    templates=EXT_TEMPLATES,
    versions_table="store_ext_migrations",
    render=render,
    lock_key=STORE_SETUP_LOCK_KEY,
)


def vector_migrations(index: VectorIndex, *, ann_index: bool = True) -> Migrations:
    """The vector layout for ``index``: its dimensions, storage type and ANN
    index (none for ``kind="flat"``, or without ``ann_index``: an IVFFlat
    index waits for data, see :func:`ivfflat_ready`)."""
    ann = {
        "kind": index.kind,
        "operator_class": index.operator_class,
        "options": index.index_options,
    }
    templates = [
        CREATE_PGVECTOR,
        CREATE_VECTORS_TABLE.format(vector_type=index.vector_type, dims=index.dims),
    ]
    online: dict[int, OnlineBuild] = {}
    if index.kind != "flat" and ann_index:
        templates.append(CREATE_ANN_INDEX.format(concurrently="", **ann))
        online[2] = OnlineBuild(
            "$store_vectors",
            "$store_vectors_embedding_idx",
            CREATE_ANN_INDEX.format(concurrently="CONCURRENTLY ", **ann),
        )
    return Migrations(
        templates=templates,
        versions_table="vector_migrations",
        render=render,
        lock_key=STORE_SETUP_LOCK_KEY,
        online_builds=online,
        newest_known=LAST_VECTOR_VERSION,
    )


#: IVFFlat clusters the vectors present when the index is built; built on an
#: empty table (as setup() at a first start would), its lists are arbitrary
#: and stay so, and searches miss near vectors. So setup() builds it once the
#: table holds this many vectors per list; until then searches are exact
#: (a scan of so few vectors is fast).
IVFFLAT_VECTORS_PER_LIST = 10

#: Whether ``store_vectors`` holds at least ``%(enough)s`` vectors.
IVFFLAT_READY_SQL = (
    "SELECT count(*) >= %(enough)s FROM (SELECT 1 FROM $store_vectors "
    "LIMIT %(enough)s) AS sample"
)


# -- the names langgraph-checkpoint-postgres exports ---------------------------


class Migration(NamedTuple):
    """A migration of the existing package's shape: SQL with ``%(name)s``
    slots, the functions of the store that fill them, and a condition."""

    sql: str
    params: dict[str, Any] | None = None
    condition: Callable[[Any], bool] | None = None


#: The store migrations as they run in the default schema.
MIGRATIONS: Sequence[str] = [render(t, None) for t in STORE_TEMPLATES]


def _index(store: Any) -> VectorIndex:
    return VectorIndex.from_config(store.index_config)


#: The vector migrations in the existing package's form.
VECTOR_MIGRATIONS: Sequence[Migration] = [
    Migration(render(CREATE_PGVECTOR, None)),
    Migration(
        render(CREATE_VECTORS_TABLE, None).format(
            vector_type="%(vector_type)s", dims="%(dims)s"
        ),
        params={
            "dims": lambda store: _index(store).dims,
            "vector_type": lambda store: _index(store).vector_type,
        },
    ),
    Migration(
        render(CREATE_ANN_INDEX, None).format(
            concurrently="CONCURRENTLY ",
            kind="%(index_type)s",
            operator_class="%(ops)s",
            options="%(index_params)s",
        ),
        params={
            "index_type": lambda store: _index(store).kind,
            "ops": lambda store: _index(store).operator_class,
            "index_params": lambda store: _index(store).index_options,
        },
        condition=lambda store: bool(
            store.index_config and _index(store).kind != "flat"
        ),
    ),
]
