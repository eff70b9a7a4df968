"""A primary and a streaming standby on loopback ports, to fail over for real.

:func:`failover_pair` starts a PostgreSQL primary (``initdb`` once per test
session, copied for each pair, so a pair costs a base backup and two server
starts) and a standby made with ``pg_basebackup -R`` that replicates
synchronously (``synchronous_standby_names`` names it), both listening on
free ports of 127.0.0.1. :class:`Pair` kills the primary
(``pg_ctl stop -m immediate``, as a crash would), promotes the standby, and
builds conninfo strings, among them the multi-host one that a failover
needs (``host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=...``).

The servers run as the ``postgres`` OS user when the tests run as root
(``initdb`` refuses root). Without the PostgreSQL binaries the tests skip,
saying why; with ``REQUIRE_FAILOVER=1`` they fail instead.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

#: Where Debian and the PGDG packages put the server binaries, newest first;
#: ``PG_BINDIR`` overrides.
_BIN_CANDIDATES = tuple(
    f"/usr/lib/postgresql/{v}/bin" for v in (18, 17, 16, 15, 14, 13)
) + ("/usr/local/pgsql/bin",)

#: The standby's ``application_name``, which the primary's
#: ``synchronous_standby_names`` waits for.
STANDBY_NAME = "failover_standby"

#: How long a server has to start, promote or stop.
SERVER_TIMEOUT = 30

_HOST = "127.0.0.1"

# Settings of both servers: small, fast to start, no fsync (a killed server
# keeps its files: the OS does not crash), WAL for a streaming standby.
_COMMON_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 60
shared_buffers = 16MB
fsync = off
full_page_writes = on
wal_level = replica
max_wal_senders = 4
wal_keep_size = 64MB
hot_standby = on
wal_receiver_status_interval = 1s
logging_collector = off
log_min_messages = warning
"""


class FailoverUnavailable(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are
    missing, or a server did not start."""


def find_bindir() -> Path:
    """The directory of ``initdb``, ``pg_ctl`` and ``pg_basebackup``."""
    candidates = [os.environ.get("PG_BINDIR", ""), *_BIN_CANDIDATES]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and all(
            (Path(candidate) / tool).is_file()
            for tool in ("initdb", "pg_ctl", "pg_basebackup")
        ):
            return Path(candidate)
    raise FailoverUnavailable(
        "the failover tests need the PostgreSQL server binaries (initdb, pg_ctl, "
        "pg_basebackup): install postgresql (e.g. `apt-get install "
        "postgresql-15`) or set PG_BINDIR"
    )


def skip_or_fail(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when ``REQUIRE_FAILOVER=1``."""
    if os.environ.get("REQUIRE_FAILOVER") == "1":
        pytest.fail(f"REQUIRE_FAILOVER=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The OS user the servers run as: ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError as exc:
        raise FailoverUnavailable(
            "running as root, and initdb refuses to: no 'postgres' OS user exists "
            "to run the servers as"
        ) from exc


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _run(command: list[str], user: str | None, *, check: bool = True) -> str:
    """Run a server tool (as ``user``); return its output, raise with it."""
    result = subprocess.run(
        command,
        user=user,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SERVER_TIMEOUT * 2,
        check=False,
        cwd="/",
    )
    if check and result.returncode != 0:
        raise FailoverUnavailable(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}"
        )
    return result.stdout


_template_lock = threading.Lock()
_template: Path | None = None


def _initdb_template(bindir: Path, user: str | None) -> Path:
    """A freshly initialised (never started) data directory, made once per
    test session and copied for each primary: initdb is most of a pair's
    cost."""
    global _template
    with _template_lock:
        if _template is None:
            base = Path(tempfile.mkdtemp(prefix="lgcp-failover-template-"))
            # Removed when the test session's process exits.
            atexit.register(shutil.rmtree, base, ignore_errors=True)
            _chown_tree(base, user)
            data = base / "data"
            _run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "--no-instructions",
                ],
                user,
            )
            _template = data
        return _template


@dataclass
class Server:
    """One server of the pair: its data directory, port and log."""

    name: str
    data: Path
    port: int
    log: Path
    running: bool = False

    def conninfo(self, dbname: str = "postgres", **extra: str) -> str:
        return make_conninfo(
            host=_HOST, port=str(self.port), user="postgres", dbname=dbname, **extra
        )

    def read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError as exc:
            return f"(no log: {exc})"


