"""What ``stats`` reads, and how: the queries, the sampling and estimation
rules, and :func:`collect`, which runs them into ``stats``' ``--json`` document.

Fast on a million checkpoints: sizes come from the catalog, row counts are
exact only for small tables (else the planner's estimate), thread and
namespace counts walk the primary key (one index probe per namespace), and
checkpoints per day are estimated from a bounded sample of pages
(``TABLESAMPLE SYSTEM``) once a table is larger than :data:`SAMPLE_PAGES`;
the biggest threads are chosen from such a sample and then summed exactly.
Orphans need every row, so on large tables they are counted only with
``--orphans``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from langgraph.checkpoint.postgres._migrations import SAVER_MIGRATIONS
from langgraph.checkpoint.postgres.cli._app import Env
from langgraph.checkpoint.postgres.cli._sizes import row_bytes
from langgraph.store.postgres._migrations import (
    EXT_MIGRATIONS,
    LAST_VECTOR_VERSION,
    STORE_MIGRATIONS,
)

SAVER_TABLES = (
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
)
STORE_TABLES = (
    "store",
    "store_vectors",
    "store_migrations",
    "vector_migrations",
    "store_ext_migrations",
)
#: Version tables: (table, part, latest version this package knows, the
#: version from which a database is complete). A store without an ANN index
#: (flat, or IVFFlat waiting for data) leaves the last vector version out.
MIGRATION_HISTORIES = (
    ("checkpoint_migrations", "saver", SAVER_MIGRATIONS.latest, None),
    ("store_migrations", "store", STORE_MIGRATIONS.latest, None),
    ("store_ext_migrations", "store", EXT_MIGRATIONS.latest, None),
    ("vector_migrations", "store", LAST_VECTOR_VERSION, LAST_VECTOR_VERSION - 1),
)
#: Tables of at most this many pages (8 MB) are counted with count(*); larger
#: ones get the planner's estimate, which costs nothing.
EXACT_COUNT_PAGES = 1024
#: Pages of a table that the sampled figures read at most (16 MB): a table
#: this small is read whole, so its figures are exact.
SAMPLE_PAGES = 2000
#: Namespaces the thread count walks at most (about 20 ms per thousand).
NAMESPACE_WALK_CAP = 20_000
PAGE_BYTES = 8192

# One row per table name, present or not; sizes of the main fork and the rest.
TABLES_SQL = """
SELECT t.name, c.oid::int8 AS oid,
    pg_relation_size(c.oid) AS main_bytes,
    pg_table_size(c.oid) AS table_bytes,
    pg_indexes_size(c.oid) AS index_bytes,
    pg_total_relation_size(c.oid) AS total_bytes,
    c.reltuples, c.relpages, s.n_live_tup
FROM unnest(%(names)s::text[]) WITH ORDINALITY AS t(name, ord)
LEFT JOIN pg_class c ON c.oid = to_regclass(
    CASE WHEN %(schema)s::text IS NULL THEN quote_ident(t.name)
    ELSE quote_ident(%(schema)s::text) || '.' || quote_ident(t.name) END)
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
ORDER BY t.ord
"""
INDEXES_SQL = """
SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS "table",
    pg_relation_size(i.indexrelid) AS bytes, i.indisvalid AS valid
FROM pg_index i
WHERE i.indrelid = ANY(%(oids)s::oid[])
ORDER BY 2, 1
"""
COUNT_SQL = sql.SQL("SELECT count(*) AS n FROM {table}")
MAX_VERSION_SQL = sql.SQL("SELECT max(v) AS v FROM {table}")
# A loose index scan of the primary key: one probe per (thread, namespace).
NAMESPACES_SQL = sql.SQL("""
WITH RECURSIVE ns AS (
    (SELECT thread_id, checkpoint_ns FROM {checkpoints}
     ORDER BY thread_id, checkpoint_ns LIMIT 1)
    UNION ALL
    SELECT n.thread_id, n.checkpoint_ns
    FROM ns CROSS JOIN LATERAL (
        SELECT c.thread_id, c.checkpoint_ns FROM {checkpoints} c
        WHERE (c.thread_id, c.checkpoint_ns) > (ns.thread_id, ns.checkpoint_ns)
        ORDER BY c.thread_id, c.checkpoint_ns LIMIT 1
    ) n
)
SELECT count(DISTINCT thread_id) AS threads,
    count(*) FILTER (WHERE checkpoint_ns <> '') AS subgraph_namespaces,
    count(*) AS walked
FROM (SELECT * FROM ns LIMIT %(cap)s) s
""")
# What the planner believes, for when the walk stops at its cap.
DISTINCT_THREADS_SQL = """
SELECT CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.reltuples
    ELSE s.n_distinct END::int8 AS threads
