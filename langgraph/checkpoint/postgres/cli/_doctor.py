"""``doctor``: check the database the way an operator would, and say what to do.

The command, the order its checks run in (:func:`diagnose`) and how their
findings print; the checks are in
:mod:`~langgraph.checkpoint.postgres.cli._doctor_checks`. The command exits
non-zero when any finding fails. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import click

from langgraph.checkpoint.postgres.cli._app import Env, common_options, pass_env
from langgraph.checkpoint.postgres.cli._doctor_checks import (
    INVALID_INDEXES_SQL,
    SERVER_SQL,
    Conn,
    Finding,
    check_privileges,
    check_transactions,
    check_vacuum,
    invalid_index_finding,
    migration_findings,
    pooler_finding,
    pooler_mode,
    server_finding,
)
from langgraph.checkpoint.postgres.cli._durations import duration_seconds
from langgraph.checkpoint.postgres.cli._errors import ProblemsFound
from langgraph.checkpoint.postgres.cli._stats_queries import (
    SAVER_TABLES,
    STORE_TABLES,
    migration_versions,
    read_tables,
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number of seconds, or with a unit s/m/h/d.

    >>> parse_duration("300"), parse_duration("5m"), parse_duration("1.5h")
    (300.0, 300.0, 5400.0)
    """
    seconds = duration_seconds(text, bare="s")
    if seconds is None:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 300, 30s, 5m, 1h)")
    return seconds


def diagnose(conn: Conn, env: Env, dsn: str, max_xact_age: float) -> list[Finding]:
    """Every finding, in the order printed."""
    # Behind a transaction pooler a prepared statement may be missing from
    # the next transaction's server session.
    conn.prepare_threshold = None
    server = conn.execute(SERVER_SQL, {"schema": env.schema}).fetchone()
    assert server is not None
    findings = [
        Finding(
            "connection",
            "ok",
            f"connected to {server['database']} as {server['user']}",
        ),
        server_finding(server["version_num"], server["version"], server["standby"]),
        pooler_finding(*pooler_mode(conn, dsn)),
    ]
    tables = read_tables(conn, env, SAVER_TABLES + STORE_TABLES)
    present = {t["name"]: t for t in tables if t["oid"] is not None}
    histories = migration_versions(conn, env, present)
    findings += migration_findings(histories)
    if "store" not in present:
        findings.append(
            Finding(
                "migrations",
                "ok",
                "no store tables (needed only if you use PostgresStore)",
            )
        )
    findings += check_privileges(conn, tables, server["schema"])
    oids = [t["oid"] for t in present.values()]
    applied = {h["history"]: h["current"] for h in histories}
    invalid = conn.execute(INVALID_INDEXES_SQL, {"oids": oids}).fetchall()
    findings += [invalid_index_finding(i, applied) for i in invalid]
    if present and not invalid:
        findings.append(Finding("indexes", "ok", "all indexes of the tables are valid"))
    findings += check_transactions(conn, max_xact_age)
    if present:
        findings += check_vacuum(conn, oids, server["autovacuum"])
    return findings


# -- printing ------------------------------------------------------------------

STYLES: Mapping[str, str] = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def print_findings(env: Env, findings: Sequence[Finding]) -> None:
    out = env.out
    width = max(len(f.check) for f in findings)
    for f in findings:
        out.line(
            f"{f.status:<4}  {f.check:<{width}}  {f.detail}", style=STYLES[f.status]
        )
        if f.fix and f.status != "ok":
            out.line(f"{'':<4}  {'':<{width}}  -> {f.fix}")
    counts = {s: sum(f.status == s for f in findings) for s in STYLES}
    out.line()
    out.line(
        f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)"
    )


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    return parse_duration(value)


@click.command("doctor")
@click.option(
    "--max-xact-age",
    default="5m",
    show_default=True,
    callback=_duration,
    metavar="DURATION",
    help="Report transactions open longer than this (300, 30s, 5m, 1h).",
)
@common_options
@pass_env
def doctor(env: Env, max_xact_age: float) -> None:
    """Check the database for what breaks or slows the saver and the store.

    Checks, each reported as ok, warn or fail with what to do: connectivity
    and server version; a connection pooler in between (PgBouncer in
    transaction mode -> prepare_threshold=None, no pipeline); whether setup()
    ran and the migrations are current (saver and store); SELECT, INSERT,
    UPDATE and DELETE on the tables and CREATE on the schema; invalid indexes
    left by an interrupted CONCURRENTLY build; transactions open longer than
    --max-xact-age (holding back vacuum), old prepared transactions and
    inactive replication slots; autovacuum and dead rows on the tables.
    Reads only. Exits 1 when a check fails.

    \b
    --json prints a list of findings [{check, status, detail, fix}].

    \b
    Examples:
      langgraph-postgres doctor
      langgraph-postgres doctor --max-xact-age 1m --json
    """
    dsn = env.require_dsn()
    with env.connect() as conn:
        findings = diagnose(conn, env, dsn, max_xact_age)
    env.out.emit([asdict(f) for f in findings], lambda: print_findings(env, findings))
    failures = sum(f.status == "fail" for f in findings)
    if failures:
        raise ProblemsFound(failures)


COMMANDS: list[click.Command] = [doctor]