@dataclass
class Pair:
    """A running primary and its synchronous streaming standby."""

    bindir: Path
    user: str | None
    workdir: Path
    primary: Server
    standby: Server
    #: monotonic() when :meth:`kill_primary` and :meth:`promote_standby` ended.
    killed_at: float | None = None
    promoted_at: float | None = None
    events: list[str] = field(default_factory=list)

    # -- conninfo ----------------------------------------------------------

    def multi_host(
        self, dbname: str = "postgres", *, attrs: str = "read-write", **extra: str
    ) -> str:
        """Both servers, primary first: libpq tries them in turn and keeps
        the first that ``target_session_attrs=attrs`` accepts."""
        return make_conninfo(
            host=f"{_HOST},{_HOST}",
            port=f"{self.primary.port},{self.standby.port}",
            user="postgres",
            dbname=dbname,
            target_session_attrs=attrs,
            connect_timeout="2",
            **extra,
        )

    # -- actions -----------------------------------------------------------

    def pg_ctl(self, server: Server, *args: str, check: bool = True) -> str:
        return _run(
            [str(self.bindir / "pg_ctl"), "-D", str(server.data), *args],
            self.user,
            check=check,
        )

    def start(self, server: Server) -> None:
        self.pg_ctl(
            server,
            "-l",
            str(server.log),
            "-w",
            "-t",
            str(SERVER_TIMEOUT),
            "start",
        )
        server.running = True

    def kill_primary(self) -> float:
        """Stop the primary as a crash would (no shutdown checkpoint, clients
        cut off); return how long it took."""
        started = time.monotonic()
        self.pg_ctl(self.primary, "-m", "immediate", "-w", "stop")
        self.primary.running = False
        self.killed_at = time.monotonic()
        self.events.append("primary killed")
        return self.killed_at - started

    def promote_standby(self) -> float:
        """Promote the standby and wait until it accepts writes; return how
        long that took."""
        started = time.monotonic()
        self.pg_ctl(self.standby, "-w", "-t", str(SERVER_TIMEOUT), "promote")
        deadline = started + SERVER_TIMEOUT
        while time.monotonic() < deadline:
            with psycopg.connect(self.standby.conninfo(), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    break
            time.sleep(0.02)
        self.promoted_at = time.monotonic()
        self.events.append("standby promoted")
        return self.promoted_at - started

    def stop_all(self) -> None:
        for server in (self.standby, self.primary):
            if server.running:
                self.pg_ctl(server, "-m", "immediate", "-w", "stop", check=False)
                server.running = False

    # -- inspection --------------------------------------------------------

    def wait_streaming(self, timeout: float = SERVER_TIMEOUT) -> None:
        """Return once the primary sees the standby as its synchronous one."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.primary.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication "
                    "WHERE application_name = %s",
                    (STANDBY_NAME,),
                ).fetchone()
                if row is not None and row[0] == "sync":
                    return
                time.sleep(0.05)
        raise FailoverUnavailable(
            "the standby did not become the synchronous standby; its log:\n"
            + self.standby.read_log()
        )

    def wait_replayed(self) -> None:
        """Return once the standby has applied everything the primary has
        written so far (synchronous replication waits for the standby to
        flush a commit, not to apply it: a read there may not see it yet)."""
        with psycopg.connect(self.primary.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + SERVER_TIMEOUT
        with psycopg.connect(self.standby.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done and done[0]:
                    return
                time.sleep(0.02)
        raise FailoverUnavailable("the standby did not replay the primary's writes")

    def create_database(self, name: str) -> None:
        """Create database ``name`` on the primary; return once the standby
        has replayed it (synchronous replication waits for the standby to
        flush a commit, not to apply it)."""
        with psycopg.connect(self.primary.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        deadline = time.monotonic() + SERVER_TIMEOUT
        with psycopg.connect(self.standby.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if found:
                    return
                time.sleep(0.02)
        raise FailoverUnavailable(f"the standby did not replay database {name}")


def _append(path: Path, text: str) -> None:
    with path.open("a") as conf:
        conf.write(text)


@contextmanager
def failover_pair() -> Iterator[Pair]:
    """Run a primary and a synchronous streaming standby for the block.

    Raises :class:`FailoverUnavailable` when the binaries are missing or a
    server does not start (with its log). Both servers are stopped and their
    directories removed when the block ends.
    """
    bindir = find_bindir()
    user = _server_user()
    template = _initdb_template(bindir, user)
    workdir = Path(tempfile.mkdtemp(prefix="lgcp-failover-"))
    try:
        sockets = workdir / "sockets"
        sockets.mkdir()
        primary = Server("primary", workdir / "primary", free_port(), workdir / "p.log")
        standby = Server("standby", workdir / "standby", free_port(), workdir / "s.log")
        shutil.copytree(template, primary.data)
        _append(
            primary.data / "postgresql.conf",
            _COMMON_CONF.format(sockets=sockets)
            + f"port = {primary.port}\n"
            + f"synchronous_standby_names = '{STANDBY_NAME}'\n",
        )
        _chown_tree(workdir, user)
        os.chmod(primary.data, 0o700)
        pair = Pair(bindir, user, workdir, primary, standby)
        try:
            pair.start(primary)
            _run(
                [
                    str(bindir / "pg_basebackup"),
                    "-d",
                    primary.conninfo(application_name=STANDBY_NAME),
                    "-D",
                    str(standby.data),
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    "--no-sync",
                ],
                user,
            )
            # The standby's own settings; after promotion it has no standby
            # of its own, so it must not wait for one.
            primary_conninfo = primary.conninfo(application_name=STANDBY_NAME)
            _append(
                standby.data / "postgresql.conf",
                f"\nport = {standby.port}\nsynchronous_standby_names = ''\n",
            )
            _append(
                standby.data / "postgresql.auto.conf",
                f"\nprimary_conninfo = '{primary_conninfo}'\n",
            )
            pair.start(standby)
            pair.wait_streaming()
            yield pair
        except FailoverUnavailable as exc:
            raise FailoverUnavailable(
                f"{exc}\nprimary log:\n{primary.read_log()}\n"
                f"standby log:\n{standby.read_log()}"
            ) from exc
        finally:
            pair.stop_all()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