FROM pg_stats s JOIN pg_class c ON c.oid = %(oid)s::oid
WHERE s.schemaname = (SELECT relnamespace::regnamespace::text FROM pg_class
                      WHERE oid = %(oid)s::oid)
    AND s.tablename = (SELECT relname FROM pg_class WHERE oid = %(oid)s::oid)
    AND s.attname = 'thread_id'
"""
# Bytes are those of _sizes.row_bytes. CANDIDATES_SQL ranks threads by the
# bytes of a sample of pages (all pages of a small table); THREAD_SIZES_SQL
# then sums the candidates' rows exactly, through the primary keys.
_CHECKPOINT_BYTES = f"({row_bytes('checkpoints')})"
_BLOB_BYTES = f"({row_bytes('blobs')})"
_WRITE_BYTES = f"({row_bytes('writes')})"
CANDIDATES_SQL = sql.SQL(f"""
SELECT thread_id
FROM (
    SELECT thread_id, {_CHECKPOINT_BYTES} * %(c_scale)s AS bytes
    FROM {{checkpoints}} TABLESAMPLE SYSTEM (%(c_pct)s) REPEATABLE (0)
    UNION ALL
    SELECT thread_id, {_BLOB_BYTES} * %(b_scale)s
    FROM {{blobs}} TABLESAMPLE SYSTEM (%(b_pct)s) REPEATABLE (0)
    UNION ALL
    SELECT thread_id, {_WRITE_BYTES} * %(w_scale)s
    FROM {{writes}} TABLESAMPLE SYSTEM (%(w_pct)s) REPEATABLE (0)
) x
GROUP BY thread_id
ORDER BY sum(bytes) DESC, thread_id
LIMIT %(limit)s
""")
THREAD_SIZES_SQL = sql.SQL(f"""
SELECT thread_id, sum(bytes)::int8 AS bytes, sum(checkpoints)::int8 AS checkpoints
FROM (
    SELECT thread_id, {_CHECKPOINT_BYTES} AS bytes, 1 AS checkpoints
    FROM {{checkpoints}} WHERE thread_id = ANY(%(ids)s)
    UNION ALL
    SELECT thread_id, {_BLOB_BYTES}, 0
    FROM {{blobs}} WHERE thread_id = ANY(%(ids)s)
    UNION ALL
    SELECT thread_id, {_WRITE_BYTES}, 0
    FROM {{writes}} WHERE thread_id = ANY(%(ids)s)
) x
GROUP BY thread_id
ORDER BY bytes DESC, thread_id
LIMIT %(top)s
""")
#: Threads the sample proposes per thread listed: their exact sizes decide.
CANDIDATES_PER_THREAD = 3
# The day (UTC) is the date LangGraph wrote into the checkpoint's "ts"; rows
# whose ts is not an ISO date are left out rather than failing the cast.
PER_DAY_SQL = sql.SQL("""
SELECT day, round(count(*) * %(scale)s)::int8 AS checkpoints
FROM (
    SELECT left(checkpoint ->> 'ts', 10) AS day
    FROM {checkpoints} TABLESAMPLE SYSTEM (%(pct)s) REPEATABLE (0)
) x
WHERE day ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' AND day >= %(since)s
GROUP BY day
""")
# Blobs that no checkpoint of their namespace lists in channel_versions: the
# referenced versions are built once, as rows, and each blob is one hashed
# lookup (see the retention sweep's `referenced`).
ORPHAN_BLOBS_SQL = sql.SQL("""
SELECT count(*) AS n, coalesce(sum(pg_column_size(b.blob)), 0)::int8 AS bytes
FROM {blobs} b
WHERE NOT EXISTS (
    SELECT 1
    FROM {checkpoints} c
    CROSS JOIN LATERAL jsonb_each_text(CASE jsonb_typeof(
        c.checkpoint -> 'channel_versions') WHEN 'object'
        THEN c.checkpoint -> 'channel_versions' END) v
    WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
        AND v.key = b.channel AND v.value = b.version
)
""")
ORPHAN_WRITES_SQL = sql.SQL("""
SELECT count(*) AS n, coalesce(sum(pg_column_size(w.blob)), 0)::int8 AS bytes
FROM {writes} w
WHERE NOT EXISTS (
    SELECT 1 FROM {checkpoints} c
    WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
        AND c.checkpoint_id = w.checkpoint_id
)
""")


# -- rules (no I/O) ------------------------------------------------------------


def exact_count_wanted(main_bytes: int, *, exact: bool = False) -> bool:
    """Whether to ``count(*)`` a table of ``main_bytes`` rather than estimate.

    >>> exact_count_wanted(8192), exact_count_wanted(3 * 1024**3)
    (True, False)
    >>> exact_count_wanted(3 * 1024**3, exact=True)
    True
    """
    return exact or main_bytes <= EXACT_COUNT_PAGES * PAGE_BYTES


def estimated_rows(
    reltuples: float | None, relpages: int | None, main_bytes: int, live: int | None
) -> int:
    """The planner's row estimate: rows per page at the last ANALYZE times
    the pages now; the statistics' live rows when never analysed.

    >>> estimated_rows(1000.0, 10, 20 * 8192, None)
    2000
    >>> estimated_rows(-1.0, 0, 20 * 8192, 1234)
    1234
    """
    if reltuples is not None and reltuples >= 0 and relpages:
        return round(reltuples / relpages * (main_bytes / PAGE_BYTES))
    return int(live or 0)


def sample_percent(main_bytes: int, *, exact: bool = False) -> float:
    """The share of a table's pages (in percent) the sampled figures read:
    all of a table of at most :data:`SAMPLE_PAGES`, else that many pages.

    >>> sample_percent(100 * 8192), sample_percent(4 * SAMPLE_PAGES * 8192)
    (100.0, 25.0)
    """
    pages = main_bytes / PAGE_BYTES
    if exact or pages <= SAMPLE_PAGES:
        return 100.0
    return 100.0 * SAMPLE_PAGES / pages


def migration_state(
    current: int | None, latest: int, complete: int | None = None
) -> str:
    """``not set up``, ``behind``, ``current`` or ``newer`` (than this package);
    ``complete``: the first version that counts as current (default latest).

    >>> [migration_state(v, 12) for v in (None, 9, 12, 13)]
    ['not set up', 'behind', 'current', 'newer']
    >>> migration_state(1, 2, complete=1)
    'current'
    """
    if current is None:
        return "not set up"
    if current > latest:
        return "newer"
    return (
        "behind" if current < (latest if complete is None else complete) else "current"
    )


def day_series(counts: Mapping[str, int], days: int, today: datetime.date) -> list:
    """One ``{"day", "checkpoints"}`` per day of the last ``days``, newest
    first, zero where nothing was counted.

    >>> day_series({"2026-01-02": 5}, 2, datetime.date(2026, 1, 2))
    [{'day': '2026-01-02', 'checkpoints': 5}, {'day': '2026-01-01', 'checkpoints': 0}]
    """
    series = []
    for back in range(days):
        day = (today - datetime.timedelta(days=back)).isoformat()
        series.append({"day": day, "checkpoints": int(counts.get(day, 0))})
    return series


# -- reading -------------------------------------------------------------------


def read_tables(
    conn: psycopg.Connection[DictRow], env: Env, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Catalog rows (sizes, estimates) of ``names``, present or not."""
    return conn.execute(
        TABLES_SQL, {"names": list(names), "schema": env.schema}
    ).fetchall()


