"""Every SQL statement of the store, by name, as schema templates.

Statements name the store's objects as placeholders (``$store``,
``$store_vectors``, ...) that :data:`render` fills in for a schema. A few
statements have slots in braces (``{where}``, ``{op}``): the builders in
:mod:`._core` fill them with fragments of this module and of
:mod:`._filters`, never with caller input, which always travels as
parameters.

Arrays of text (``prefixes``, ``keys``, ``values``, ...) are sent in binary
(``%(name)b``): in text format psycopg escapes every element with a regular
expression, about 17 µs of client CPU for one item's JSON, and the server
parses the escapes back.
"""

from __future__ import annotations

from langgraph.checkpoint.postgres._pg.schema import renderer

#: The store's objects: the tables and indexes of ``langgraph-checkpoint-postgres``
#: 3.2.0, and the table recording our own migrations.
_OBJECT_NAMES = (
    "store",
    "store_vectors",
    "store_migrations",
    "vector_migrations",
    "store_ext_migrations",
    "store_prefix_idx",
    "idx_store_expires_at",
    "store_vectors_embedding_idx",
)

render = renderer(_OBJECT_NAMES)

# -- fragments ---------------------------------------------------------------

#: An item that has not expired (or has no TTL).
LIVE = "(s.expires_at IS NULL OR s.expires_at > now())"

#: The length of an item's TTL. ``ttl_minutes`` (an integer, as the existing
#: package keeps it) is rounded up from ``ttl_seconds`` (ours, exact); a row
#: whose two disagree was last written by the existing package, whose whole
#: minutes then win.
TTL_INTERVAL = (
    "make_interval(secs => CASE WHEN s.ttl_seconds IS NOT NULL "
    "AND ceil(s.ttl_seconds / 60) = s.ttl_minutes THEN s.ttl_seconds "
    "ELSE s.ttl_minutes * 60.0 END)"
)

#: The items of a namespace and of the namespaces below it. The prefix of
#: the ``LIKE`` pattern has its wildcards escaped by the caller.
IN_NAMESPACE = "(s.prefix = %(ns)s OR s.prefix LIKE %(ns_below)s)"

#: A namespace as an array of labels, compared as Python compares strings.
LABELS = "string_to_array(s.prefix COLLATE \"C\", '.')"

# -- reads -------------------------------------------------------------------

GET_SQL = """
SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at
FROM $store s
JOIN unnest(%(prefixes)b::text[], %(keys)b::text[]) AS w(prefix, key)
    ON s.prefix = w.prefix AND s.key = w.key
WHERE {live}
"""

#: Gets that also restart the TTL of the items asked for with ``refresh``.
GET_REFRESHING_SQL = f"""
WITH wanted AS (
    SELECT * FROM unnest(%(prefixes)b::text[], %(keys)b::text[], %(refresh)s::bool[])
        AS w(prefix, key, refresh)
), refreshed AS (
    UPDATE $store s SET expires_at = now() + {TTL_INTERVAL}
    FROM wanted w
    WHERE s.prefix = w.prefix AND s.key = w.key AND w.refresh
        AND s.ttl_minutes IS NOT NULL AND {{live}}
)
SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at
FROM $store s
JOIN wanted w ON s.prefix = w.prefix AND s.key = w.key
WHERE {{live}}
"""

#: Newest first, as the existing package orders a search without a query;
#: then by namespace and key, so that equal times page deterministically.
SEARCH_SQL = """
SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at, NULL::float8 AS score
FROM $store s
WHERE {where}
ORDER BY s.updated_at DESC, s.prefix, s.key
LIMIT %(limit)s OFFSET %(offset)s
"""
SEARCH_ORDER = "updated_at DESC, prefix, key"

#: A semantic search. ``candidates`` takes the nearest vectors (``{nearest}``
#: is :data:`NEAREST`: through the ANN index when there is one), or every
#: vector that passes the filters (``{nearest}`` empty: an exact search, which
#: no index serves); ``best`` keeps each item's nearest vector, and the page
#: is cut from those. The count of candidates tells the caller whether the
#: cap may have cut matches short (then it searches again, exactly).
SEMANTIC_SEARCH_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT sv.prefix, sv.key, sv.embedding {op} %(query)s::{vector_type} AS distance
    FROM $store_vectors sv
    JOIN $store s ON s.prefix = sv.prefix AND s.key = sv.key
    WHERE {where}
    {nearest}
), best AS (
    SELECT DISTINCT ON (prefix, key) prefix, key, distance
    FROM candidates
    ORDER BY prefix, key, distance
)
SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at, {score} AS score,
    (SELECT count(*) FROM candidates) AS candidates
