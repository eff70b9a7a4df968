"""A throwaway Citus cluster for the tests: a coordinator and two workers.

:func:`run_citus_cluster` finds a PostgreSQL installation that has the
``citus`` extension, makes three data directories in a temporary directory
(``initdb``), starts them on free ports of 127.0.0.1 with Citus preloaded,
and makes one database with the extension on every node and the workers
registered with the coordinator. At the end of the block the nodes are
stopped (immediately: nothing in them is worth a clean shutdown) and the
directory is removed. As root the servers run as the ``postgres`` OS user,
since ``initdb`` and ``postgres`` refuse to run as root.

:func:`shared_citus_cluster` hands every test module of a session the same
cluster, started by the first and stopped after the last.

Nothing here reads files outside this repository at test time: CI builds
Citus into the machine's PostgreSQL beforehand, a user installs it from
Citus's packages; without it :class:`CitusNotInstalled` says how to get it.
"""

from __future__ import annotations

import concurrent.futures
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.citus import adistribute_tables, distribute_tables
from tests.savers import async_saver, sync_saver

T = TypeVar("T")

#: The database every Citus test shares (each saver gets a schema of its own).
DATABASE = "lgcp_citus"

#: Shards per distributed table: few, so that distributing stays cheap, but
#: more than the workers, so that two threads may share a worker and not a
#: shard.
SHARD_COUNT = 4

#: How long a node has to start, and a command of ours to finish.
START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 120.0

INSTALL_HINT = (
    "the Citus tests need PostgreSQL with the citus extension installed "
    "(citus.so in its lib directory, citus.control among its extensions): "
    "install Citus from its packages (the postgresql-<major>-citus-<version> "
    "package of Citus's apt or yum repository, see https://docs.citusdata.com/"
    "en/stable/installation/single_node.html) or build it from source "
    "(https://github.com/citusdata/citus); CI builds Citus 13.2 into "
    "PostgreSQL 15 before the tests. Set CITUS_PG_BINDIR to the bin directory "
    "of the PostgreSQL that has it if it is not found by itself"
)

_LISTEN_HOST = "127.0.0.1"

#: Ports a developer's own cluster may use; never picked, even if free now.
_RESERVED_PORTS = range(5601, 5604)

#: What each node's postgresql.conf gets, beyond its port. Durability is off
#: (fsync, full pages): the cluster lives for one test session.
_NODE_SETTINGS = """
listen_addresses = '{host}'
unix_socket_directories = ''
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
wal_level = logical
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
citus.enable_statistics_collection = off
log_min_messages = warning
log_min_error_statement = error
"""


class CitusNotInstalled(RuntimeError):
    """No PostgreSQL on this machine has the citus extension."""


class CitusFailed(RuntimeError):
    """A node did not start, or the cluster could not be set up."""