def migration_versions(
    conn: psycopg.Connection[DictRow], env: Env, present: Iterable[str]
) -> list[dict[str, Any]]:
    """Applied and known version of each history (``None``: no table)."""
    present = set(present)
    result = []
    for table, part, latest, complete in MIGRATION_HISTORIES:
        current = None
        if table in present:
            row = conn.execute(
                MAX_VERSION_SQL.format(table=env.table(table))
            ).fetchone()
            current = row["v"] if row else None
        if current is None and part == "store" and table not in present:
            continue
        result.append(
            {
                "history": table,
                "part": part,
                "current": current,
                "latest": latest,
                "state": migration_state(current, latest, complete),
            }
        )
    return result


def _table_entries(
    conn: psycopg.Connection[DictRow], env: Env, rows: Sequence[DictRow], exact: bool
) -> list[dict[str, Any]]:
    entries = []
    for row in rows:
        if row["oid"] is None:
            continue
        count_it = exact_count_wanted(row["main_bytes"], exact=exact)
        if count_it:
            n = conn.execute(COUNT_SQL.format(table=env.table(row["name"])))
            count = int(n.fetchone()["n"])  # type: ignore[index]
        else:
            count = estimated_rows(
                row["reltuples"], row["relpages"], row["main_bytes"], row["n_live_tup"]
            )
        entries.append(
            {
                "name": row["name"],
                "part": "saver" if row["name"] in SAVER_TABLES else "store",
                "rows": count,
                "rows_exact": count_it,
                "table_bytes": row["table_bytes"],
                "index_bytes": row["index_bytes"],
                "total_bytes": row["total_bytes"],
            }
        )
    return entries


def _threads(
    conn: psycopg.Connection[DictRow], env: Env, checkpoints_oid: int
) -> dict[str, Any]:
    row = conn.execute(
        NAMESPACES_SQL.format(checkpoints=env.table("checkpoints")),
        {"cap": NAMESPACE_WALK_CAP},
    ).fetchone()
    assert row is not None
    if row["walked"] < NAMESPACE_WALK_CAP:
        return {
            "count": row["threads"],
            "subgraph_namespaces": row["subgraph_namespaces"],
            "exact": True,
        }
    guess = conn.execute(DISTINCT_THREADS_SQL, {"oid": checkpoints_oid}).fetchone()
    count = max(int(guess["threads"] or 0) if guess else 0, row["threads"])
    return {"count": count, "subgraph_namespaces": None, "exact": False}


