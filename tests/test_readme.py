"""Every Python example in README.md runs against a real database and does what
the README says it does.

Each ```python block is run with ``exec`` in a fresh namespace, with the
README's example URI swapped for this test's database. A check then looks at
what the block left behind: in the database, read back through a saver of
its own, and in the block's namespace. A block that prints shows its output
in ``# -> ...`` comments, which must match what it printed line for line.

Blocks are told apart by a signature, a snippet only that block contains.
Every block must match exactly one check, and every check exactly one block,
so a new example without a check fails the suite instead of going untested.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from langgraph.checkpoint.postgres import PostgresSaver

README = Path(__file__).resolve().parent.parent / "README.md"

#: The URI the examples connect to, quoted as it appears in them.
EXAMPLE_URI = '"postgres://postgres:postgres@localhost:5432/postgres?sslmode=disable"'

#: Stands in for the example URI where the URI must come from the environment,
#: so that a block that ignores the environment fails instead of reaching some
#: server on localhost.
UNREACHABLE_URI = "host=/nonexistent/readme-test dbname=set_DB_URI_instead"

_PYTHON_BLOCK = re.compile(
    r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)
# Any fence that opens Python code, however written (indented, ```py, ...), to
# catch blocks that the stricter pattern above would silently miss.
_ANY_PYTHON_FENCE = re.compile(
    r"^[ \t>]*(?:```|~~~)[ \t]*(?:python3?|py|pycon)\b", re.MULTILINE | re.IGNORECASE
)
_URI_SCHEME = re.compile(r"postgres(?:ql)?://")
_OUTPUT_COMMENT = "# -> "

CHECKPOINT_ID = "1ef4f797-8335-6428-8001-8a1503f9b875"


def _python_blocks(text: str) -> list[str]:
    return [match.group(1) for match in _PYTHON_BLOCK.finditer(text)]


BLOCKS = _python_blocks(README.read_text(encoding="utf-8"))


class Check(NamedTuple):
    signature: str
    run: Callable[[str, str, pytest.MonkeyPatch], None]


CHECKS: dict[str, Check] = {}


def check(name: str, signature: str) -> Callable[[Any], Any]:
    """Register ``fn`` as the check of the README block containing ``signature``."""

    def register(fn: Callable[[str, str, pytest.MonkeyPatch], None]) -> Any:
        CHECKS[name] = Check(signature, fn)
        return fn

    return register


def _matching_checks(block: str) -> list[str]:
    return [name for name, c in CHECKS.items() if c.signature in block]


def _block_id(index: int) -> str:
    names = _matching_checks(BLOCKS[index])
    return f"block{index + 1}-{names[0] if len(names) == 1 else 'unidentified'}"


# Indices of the blocks that run_block has executed in this session.
_EXECUTED: set[int] = set()


def run_block(
    block: str,
    db_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    uri_from_env: bool = False,
) -> dict[str, Any]:
    """Run a README block against ``db_uri`` and return its namespace.

    The example URI in the block becomes ``db_uri``; with ``uri_from_env`` it
    becomes an unreachable one instead and ``db_uri`` goes into the ``DB_URI``
    environment variable, which the block must read. What the block prints
    must equal its ``# -> `` comments.
    """
    index = BLOCKS.index(block)
    assert EXAMPLE_URI in block, (
        f"README python block {index + 1} does not use the example URI "
        f"{EXAMPLE_URI}, so the test cannot point it at the test database"
    )
    if uri_from_env:
        monkeypatch.setenv("DB_URI", db_uri)
        code = block.replace(EXAMPLE_URI, repr(UNREACHABLE_URI))
    else:
        code = block.replace(EXAMPLE_URI, repr(db_uri))
    leftover = _URI_SCHEME.findall(code.replace(db_uri, ""))
    assert not leftover, (
        f"README python block {index + 1} names another database URI; it would "
        "not run against the test database"
    )
    # A module of its own, registered as a script's would be, so that type
    # hints in the block resolve against its globals.
    module = types.ModuleType(f"readme_block_{index + 1}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    # dont_inherit: this file's `from __future__ import annotations` must not
    # leak into the block.
    compiled = compile(
        code, f"README.md (python block {index + 1})", "exec", dont_inherit=True
    )
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compiled, namespace)
    _EXECUTED.add(index)
    assert output.getvalue().splitlines() == expected_output(block), (
        f"README python block {index + 1} printed something other than its "
        f"'{_OUTPUT_COMMENT}' comments say"
    )
    return namespace


def expected_output(block: str) -> list[str]:
    """The lines a block's ``# -> ...`` comments say it prints, in order."""
    return [
        line.strip()[len(_OUTPUT_COMMENT) :]
        for line in block.splitlines()
        if line.strip().startswith(_OUTPUT_COMMENT)
    ]


def read_back(db_uri: str, thread_id: str) -> Any:
    """The latest checkpoint of ``thread_id``, through a saver of our own."""
    with PostgresSaver.from_conn_string(db_uri) as saver:
        return saver.get({"configurable": {"thread_id": thread_id}})


def list_ids(db_uri: str, thread_id: str) -> list[str]:
    with PostgresSaver.from_conn_string(db_uri) as saver:
        return [
            t.checkpoint["id"]
            for t in saver.list({"configurable": {"thread_id": thread_id}})
        ]


# -- the checks, one per README block ----------------------------------------


def _assert_usage_checkpoint(db_uri: str) -> None:
    checkpoint = read_back(db_uri, "1")
    assert checkpoint is not None, "the example's checkpoint was not stored"
    assert checkpoint["id"] == CHECKPOINT_ID
    assert checkpoint["channel_values"] == {"my_key": "meow", "node": "node"}
    assert checkpoint["channel_versions"] == {
        "__start__": 2,
        "my_key": 3,
        "start:node": 3,
        "node": 3,
    }
    assert list_ids(db_uri, "1") == [CHECKPOINT_ID]