def require_citus() -> Installation:
    """The installation to run Citus with; else skip the test, or fail it
    when the run requires Citus (``REQUIRE_CITUS=1``, as CI sets)."""
    try:
        return find_installation()
    except CitusNotInstalled as exc:
        # A user's machine rarely has Citus, and `make test` must pass
        # there; in CI a skip would hide that these tests no longer run.
        if os.environ.get("REQUIRE_CITUS") == "1":
            pytest.fail(f"REQUIRE_CITUS=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))


@dataclass(frozen=True)
class Installation:
    """A PostgreSQL installation with Citus: its programs, and its version."""

    bindir: Path
    version: str

    def program(self, name: str) -> str:
        return str(self.bindir / name)


def _pg_config(bindir: Path, option: str) -> str | None:
    config = bindir / "pg_config"
    if not config.exists():
        return None
    out = subprocess.run(
        [str(config), option], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or None


def _candidate_bindirs() -> list[Path]:
    """Where to look for PostgreSQL's programs, most specific first."""
    found: list[Path] = []
    explicit = os.environ.get("CITUS_PG_BINDIR")
    if explicit:
        found.append(Path(explicit))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if out.stdout.strip():
            found.append(Path(out.stdout.strip()))

    # Debian and Ubuntu keep each major version apart; newest first.
    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else 0

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    found += [Path(path) for path in debian]
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def _has_citus(bindir: Path) -> bool:
    """Whether the PostgreSQL of ``bindir`` can load and create Citus."""
    libdir = _pg_config(bindir, "--pkglibdir")
    sharedir = _pg_config(bindir, "--sharedir")
    if libdir is None or sharedir is None:
        # Debian's layout, for a bin directory without pg_config.
        version = bindir.parent.name
        libdir = f"/usr/lib/postgresql/{version}/lib"
        sharedir = f"/usr/share/postgresql/{version}"
    return (Path(libdir) / "citus.so").exists() and (
        Path(sharedir) / "extension" / "citus.control"
    ).exists()


def find_installation() -> Installation:
    """The PostgreSQL to run Citus with, or :class:`CitusNotInstalled`."""
    looked = []
    for bindir in _candidate_bindirs():
        looked.append(str(bindir))
        programs = ("initdb", "pg_ctl", "postgres")
        if not all((bindir / p).exists() for p in programs):
            continue
        if not _has_citus(bindir):
            continue
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        return Installation(bindir, out.stdout.strip())
    where = ", ".join(looked) or "no PostgreSQL found"
    raise CitusNotInstalled(f"{INSTALL_HINT} (looked in: {where})")


def _service_user() -> pwd.struct_passwd | None:
    """The OS user the servers run as: ourselves, or ``postgres`` as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise CitusFailed(
        "running as root, which initdb and postgres refuse: no unprivileged "
        "user ('postgres' or 'nobody') exists to run them as"
    )


def _free_port() -> int:
    """A port nobody listens on now (a server may still lose it to a race;
    starting retries with another)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((_LISTEN_HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port


@dataclass
class Node:
    name: str
    datadir: Path
    log_path: Path
    port: int = 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError as exc:
            return f"(no log: {exc})"


@dataclass
class CitusCluster:
    """A running cluster: the coordinator and its workers, on 127.0.0.1."""

    installation: Installation
    workdir: Path
    coordinator: Node
    workers: list[Node]
    user: str = "postgres"

    def uri(self, dbname: str = DATABASE, port: int | None = None) -> str:
        """Connection string of ``dbname`` on the coordinator (or ``port``)."""
        return make_conninfo(
            host=_LISTEN_HOST,
            port=str(port or self.coordinator.port),
            user=self.user,
            dbname=dbname,
            connect_timeout="10",
        )

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    def create_database(self, name: str) -> str:
        """A new database with Citus on every node, the workers registered
        with the coordinator; its coordinator's connection string.

        Citus 13 does not propagate CREATE DATABASE by default, so each node
        gets it, and the extension, of its own.
        """

        def create(node: Node) -> None:
            # FILE_COPY: a checkpoint and a copy of the template's files,
            # where the default (WAL_LOG) logs every page of the template.
            with psycopg.connect(self.uri("postgres", node.port), autocommit=True) as c:
                c.execute(
                    sql.SQL("CREATE DATABASE {} STRATEGY = FILE_COPY").format(
                        sql.Identifier(name)
                    )
                )
            with psycopg.connect(self.uri(name, node.port), autocommit=True) as c:
                c.execute("CREATE EXTENSION IF NOT EXISTS citus")

        _in_parallel(create, self.nodes)
        with psycopg.connect(self.uri(name), autocommit=True) as conn:
            conn.execute(
                "SELECT citus_set_coordinator_host(%s, %s)",
                (_LISTEN_HOST, self.coordinator.port),
            )
            for worker in self.workers:
                conn.execute(
                    "SELECT citus_add_node(%s, %s)", (_LISTEN_HOST, worker.port)
                )
        return self.uri(name)

    def create_plain_database(self, name: str) -> str:
        """A new database on the coordinator only, without Citus."""
        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.uri(name)


#: Space a session's cluster may fill (a few hundred MB: every saver of the
#: session has a schema of its own, 13 shards on the workers), with room.
_SCRATCH_NEEDED = 2 << 30


def _scratch_dir() -> str | None:
    """Where to put the nodes' data: in memory (/dev/shm) when it has room,
    else the usual temporary directory. Creating and removing thousands of
    small files (a shard is a table and its index) is then quick, even on a
    busy disk; nothing there needs to outlive the session."""
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < _SCRATCH_NEEDED:
        return None
    if not os.access("/dev/shm", os.W_OK | os.X_OK):
        return None
    return "/dev/shm"


def _in_parallel(work: Callable[[T], object], items: list[T]) -> None:
    """``work`` on each of ``items``, each on a thread of its own; raises
    the first error any of them raised."""
    with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


class _Runner:
    """Runs the server programs, as the service user when we are root."""

    def __init__(self, installation: Installation, home: Path) -> None:
        self.installation = installation
        self.user = _service_user()
        # The servers' own libpq (Citus connecting to the workers) looks for
        # client certificates under $HOME/.postgresql: not root's, which the
        # service user may not read, nor anyone's that could change them.
        self.env = {**os.environ, "HOME": str(home), "LC_ALL": "C.UTF-8"}
        self.env.pop("PGSSLCERT", None)
        self.env.pop("PGSSLKEY", None)

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        user = self.user
        return subprocess.run(
            [self.installation.program(program), *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            cwd="/",
            env=self.env,
            # Not just the uid: root's groups would stay otherwise.
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )

    def give(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def give_tree(self, top: Path) -> None:
        """:meth:`give` ``top`` and everything in it."""
        self.give(top)
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                self.give(Path(root) / name)


def _initdb(runner: _Runner, node: Node) -> None:
    out = runner.run(
        "initdb",
        "-D",
        str(node.datadir),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    )
    if out.returncode != 0:
        raise CitusFailed(f"initdb of {node.name} failed:\n{out.stdout}{out.stderr}")
    with open(node.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(_NODE_SETTINGS.format(host=_LISTEN_HOST))


def _start(runner: _Runner, node: Node, port: int) -> bool:
    """Start ``node`` on ``port``; False if another process has the port."""
    node.port = port
    out = runner.run(
        "pg_ctl",
        "-D",
        str(node.datadir),
        "-l",
        str(node.log_path),
        "-o",
        f"-p {port}",
        "-w",
        "-t",
        str(int(START_TIMEOUT)),
        "start",
    )
    if out.returncode == 0:
        return True
    log = node.log()
    if "Address already in use" in log or "could not bind" in log:
        return False
    raise CitusFailed(
        f"{node.name} did not start ({out.stdout}{out.stderr}); its log:\n{log}"
    )


def _stop(runner: _Runner, node: Node) -> None:
    if not (node.datadir / "postmaster.pid").exists():
        return
    runner.run("pg_ctl", "-D", str(node.datadir), "-m", "immediate", "-w", "stop")


def _wait_until_ready(cluster: CitusCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for node in cluster.nodes:
        while True:
            try:
                with psycopg.connect(cluster.uri("postgres", node.port)) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise CitusFailed(
                        f"{node.name} accepts no connection: {exc}; its log:\n"
                        + node.log()
                    ) from exc
                time.sleep(0.1)


@contextmanager
def run_citus_cluster(*, attempts: int = 3) -> Iterator[CitusCluster]:
    """Run a coordinator and two workers for the block, with :data:`DATABASE`.

    Raises :class:`CitusNotInstalled` when no PostgreSQL here has Citus, and
    :class:`CitusFailed` (with the node's log) when a node does not start.
    """
    installation = find_installation()
    workdir = Path(tempfile.mkdtemp(prefix="lgcp-citus-", dir=_scratch_dir()))
    runner = _Runner(installation, workdir)
    runner.give(workdir)
    nodes = [
        Node(name, workdir / name, workdir / f"{name}.log")
        for name in ("coordinator", "worker1", "worker2")
    ]
    try:
        # One initdb, copied: initdb takes the better part of a second, a
        # copy of its result a fraction of that.
        _initdb(runner, nodes[0])
        for node in nodes[1:]:
            shutil.copytree(nodes[0].datadir, node.datadir, symlinks=True)
            runner.give_tree(node.datadir)

        def start(node: Node) -> None:
            # Another process may take the port we found before the server
            # binds it: then try another.
            for _ in range(attempts):
                if _start(runner, node, _free_port()):
                    return
            raise CitusFailed(f"{node.name} found no free port; its log:\n{node.log()}")

        _in_parallel(start, nodes)
        cluster = CitusCluster(installation, workdir, nodes[0], nodes[1:])
        _wait_until_ready(cluster)
        cluster.create_database(DATABASE)
        yield cluster
    finally:
        for node in nodes:
            _stop(runner, node)
        shutil.rmtree(workdir, ignore_errors=True)


class _Shared:
    """One cluster for the whole session, however many modules ask for it:
    the first to ask starts it, the last to let go stops it. (A
    session-scoped fixture imported into two modules would be two fixtures,
    two clusters.)"""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.cluster: CitusCluster | None = None
        self.stack = ExitStack()


_shared = _Shared()


@contextmanager
def shared_citus_cluster() -> Iterator[CitusCluster]:
    """:func:`run_citus_cluster`, shared by every caller until the last ends."""
    with _shared.lock:
        if _shared.cluster is None:
            _shared.cluster = _shared.stack.enter_context(run_citus_cluster())
        _shared.users += 1
        cluster = _shared.cluster
    try:
        yield cluster
    finally:
        with _shared.lock:
            _shared.users -= 1
            if _shared.users == 0:
                _shared.cluster = None
                _shared.stack.close()


# --------------------------------------------------------------------------
# Schemas, and where a schema's shards are


_SCHEMA_SEQUENCE = iter(range(1, 1_000_000))


def new_schema_name(prefix: str = "lgcp_c") -> str:
    """A schema name not used before in this process (and short)."""
    return f"{prefix}_{os.getpid()}_{next(_SCHEMA_SEQUENCE)}"


def in_schema(uri: str, schema: str) -> str:
    """``uri`` with ``schema`` first on the search path, for code that names
    the tables unqualified (the fixtures' loaders, the integrity checks)."""
    return make_conninfo(uri, options=f"-c search_path={schema}")


#: A shard's name in the commands sent to the workers: its table's name and
#: its shard id (``checkpoints_102008``).
DISTRIBUTED_SHARD = re.compile(
    r"\b(checkpoints|checkpoint_blobs|checkpoint_writes|checkpoint_migrations)"
    r"_(\d+)\b"
)


@dataclass(frozen=True)
class Shard:
    """One shard of a schema's table: its shard group (the number of its
    hash range among its table's, from 0) and the worker holding it."""

    table: str
    group: int  # the index of its hash range; -1 for the reference table
    port: int


def shard_map(uri: str, schema: str) -> dict[int, Shard]:
    """Every shard of ``schema``'s saver tables, by shard id.

    Colocated tables split the hash space the same way, so shards with the
    same hash range (one of each table) make up one shard group: a thread's
    rows of all three tables are in one group, on one worker.
    """
    query = """
        SELECT s.shardid, c.relname, s.shardminvalue::bigint AS lo, n.nodeport
        FROM pg_dist_shard s
        JOIN pg_class c ON c.oid = s.logicalrelid
        JOIN pg_namespace ns ON ns.oid = c.relnamespace
        JOIN pg_dist_placement p ON p.shardid = s.shardid
        JOIN pg_dist_node n ON n.groupid = p.groupid
        WHERE ns.nspname = %s
        ORDER BY c.relname, lo NULLS FIRST
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute(query, (schema,)).fetchall()
    shards: dict[int, Shard] = {}
    ranges: dict[str, list[int]] = {}
    for _, table, lo, _ in rows:
        if lo is not None and lo not in ranges.setdefault(table, []):
            ranges[table].append(lo)
    for shard_id, table, lo, port in rows:
        group = -1 if lo is None else ranges[table].index(lo)
        # A reference table has a placement on every node: keep one.
        shards.setdefault(int(shard_id), Shard(table, group, int(port)))
    return shards


def thread_group(uri: str, schema: str, thread_id: str) -> int:
    """The shard group ``thread_id``'s rows are in."""
    with psycopg.connect(uri, autocommit=True) as conn:
        (shard_id,) = conn.execute(
            "SELECT get_shard_id_for_distribution_column(%s::regclass, %s::text)",
            (f"{schema}.checkpoints", thread_id),
        ).fetchone()
    return shard_map(uri, schema)[int(shard_id)].group


def threads_in_groups(
    uri: str, schema: str, prefix: str, per_group: int = 1
) -> dict[int, list[str]]:
    """Thread ids ``prefix-N``, ``per_group`` in each shard group."""
    groups: dict[int, list[str]] = {g: [] for g in range(SHARD_COUNT)}
    shards = shard_map(uri, schema)
    with psycopg.connect(uri, autocommit=True) as conn:
        for n in range(10_000):
            if all(len(ids) >= per_group for ids in groups.values()):
                return groups
            thread_id = f"{prefix}-{n}"
            (shard_id,) = conn.execute(
                "SELECT get_shard_id_for_distribution_column(%s::regclass, %s::text)",
                (f"{schema}.checkpoints", thread_id),
            ).fetchone()
            ids = groups[shards[int(shard_id)].group]
            if len(ids) < per_group:
                ids.append(thread_id)
    raise AssertionError(f"no {per_group} thread ids per shard group: {groups}")


# --------------------------------------------------------------------------
# Watching what the coordinator sends to the workers


#: Commands that run no query on a shard: transaction control, and Citus's
#: own bookkeeping of distributed transactions.
_CONTROL = re.compile(
    r"^\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|"
    r"PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED|"
    r"SELECT assign_distributed_transaction_id)",
    re.IGNORECASE,
)
_TWO_PHASE = re.compile(r"\b(PREPARE TRANSACTION|COMMIT PREPARED)\b", re.IGNORECASE)
_SERVER = re.compile(r"on server \S+@[^:\s]+:(\d+) connectionId: (\d+)")
_BEGIN = re.compile(r"^\s*(BEGIN|START TRANSACTION)\b", re.IGNORECASE)
_END = re.compile(r"^\s*(COMMIT|ROLLBACK|PREPARE TRANSACTION)\b(?! PREPARED)", re.I)
_TRANSACTION_ID = re.compile(r"assign_distributed_transaction_id\(([^)]*)\)")


@dataclass(frozen=True)
class RemoteCommand:
    text: str
    port: int | None  # the node it was sent to; None when run locally
    connection: int | None  # Citus's id of the connection it went through


class RemoteCommandLog:
    """The commands a connection's queries made Citus send to other nodes.

    ``citus.log_remote_commands`` makes the coordinator report each command
    it sends (and each shard query it runs locally) as a NOTICE to the
    client, with the node in its detail; a notice handler collects them.
    """

    def __init__(self) -> None:
        self.commands: list[RemoteCommand] = []

    ENABLE = "SET citus.log_remote_commands = on"

    def handler(self, diag: psycopg.errors.Diagnostic) -> None:
        message = diag.message_primary or ""
        for prefix in ("issuing ", "executing the command locally: "):
            if message.startswith(prefix):
                found = _SERVER.search(diag.message_detail or "")
                port, connection = (
                    (int(found.group(1)), int(found.group(2)))
                    if found
                    else (None, None)
                )
                text = message[len(prefix) :]
                self.commands.append(RemoteCommand(text, port, connection))

    def take(self) -> list[RemoteCommand]:
        """The commands logged since the last call."""
        taken, self.commands = self.commands, []
        return taken


def watch(conn: psycopg.Connection[Any]) -> RemoteCommandLog:
    """Log, from now on, what ``conn``'s queries send to the workers."""
    log = RemoteCommandLog()
    conn.add_notice_handler(log.handler)
    conn.execute(RemoteCommandLog.ENABLE)
    if not conn.autocommit:
        conn.commit()
    return log


async def awatch(conn: psycopg.AsyncConnection[Any]) -> RemoteCommandLog:
    """:func:`watch` for an async connection."""
    log = RemoteCommandLog()
    conn.add_notice_handler(log.handler)
    await conn.execute(RemoteCommandLog.ENABLE)
    if not conn.autocommit:
        await conn.commit()
    return log


@dataclass
class Routing:
    """Where one operation's commands went."""

    groups: set[int]  # shard groups of the distributed tables it touched
    reference: bool  # whether it touched the reference table
    ports: set[int]  # the nodes it sent commands to
    two_phase: bool  # whether it committed with PREPARE / COMMIT PREPARED
    unknown: set[int]  # shard ids not of this schema (never expected)
    commands: list[RemoteCommand]
    #: Commands that ran something other than transaction control without
    #: naming a shard of ours (intermediate results, say).
    other: list[str] = field(default_factory=list)

    @property
    def queries(self) -> list[str]:
        return [c.text for c in self.commands if not _CONTROL.match(c.text)]


def routing(commands: list[RemoteCommand], shards: dict[int, Shard]) -> Routing:
    """Which shard groups and nodes ``commands`` touched, and how they
    committed."""
    groups: set[int] = set()
    unknown: set[int] = set()
    other: list[str] = []
    reference = False
    for command in commands:
        if _CONTROL.match(command.text):
            continue
        named = [int(m.group(2)) for m in DISTRIBUTED_SHARD.finditer(command.text)]
        if not named:
            other.append(command.text)
        for shard_id in named:
            shard = shards.get(shard_id)
            if shard is None:
                unknown.add(shard_id)
            elif shard.group < 0:
                reference = True
            else:
                groups.add(shard.group)
    return Routing(
        groups=groups,
        reference=reference,
        ports={c.port for c in commands if c.port is not None},
        two_phase=any(_TWO_PHASE.search(c.text) for c in commands),
        unknown=unknown,
        commands=commands,
        other=other,
    )


def transactions(
    commands: list[RemoteCommand], shards: dict[int, Shard]
) -> list[Routing]:
    """The routing of each transaction the workers ran for ``commands``.

    A command outside BEGIN ... COMMIT is a transaction of its own. The
    commands between BEGIN and its end on one connection are one; so are
    those of several connections whose BEGIN names the same distributed
    transaction (``assign_distributed_transaction_id``): the coordinator's
    one transaction, spread over several connections. Transactions that ran
    no query (a lone COMMIT PREPARED) are left out.
    """
    current: dict[int | None, object] = {}
    grouped: dict[object, list[RemoteCommand]] = {}
    for number, command in enumerate(commands):
        if _BEGIN.match(command.text):
            found = _TRANSACTION_ID.search(command.text)
            key: object = ("distributed", found.group(1)) if found else number
            current[command.connection] = key
        key = current.get(command.connection, number)
        grouped.setdefault(key, []).append(command)
        if _END.match(command.text):
            current.pop(command.connection, None)
    found_routes = [routing(group, shards) for group in grouped.values()]
    return [r for r in found_routes if r.queries]


# --------------------------------------------------------------------------
# Savers on distributed tables


@contextmanager
def distributed_saver(
    kind: str, uri: str, schema: str | None = None
) -> Iterator[PostgresSaver]:
    """A sync saver of ``kind`` (see ``tests.savers``) on a schema of its own
    (``schema``, or a new one), set up and then distributed."""
    schema = schema or new_schema_name()
    with sync_saver(kind, uri, schema=schema) as saver:
        saver.setup()
        distribute_tables(uri, schema=schema, shard_count=SHARD_COUNT)
        yield saver


@asynccontextmanager
async def adistributed_saver(
    kind: str, uri: str, schema: str | None = None
) -> AsyncIterator[AsyncPostgresSaver]:
    """:func:`distributed_saver` for the async saver (and distribution)."""
    schema = schema or new_schema_name()
    async with async_saver(kind, uri, schema=schema) as saver:
        await saver.setup()
        await adistribute_tables(uri, schema=schema, shard_count=SHARD_COUNT)
        yield saver