def _sampled(
    conn: psycopg.Connection[DictRow],
    env: Env,
    sizes: Mapping[str, int],
    *,
    top: int,
    days: int,
    exact: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    pct = {name: sample_percent(sizes[name], exact=exact) for name in sizes}
    tables = {
        "checkpoints": env.table("checkpoints"),
        "blobs": env.table("checkpoint_blobs"),
        "writes": env.table("checkpoint_writes"),
    }
    candidates = conn.execute(
        CANDIDATES_SQL.format(**tables),
        {
            "limit": max(top * CANDIDATES_PER_THREAD, 30) if top else 0,
            "c_pct": pct["checkpoints"],
            "c_scale": 100.0 / pct["checkpoints"],
            "b_pct": pct["checkpoint_blobs"],
            "b_scale": 100.0 / pct["checkpoint_blobs"],
            "w_pct": pct["checkpoint_writes"],
            "w_scale": 100.0 / pct["checkpoint_writes"],
        },
    ).fetchall()
    ids = [r["thread_id"] for r in candidates]
    biggest = (
        conn.execute(
            THREAD_SIZES_SQL.format(**tables), {"ids": ids, "top": top}
        ).fetchall()
        if ids
        else []
    )
    today = datetime.datetime.now(datetime.timezone.utc).date()
    since = (today - datetime.timedelta(days=days - 1)).isoformat()
    per_day = conn.execute(
        PER_DAY_SQL.format(checkpoints=tables["checkpoints"]),
        {
            "pct": pct["checkpoints"],
            "scale": 100.0 / pct["checkpoints"],
            "since": since,
        },
    ).fetchall()
    all_exact = all(p >= 100.0 for p in pct.values())
    return (
        {
            "exact": all_exact,
            "sample_percent": {k: round(v, 3) for k, v in pct.items()},
            "threads": [dict(r) for r in biggest],
        },
        {
            "exact": pct["checkpoints"] >= 100.0,
            "sample_percent": round(pct["checkpoints"], 3),
            "days": day_series(
                {r["day"]: r["checkpoints"] for r in per_day}, days, today
            ),
        },
    )


def _orphans(
    conn: psycopg.Connection[DictRow], env: Env, sizes: Mapping[str, int], wanted: bool
) -> dict[str, Any]:
    small = all(sample_percent(size) >= 100.0 for size in sizes.values())
    if not (wanted or small):
        return {
            "checked": False,
            "note": "not counted on tables this large: --orphans counts them "
            "(reads every row)",
        }
    tables = {
        "checkpoints": env.table("checkpoints"),
        "blobs": env.table("checkpoint_blobs"),
        "writes": env.table("checkpoint_writes"),
    }
    blobs = conn.execute(ORPHAN_BLOBS_SQL.format(**tables)).fetchone()
    writes = conn.execute(ORPHAN_WRITES_SQL.format(**tables)).fetchone()
    assert blobs is not None and writes is not None
    return {
        "checked": True,
        "blobs": blobs["n"],
        "blob_bytes": blobs["bytes"],
        "writes": writes["n"],
        "write_bytes": writes["bytes"],
    }


def collect(
    conn: psycopg.Connection[DictRow],
    env: Env,
    *,
    top: int,
    days: int,
    orphans: bool,
    exact: bool,
) -> dict[str, Any]:
    """Everything ``stats`` reports, as its ``--json`` document."""
    rows = read_tables(conn, env, SAVER_TABLES + STORE_TABLES)
    present = {r["name"]: r for r in rows if r["oid"] is not None}
    oids = [r["oid"] for r in present.values()]
    indexes = conn.execute(INDEXES_SQL, {"oids": oids}).fetchall() if oids else []
    data: dict[str, Any] = {
        "tables": _table_entries(conn, env, rows, exact),
        "indexes": [dict(i) for i in indexes],
        "migrations": migration_versions(conn, env, present),
        "store_present": "store" in present,
    }
    data_tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    if all(name in present for name in data_tables):
        sizes = {name: int(present[name]["main_bytes"]) for name in data_tables}
        data["threads"] = _threads(conn, env, present["checkpoints"]["oid"])
        data["biggest_threads"], data["checkpoints_per_day"] = _sampled(
            conn, env, sizes, top=top, days=days, exact=exact
        )
        data["orphans"] = _orphans(conn, env, sizes, orphans or exact)
    else:
        data["threads"] = None
        data["biggest_threads"] = None
        data["checkpoints_per_day"] = None
        data["orphans"] = None
    return data
