"""The checks ``doctor`` runs, each turning what the catalogs and statistics
views say into findings ``{check, status, detail, fix}`` (status ``ok``,
``warn`` or ``fail``): server version, pooler, migrations, privileges,
invalid indexes, old transactions, vacuum. They read only (the pooler probe
opens a second connection); nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from langgraph.checkpoint.postgres._migrations import ONLINE_INDEX_BUILDS
from langgraph.checkpoint.postgres.cli._app import APPLICATION_NAME, CONNECT_TIMEOUT
from langgraph.store.postgres._migrations import STORE_ONLINE_BUILDS

#: The oldest server the test suite runs on (it also runs on 18); older ones
#: are warned about, not refused.
TESTED_SERVER = 150000
#: Dead rows over this share of a table (with at least DEAD_ROWS_MIN of
#: them) mean vacuum is not keeping up.
DEAD_RATIO = 0.2
DEAD_ROWS_MIN = 10_000
#: Rounds of the transaction-pooler probe (see pooler_mode).
POOLER_PROBES = 4
MIGRATE_FIX = "run setup() (or `langgraph-postgres migrate up`)"
#: Index names (without schema) that setup() builds online, by history.
ONLINE_INDEXES = {
    build.index_name.lstrip("$"): ("checkpoint_migrations", version)
    for version, build in ONLINE_INDEX_BUILDS.items()
} | {
    build.index_name.lstrip("$"): ("store_migrations", version)
    for version, build in STORE_ONLINE_BUILDS.items()
}

SERVER_SQL = """
SELECT current_setting('server_version_num')::int AS version_num,
    current_setting('server_version') AS version, pg_is_in_recovery() AS standby,
    current_setting('autovacuum') AS autovacuum, pg_backend_pid() AS pid,
    current_user AS "user", current_database() AS database,
    coalesce(%(schema)s::text, current_schema()) AS schema
"""
PRIVILEGES_SQL = """
SELECT t.name, p.privilege,
    has_table_privilege(t.oid::oid, p.privilege) AS granted
FROM unnest(%(names)s::text[], %(oids)s::int8[]) AS t(name, oid)
CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p(privilege)
"""
SCHEMA_CREATE_SQL = """
SELECT has_schema_privilege(n.oid, 'CREATE') AS may_create, n.oid IS NOT NULL AS exists
FROM (SELECT %(schema)s::text AS name) s
LEFT JOIN pg_namespace n ON n.nspname = s.name
"""
# Invalid indexes of our tables, and whether some session is building one
# right now (then it is not a leftover).
INVALID_INDEXES_SQL = """
SELECT i.indexrelid::regclass::text AS name, c.relname AS index_name,
    i.indrelid::regclass::text AS "table",
    EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
            WHERE p.index_relid = i.indexrelid) AS building
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY(%(oids)s::oid[]) AND NOT i.indisvalid
ORDER BY 1
"""
# Sessions of this database whose transaction (or snapshot) is older than
# the limit; without pg_read_all_stats, other roles' queries read as NULL.
OLD_TRANSACTIONS_SQL = """
SELECT pid, usename AS "user", application_name, state,
    extract(epoch FROM now() - xact_start)::int8 AS seconds,
    greatest(age(backend_xmin), age(backend_xid)) AS xmin_age,
    left(query, 80) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND xact_start < now() - make_interval(secs => %(seconds)s)
ORDER BY xact_start
"""
PREPARED_XACTS_SQL = """
SELECT gid, extract(epoch FROM now() - prepared)::int8 AS seconds
FROM pg_prepared_xacts
WHERE database = current_database()
    AND prepared < now() - make_interval(secs => %(seconds)s)
"""
STALE_SLOTS_SQL = """
SELECT slot_name, age(coalesce(xmin, catalog_xmin)) AS xmin_age
FROM pg_replication_slots
WHERE NOT active AND coalesce(xmin, catalog_xmin) IS NOT NULL
"""
VACUUM_SQL = """
SELECT c.relname AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,
    coalesce(c.reloptions::text[] @> ARRAY['autovacuum_enabled=false'], false)
        AS autovacuum_off
FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.oid = ANY(%(oids)s::oid[])
ORDER BY 1
"""


@dataclass
class Finding:
    """One result of a check; ``fix`` is empty when there is nothing to do."""

    check: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


# -- rules (no I/O) ------------------------------------------------------------


def server_finding(version_num: int, version: str, standby: bool) -> Finding:
    """The server version check.

    >>> server_finding(150020, "15.20", False).status
    'ok'
    >>> server_finding(130004, "13.4", False).status
    'warn'
    """
    if standby:
        return Finding(
            "server",
            "warn",
            f"PostgreSQL {version}, a read-only standby",
            "connect to the primary: the savers write on every step",
        )
    if version_num < TESTED_SERVER:
        return Finding(
            "server",
            "warn",
            f"PostgreSQL {version}: older than the versions the package is "
            "tested on (15 and 18)",
            "upgrade the server (versions before 15 are past or near their "
            "end of life)",
        )
    return Finding("server", "ok", f"PostgreSQL {version}")


def migration_findings(histories: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """One finding per migration history (``stats``' ``migrations`` rows).

    >>> [f.status for f in migration_findings([
    ...     {"history": "checkpoint_migrations", "part": "saver", "current": None,
    ...      "latest": 12, "state": "not set up"}])]
    ['fail']
    """
    findings = []
    for h in histories:
        name, state = h["history"], h["state"]
        where = f"{name}: version {h['current']}, package knows {h['latest']}"
        if state == "current":
            findings.append(Finding("migrations", "ok", where))
        elif state == "not set up":
            findings.append(
                Finding(
                    "migrations",
                    "fail",
                    f"{name}: setup() has not run here (no tables)",
                    MIGRATE_FIX + "; or pass --schema if the tables are elsewhere",
                )
            )
        elif state == "behind":
            findings.append(
                Finding("migrations", "fail", where + " (behind)", MIGRATE_FIX)
            )
        else:
            findings.append(
                Finding(
                    "migrations",
                    "fail",
                    where + " (newer than this package)",
                    "upgrade langgraph-postgres-saver to the version that "
                    "migrated the database",
                )
            )
    return findings


def invalid_index_finding(
    index: Mapping[str, Any], applied: Mapping[str, int | None]
) -> Finding:
    """What to do about one invalid index.

    An index that setup() builds online and whose migration is not recorded
    yet is rebuilt by the next setup(); any other is rebuilt by hand.
    """
    name = index["name"]
    if index["building"]:
        return Finding(
            "indexes",
            "warn",
            f"{name} on {index['table']} is being built (CONCURRENTLY)",
            "wait for the build to finish",
        )
    ours = ONLINE_INDEXES.get(index["index_name"])
    detail = (
        f"{name} on {index['table']} is invalid: the remains of an interrupted "
        "CREATE INDEX CONCURRENTLY (or REINDEX); it slows every write and "
        "serves no read"
    )
    if ours is not None:
        history, version = ours
        current = applied.get(history)
        if current is None or current < version:
            return Finding(
                "indexes",
                "fail",
                detail,
                MIGRATE_FIX + ": it drops the invalid index and builds it again",
            )
    return Finding(
        "indexes",
        "fail",
        detail,
        f"REINDEX INDEX CONCURRENTLY {name} (or DROP INDEX CONCURRENTLY {name} "
        "if it is not one you want)",
    )


def pooler_finding(client_pid: int, server_pid: int, shared: bool) -> Finding:
    """Interpret :func:`pooler_mode`'s observations.

    A pooler hands the client its own backend pid (in the cancel key), which
    differs from the server's ``pg_backend_pid()``; two clients of a
    transaction pooler are served by the same server session in turn.

    >>> pooler_finding(7, 7, False).status, pooler_finding(1, 7, True).status
    ('ok', 'warn')
    """
    settings = (
        "open the application's connections and pools with "
        "prepare_threshold=None and without pipeline mode; "
        "from_conn_string() prepares statements (prepare_threshold=0), so "
        "build the pool yourself (docs/production.md#transaction-poolers)"
    )
    if client_pid == server_pid:
        return Finding(
            "pooler",
            "ok",
            "direct connection to the server (no pooler in between); "
            "prepare_threshold=0 (from_conn_string's) and pipeline mode are fine",
        )
    if shared:
        return Finding(
            "pooler",
            "warn",
            "a transaction pooler (PgBouncer in transaction mode or alike): "
            "two client connections were served by one server session in turn",
            settings,
        )
    return Finding(
        "pooler",
        "ok",
        "a connection pooler is in between (the server's backend pid is not "
        "the one the client was given), and no transaction pooling was seen "
        "(session mode?)",
        "if it pools by transaction: " + settings,
    )


# -- checks (I/O) --------------------------------------------------------------

Conn = psycopg.Connection[DictRow]


def pooler_mode(conn: Conn, dsn: str) -> tuple[int, int, bool]:
    """(client-side pid, server pid, whether a second client shared the
    first's server session).

    In autocommit mode each statement is a transaction of its own, after
    which a transaction pooler may give the server session to another
    client; a session pooler never does while the first client is
    connected. Seeing one pid from both clients is proof of transaction
    pooling; not seeing it proves nothing (another idle server session may
    have been picked each time), so a few rounds are tried.
    """
    server_pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]  # type: ignore[index]
    client_pid = conn.info.backend_pid
    if client_pid == server_pid:
        return client_pid, server_pid, False
    with psycopg.connect(
        dsn,
        autocommit=True,
        row_factory=dict_row,
        prepare_threshold=None,
        connect_timeout=CONNECT_TIMEOUT,
        application_name=APPLICATION_NAME,
    ) as other:
        for _ in range(POOLER_PROBES):
            first = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
            second = other.execute("SELECT pg_backend_pid() AS pid").fetchone()
            if first and second and first["pid"] == second["pid"]:
                return client_pid, server_pid, True
    return client_pid, server_pid, False


def check_privileges(
    conn: Conn, tables: Sequence[Mapping[str, Any]], schema: str
) -> Iterator[Finding]:
    present = [t for t in tables if t["oid"] is not None]
    if present:
        rows = conn.execute(
            PRIVILEGES_SQL,
            {
                "names": [t["name"] for t in present],
                "oids": [t["oid"] for t in present],
            },
        ).fetchall()
        missing: dict[str, list[str]] = {}
        for row in rows:
            if not row["granted"]:
                missing.setdefault(row["name"], []).append(row["privilege"])
        if missing:
            text = "; ".join(f"{t}: {', '.join(p)}" for t, p in missing.items())
            yield Finding(
                "privileges",
                "fail",
                f"missing table privileges ({text})",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON the tables TO the "
                "application's role",
            )
        else:
            yield Finding(
                "privileges",
                "ok",
                f"SELECT, INSERT, UPDATE, DELETE on all {len(present)} tables",
            )
    schema_row = conn.execute(SCHEMA_CREATE_SQL, {"schema": schema}).fetchone()
    if schema_row is None or not schema_row["exists"]:
        yield Finding(
            "privileges",
            "fail",
            f"schema {schema!r} does not exist",
            "create it, or pass the right --schema",
        )
    elif schema_row["may_create"]:
        yield Finding("privileges", "ok", f"CREATE on schema {schema}")
    else:
        yield Finding(
            "privileges",
            "warn",
            f"no CREATE on schema {schema}: setup() cannot create or migrate "
            "the tables as this role",
            "run setup() / `langgraph-postgres migrate up` as the role that "
            f"owns the tables, or GRANT CREATE ON SCHEMA {schema}",
        )


def check_transactions(conn: Conn, seconds: float) -> Iterator[Finding]:
    rows = conn.execute(OLD_TRANSACTIONS_SQL, {"seconds": seconds}).fetchall()
    for row in rows:
        idle = (row["state"] or "").startswith("idle in transaction")
        what = "idle in transaction" if idle else f"open ({row['state']})"
        yield Finding(
            "transactions",
            "warn",
            f"pid {row['pid']} ({row['user']}, {row['application_name'] or '-'}) "
            f"has had a transaction {what} for {row['seconds']} s"
            + (
                f", holding back vacuum (xmin age {row['xmin_age']})"
                if row["xmin_age"] is not None
                else ""
            )
            + (f": {row['query']}" if row["query"] else ""),
            f"end it (SELECT pg_terminate_backend({row['pid']})) if it is stuck; "
            "set idle_in_transaction_session_timeout to bound such sessions",
        )
    for row in conn.execute(PREPARED_XACTS_SQL, {"seconds": seconds}).fetchall():
        yield Finding(
            "transactions",
            "warn",
            f"prepared transaction {row['gid']!r} is {row['seconds']} s old "
            "and holds back vacuum",
            f"COMMIT PREPARED or ROLLBACK PREPARED {row['gid']!r}",
        )
    for row in conn.execute(STALE_SLOTS_SQL).fetchall():
        yield Finding(
            "transactions",
            "warn",
            f"inactive replication slot {row['slot_name']} holds back vacuum "
            f"(xmin age {row['xmin_age']})",
            f"SELECT pg_drop_replication_slot('{row['slot_name']}') if nothing "
            "will consume it",
        )
    if not rows:
        yield Finding(
            "transactions",
            "ok",
            f"no transaction of this database open longer than {seconds:g} s",
        )


def check_vacuum(conn: Conn, oids: Sequence[int], autovacuum: str) -> Iterator[Finding]:
    if autovacuum != "on":
        yield Finding(
            "vacuum",
            "warn",
            "autovacuum is off on this server: deleted checkpoints' space is "
            "never reused and statistics go stale",
            "turn autovacuum on, or VACUUM (ANALYZE) the tables on a schedule",
        )
    healthy = True
    for row in conn.execute(VACUUM_SQL, {"oids": list(oids)}).fetchall():
        if row["autovacuum_off"]:
            healthy = False
            yield Finding(
                "vacuum",
                "warn",
                f"autovacuum is disabled on {row['name']}",
                f"ALTER TABLE {row['name']} RESET (autovacuum_enabled)",
            )
        live, dead = row["live"] or 0, row["dead"] or 0
        if dead >= DEAD_ROWS_MIN and dead > DEAD_RATIO * (live + dead):
            healthy = False
            yield Finding(
                "vacuum",
                "warn",
                f"{row['name']}: {dead:,} dead rows against {live:,} live",
                f"VACUUM (ANALYZE) {row['name']}; if it recurs, look for old "
                "transactions and lower autovacuum_vacuum_scale_factor on it",
            )
    if healthy and autovacuum == "on":
        yield Finding("vacuum", "ok", "autovacuum on; dead rows under control")