@check("sync-usage", "checkpointer.put(write_config")
def check_sync_usage(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_block(block, db_uri, monkeypatch)
    _assert_usage_checkpoint(db_uri)


@check("async-usage", "await checkpointer.aput(write_config")
def check_async_usage(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "asyncio.run(" in block
    run_block(block, db_uri, monkeypatch)
    _assert_usage_checkpoint(db_uri)


@check("graph", "graph.invoke(")
def check_graph(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_block(block, db_uri, monkeypatch)
    printed = expected_output(block)
    assert len(printed) == 1, "the graph example should show the state it prints"
    expected = ast.literal_eval(printed[0])
    assert expected["messages"], "the example's state should not be empty"
    # The state the README shows, read back by a fresh saver on a new connection.
    with PostgresSaver.from_conn_string(db_uri) as saver:
        graph = namespace["builder"].compile(checkpointer=saver)
        snapshot = graph.get_state(namespace["config"])
    assert snapshot.values == expected
    assert snapshot.next == ()


@check("connections", "from psycopg_pool import ConnectionPool")
def check_connections(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Give half of the threads the block reads (user-0, user-2, ...) a
    # checkpoint, so that what it reads tells stored from missing.
    stored = {f"user-{n}": {"n": n} for n in range(0, 8, 2)}
    with PostgresSaver.from_conn_string(db_uri) as saver:
        for thread_id, values in stored.items():
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = values
            saver.put({"configurable": {"thread_id": thread_id}}, checkpoint, {}, {})

    namespace = run_block(block, db_uri, monkeypatch)

    thread_ids = [c["configurable"]["thread_id"] for c in namespace["configs"]]
    expected = [stored.get(thread_id) for thread_id in thread_ids]
    assert any(e is None for e in expected) and any(e for e in expected), (
        "the connections example should read both stored and missing threads: "
        f"it reads {thread_ids}"
    )
    latest = namespace["latest"]
    assert [t and t.checkpoint["channel_values"] for t in latest] == expected
    for name in ("first", "first_again"):
        found = namespace[name]
        assert found is not None
        assert found.checkpoint["channel_values"] == expected[0]
    # The pipeline variant really ran in pipeline mode.
    assert namespace["checkpointer"].pipe is not None
    # The block's own with-blocks closed what they opened.
    assert namespace["pool"].closed
    assert namespace["conn"].closed


@check("fastapi", "FastAPI(lifespan=lifespan)")
def check_fastapi(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    namespace = run_block(block, db_uri, monkeypatch, uri_from_env=True)
    with TestClient(namespace["app"]) as client:
        first = client.post("/threads/t-1/messages", json={"text": "hi"})
        second = client.post("/threads/t-1/messages", json={"text": "again"})
        other = client.post("/threads/t-2/messages", json={"text": "other"})
        state = client.get("/threads/t-1")
        unknown = client.get("/threads/never-used")
    for response in (first, second, other, state, unknown):
        assert response.status_code == 200, response.text
    assert first.json() == {"messages": ["hi", "echo: hi"]}
    # Two requests on one thread accumulate its state; another thread is apart.
    assert second.json() == {"messages": ["hi", "echo: hi", "again", "echo: again"]}
    assert other.json() == {"messages": ["other", "echo: other"]}
    assert state.json() == second.json()
    assert unknown.json() == {"messages": []}
    # It was the test database (from DB_URI) that the app wrote to.
    checkpoint = read_back(db_uri, "t-1")
    assert checkpoint is not None
    assert checkpoint["channel_values"]["messages"] == second.json()["messages"]


@check("retention", "checkpointer.prune(")
def check_retention(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_block(block, db_uri, monkeypatch)
    # The example ends by deleting everything it made: nothing may be left over.
    with psycopg.connect(db_uri) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count == 0, f"{table} still holds {count} rows"


@check("production", 'schema="tenant_a"')
def check_production(block: str, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_block(block, db_uri, monkeypatch)
    assert namespace["checkpointer"].timeout == 30
    # Everything went into the named schema, nothing into the default one.
    with psycopg.connect(db_uri) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM tenant_a.checkpoints WHERE thread_id = 'customer-42'"
        ).fetchone()
        (public,) = conn.execute("SELECT count(*) FROM public.checkpoints").fetchone()
    assert stored > 0
    assert public == 0


# -- tests -------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=_block_id)
def test_readme_block(index: int, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    block = BLOCKS[index]
    names = _matching_checks(block)
    assert len(names) == 1, (
        f"README python block {index + 1} should match exactly one check in "
        f"{__name__}, but matches {names or 'none'}:\n{block}"
    )
    CHECKS[names[0]].run(block, db_uri, monkeypatch)
    assert index in _EXECUTED, f"the check {names[0]!r} did not run its block"


def test_every_python_block_is_run() -> None:
    text = README.read_text(encoding="utf-8")
    fences = _ANY_PYTHON_FENCE.findall(text)
    assert len(fences) == len(BLOCKS), (
        f"README.md opens {len(fences)} Python code fences but {len(BLOCKS)} are "
        "plain top-level ```python blocks; only those are run, so write every "
        "example that way"
    )
    assert len(BLOCKS) == len(CHECKS) == 7
    matched = sorted(name for block in BLOCKS for name in _matching_checks(block))
    # One check per block and one block per check: test_readme_block runs each.
    assert matched == sorted(CHECKS)
    assert len(set(BLOCKS)) == len(BLOCKS), "two README blocks are identical"