FROM best b
JOIN $store s ON s.prefix = b.prefix AND s.key = b.key
ORDER BY b.distance, s.prefix, s.key
LIMIT %(limit)s OFFSET %(offset)s
"""
SEMANTIC_ORDER = "score DESC, prefix, key"

#: The nearest vectors first, a capped number of them: the bare distance
#: operator, ascending, with a ``LIMIT``, the shape pgvector's index scans
#: serve.
NEAREST = "ORDER BY sv.embedding {op} %(query)s::{vector_type} LIMIT %(candidates)s"

#: The similarity users see, from pgvector's distance (smaller is closer):
#: cosine similarity, negative euclidean distance, and the inner product
#: (pgvector's ``<#>`` is its negative).
SCORES = {
    "cosine": "1 - b.distance",
    "l2": "-b.distance",
    "inner_product": "-b.distance",
}

#: A search (either kind) that also restarts the TTL of the items it found.
SEARCH_REFRESHING_SQL = f"""
WITH found AS ({{search}}), refreshed AS (
    UPDATE $store s SET expires_at = now() + {TTL_INTERVAL}
    FROM found f
    WHERE s.prefix = f.prefix AND s.key = f.key AND s.ttl_minutes IS NOT NULL
)
SELECT * FROM found ORDER BY {{order}}
"""

#: The search settings of an ANN index, for the current transaction: how
#: many candidates an HNSW scan keeps, how many IVFFlat lists it probes, and
#: (pgvector 0.8 and later) that an HNSW scan whose candidates the filters
#: rejected goes on scanning instead of returning too few.
HNSW_SETTINGS_SQL = "SELECT set_config('hnsw.ef_search', %(ef_search)s, true)"
IVFFLAT_SETTINGS_SQL = "SELECT set_config('ivfflat.probes', %(probes)s, true)"
HNSW_ITERATIVE_SQL = "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"
PGVECTOR_VERSION_SQL = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"

#: The distinct namespaces, each once: a skip scan over the primary key
#: (one index probe per namespace, not a read of every item), then cut to
#: ``max_depth`` labels, filtered, sorted as tuples of labels and paged.
LIST_NAMESPACES_SQL = """
WITH RECURSIVE prefixes(prefix) AS (
    (SELECT prefix FROM $store ORDER BY prefix LIMIT 1)
    UNION ALL
    SELECT (SELECT s.prefix FROM $store s WHERE s.prefix > p.prefix
            ORDER BY s.prefix LIMIT 1)
    FROM prefixes p WHERE p.prefix IS NOT NULL
)
SELECT DISTINCT {labels} AS namespace
FROM prefixes s
WHERE s.prefix IS NOT NULL AND {where}
ORDER BY namespace
LIMIT %(limit)s OFFSET %(offset)s
"""

#: The same, reading every item, when expired items must be left out.
LIST_LIVE_NAMESPACES_SQL = """
SELECT DISTINCT {labels} AS namespace
FROM $store s
WHERE {where}
ORDER BY namespace
LIMIT %(limit)s OFFSET %(offset)s
"""

# -- writes ------------------------------------------------------------------

DELETE_ITEMS_SQL = """
DELETE FROM $store s
USING unnest(%(prefixes)b::text[], %(keys)b::text[]) AS d(prefix, key)
WHERE s.prefix = d.prefix AND s.key = d.key
"""

#: What an upsert of items writes, and over an item already there (which
#: keeps its created_at).
_INSERT_ITEMS = """
INSERT INTO $store AS s (prefix, key, value, created_at, updated_at, expires_at,
    ttl_minutes, ttl_seconds)
"""
_REPLACE_ITEMS = """
ON CONFLICT (prefix, key) DO UPDATE SET
    value = EXCLUDED.value,
    updated_at = now(),
    expires_at = EXCLUDED.expires_at,
    ttl_minutes = EXCLUDED.ttl_minutes,
    ttl_seconds = EXCLUDED.ttl_seconds
"""

#: Insert or replace items. ``ttls`` are minutes (NULL: no expiry).
UPSERT_ITEMS_SQL = (
    _INSERT_ITEMS
    + """SELECT u.prefix, u.key, u.value::jsonb, now(), now(),
    now() + make_interval(secs => u.ttl * 60), ceil(u.ttl)::integer, u.ttl * 60
FROM unnest(%(prefixes)b::text[], %(keys)b::text[], %(values)b::text[],
    %(ttls)s::float8[]) AS u(prefix, key, value, ttl)"""
    + _REPLACE_ITEMS
)

#: Insert or replace one item: a put's usual batch. A one-row ``VALUES``
#: costs the server less than reading arrays; ``{expiry}`` is
#: :data:`EXPIRES` or :data:`NEVER_EXPIRES`.
UPSERT_ITEM_SQL = (
    _INSERT_ITEMS
    + "VALUES (%(prefix)s, %(key)s, %(value)s::jsonb, now(), now(), {expiry})"
    + _REPLACE_ITEMS
)
EXPIRES = "now() + make_interval(secs => %(seconds)s), %(minutes)s, %(seconds)s"
NEVER_EXPIRES = "NULL, NULL, NULL"

#: Forget the vectors of items being rewritten: their new vectors (if any)
#: follow, so no field the item no longer has can still be found.
DELETE_VECTORS_SQL = """
DELETE FROM $store_vectors sv
USING unnest(%(prefixes)b::text[], %(keys)b::text[]) AS d(prefix, key)
WHERE sv.prefix = d.prefix AND sv.key = d.key
"""

INSERT_VECTORS_SQL = """
INSERT INTO $store_vectors (prefix, key, field_name, embedding)
SELECT v.prefix, v.key, v.field_name, v.embedding::{vector_type}
FROM unnest(%(prefixes)b::text[], %(keys)b::text[], %(fields)b::text[],
    %(embeddings)b::text[]) AS v(prefix, key, field_name, embedding)
ON CONFLICT (prefix, key, field_name) DO UPDATE SET
    embedding = EXCLUDED.embedding,
    updated_at = now()
"""

#: Delete up to ``limit`` expired items, skipping any a transaction holds
#: (another sweeper, or a write about to refresh it).
SWEEP_SQL = """
DELETE FROM $store s
WHERE (s.prefix, s.key) IN (
    SELECT e.prefix, e.key FROM $store e
    WHERE e.expires_at < now()
    ORDER BY e.expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""

#: The declared type of ``store_vectors.embedding`` (``vector(1536)``).
EMBEDDING_TYPE_SQL = """
SELECT format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = 'embedding'
    AND NOT a.attisdropped
"""
