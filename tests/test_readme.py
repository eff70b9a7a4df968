"""Every Python example in README.md and in the pages under docs/ runs against
a real database and does what the page says it does.

Each ```python block is run with ``exec`` in a fresh namespace, with the
pages' example URI swapped for this test's database. A check then looks at
what the block left behind: in the database, read back through a saver of
its own, and in the block's namespace. A block that prints shows its output
in ``# -> ...`` comments, which must match what it printed line for line.

Blocks are told apart by a signature, a snippet only that block contains, and
each check names the page its block is on. Every block must match exactly one
check, on that page, and every check exactly one block, so a new example
without a check fails the suite instead of going untested, and a block moved
to another page takes its check along.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import io
import re
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore
from tests.stores import require_pgvector

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

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


def _pages() -> list[str]:
    """README.md and every Markdown page under docs/, relative to the root."""
    docs = sorted(path.relative_to(ROOT).as_posix() for path in DOCS.rglob("*.md"))
    return [README.relative_to(ROOT).as_posix(), *docs]


#: The pages whose examples run, as paths relative to the repository root.
PAGES = _pages()


def _read(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


class Block(NamedTuple):
    """A ```python block of a page."""

    page: str
    number: int  # its place among the page's python blocks, from 1
    code: str

    def __str__(self) -> str:
        return f"{self.page} (python block {self.number})"


def _python_blocks(page: str) -> list[Block]:
    matches = _PYTHON_BLOCK.finditer(_read(page))
    return [Block(page, n, match.group(1)) for n, match in enumerate(matches, 1)]


BLOCKS = [block for page in PAGES for block in _python_blocks(page)]


class Check(NamedTuple):
    page: str
    signature: str
    run: Callable[[Block, str, pytest.MonkeyPatch], None]


CHECKS: dict[str, Check] = {}


def check(name: str, signature: str, *, page: str) -> Callable[[Any], Any]:
    """Register ``fn`` as the check of the block on ``page`` containing
    ``signature``."""

    def register(fn: Callable[[Block, str, pytest.MonkeyPatch], None]) -> Any:
        CHECKS[name] = Check(page, signature, fn)
        return fn

    return register


def _matching_checks(block: Block) -> list[str]:
    return [name for name, c in CHECKS.items() if c.signature in block.code]


def _block_id(block: Block) -> str:
    names = _matching_checks(block)
    name = names[0] if len(names) == 1 else "unidentified"
    return f"{block.page}-block{block.number}-{name}"


# The blocks that run_block has executed in this session.
_EXECUTED: set[Block] = set()


def run_block(
    block: Block,
    db_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    uri_from_env: bool = False,
) -> dict[str, Any]:
    """Run a page's block against ``db_uri`` and return its namespace.

    The example URI in the block becomes ``db_uri``; with ``uri_from_env`` it
    becomes an unreachable one instead and ``db_uri`` goes into the ``DB_URI``
    environment variable, which the block must read. What the block prints
    must equal its ``# -> `` comments.
    """
    assert block in BLOCKS, f"{block} is not a block of the pages"
    assert EXAMPLE_URI in block.code, (
        f"{block} does not use the example URI {EXAMPLE_URI}, so the test "
        "cannot point it at the test database"
    )
    if uri_from_env:
        monkeypatch.setenv("DB_URI", db_uri)
        code = block.code.replace(EXAMPLE_URI, repr(UNREACHABLE_URI))
    else:
        code = block.code.replace(EXAMPLE_URI, repr(db_uri))
    leftover = _URI_SCHEME.findall(code.replace(db_uri, ""))
    assert not leftover, (
        f"{block} names another database URI; it would not run against the "
        "test database"
    )
    # A module of its own, registered as a script's would be, so that type
    # hints in the block resolve against its globals.
    slug = re.sub(r"\W", "_", block.page.removesuffix(".md"))
    module = types.ModuleType(f"example_{slug}_block_{block.number}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    # dont_inherit: this file's `from __future__ import annotations` must not
    # leak into the block.
    compiled = compile(code, str(block), "exec", dont_inherit=True)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compiled, namespace)
    _EXECUTED.add(block)
    assert output.getvalue().splitlines() == expected_output(block.code), (
        f"{block} printed something other than its '{_OUTPUT_COMMENT}' comments say"
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


# -- the checks, one per block, grouped by page -------------------------------
#
# -- README.md


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


@check("sync-usage", "checkpointer.put(write_config", page="README.md")
def check_sync_usage(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_block(block, db_uri, monkeypatch)
    _assert_usage_checkpoint(db_uri)


@check("async-usage", "await checkpointer.aput(write_config", page="README.md")
def check_async_usage(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "asyncio.run(" in block.code
    run_block(block, db_uri, monkeypatch)
    _assert_usage_checkpoint(db_uri)


@check("graph", "graph.invoke(", page="README.md")
def check_graph(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_block(block, db_uri, monkeypatch)
    printed = expected_output(block.code)
    assert len(printed) == 1, "the graph example should show the state it prints"
    expected = ast.literal_eval(printed[0])
    assert expected["messages"], "the example's state should not be empty"
    # The state the README shows, read back by a fresh saver on a new connection.
    with PostgresSaver.from_conn_string(db_uri) as saver:
        graph = namespace["builder"].compile(checkpointer=saver)
        snapshot = graph.get_state(namespace["config"])
    assert snapshot.values == expected
    assert snapshot.next == ()


@check("connections", "from psycopg_pool import ConnectionPool", page="README.md")
def check_connections(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
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


@check("fastapi", "FastAPI(lifespan=lifespan)", page="README.md")
def check_fastapi(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
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


@check("readme-retention", "thirty_days = 30 * 24 * 60", page="README.md")
def check_readme_retention(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(db_uri) as conn:
        conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) VALUES "
            "('old', '1', '{\"ts\": \"2020-01-01T00:00:00+00:00\"}'), "
            "('new', '1', jsonb_build_object('ts', now()::text))"
        )
    run_block(block, db_uri, monkeypatch)
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute("SELECT thread_id FROM checkpoints").fetchall()
    # The sweep found the thread idle for 30 days, and only that one.
    assert rows == [("new",)]


# -- docs/retention.md


@check("retention", "checkpointer.prune(", page="docs/retention.md")
def check_retention(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_block(block, db_uri, monkeypatch)
    # The example ends by deleting everything it made: nothing may be left over.
    with psycopg.connect(db_uri) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count == 0, f"{table} still holds {count} rows"


@check("retention_policy", "saver.sweep()", page="docs/retention.md")
def check_retention_policy(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_block(block, db_uri, monkeypatch)
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            "SELECT thread_id, count(*) FROM checkpoints GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("alice", 2), ("bob", 2)]
    # The sweeper the block started ended with its block.
    assert not [t for t in threading.enumerate() if "retention-sweeper" in t.name]


# -- docs/production.md


@check("production", 'schema="tenant_a"', page="docs/production.md")
def check_production(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
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


# -- the store (README.md and docs/store.md)


@check("store", 'store.list_namespaces(prefix=("users",))', page="README.md")
def check_store(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_block(block, db_uri, monkeypatch)
    with PostgresStore.from_conn_string(db_uri) as store:
        item = store.get(("users", "alice"), "drink")
    assert item is not None and item.value == {"text": "oat milk coffee", "cups": 2.5}


@check("store-semantic", 'query="coffee"', page="docs/store.md")
def check_store_semantic(
    block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_pgvector(db_uri)
    namespace = run_block(block, db_uri, monkeypatch)
    with psycopg.connect(db_uri) as conn:
        rows = conn.execute(
            "SELECT key, field_name FROM store_vectors ORDER BY key"
        ).fetchall()
        (index,) = conn.execute(
            "SELECT indexdef FROM pg_indexes "
            "WHERE indexname = 'store_vectors_embedding_idx'"
        ).fetchone()
    # index=False stored no vector for item 3; the index is HNSW.
    assert rows == [("1", "text"), ("2", "text")]
    assert "hnsw" in index
    assert namespace["best"].score > 0


@check("store-ttl", "store.start_ttl_sweeper()", page="docs/store.md")
def check_store_ttl(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_block(block, db_uri, monkeypatch)
    assert namespace["sweeper"].done()  # stopped by the block
    with psycopg.connect(db_uri) as conn:
        rows = dict(
            conn.execute(
                "SELECT key, extract(epoch FROM expires_at - updated_at) FROM store"
            ).fetchall()
        )
    assert rows["s1"] == pytest.approx(86400, abs=1)
    assert rows["s2"] == pytest.approx(30, abs=1)
    assert rows["pinned"] is None


# -- tests -------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=_block_id)
def test_example(block: Block, db_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = _matching_checks(block)
    assert len(names) == 1, (
        f"{block} should match exactly one check in {__name__}, but matches "
        f"{names or 'none'}:\n{block.code}"
    )
    name = names[0]
    assert CHECKS[name].page == block.page, (
        f"the check {name!r} is for a block on {CHECKS[name].page}, but its block "
        f"is {block}: move the check along with its block"
    )
    CHECKS[name].run(block, db_uri, monkeypatch)
    assert block in _EXECUTED, f"the check {name!r} did not run its block"


@pytest.mark.parametrize("page", PAGES)
def test_every_python_fence_is_run(page: str) -> None:
    fences = _ANY_PYTHON_FENCE.findall(_read(page))
    blocks = [block for block in BLOCKS if block.page == page]
    assert len(fences) == len(blocks), (
        f"{page} opens {len(fences)} Python code fences but {len(blocks)} are "
        "plain top-level ```python blocks; only those are run, so write every "
        "example that way"
    )


def test_every_python_block_is_run() -> None:
    assert DOCS.is_dir(), f"{DOCS} is missing"
    assert len(BLOCKS) == len(CHECKS) == 12
    matched = sorted(name for block in BLOCKS for name in _matching_checks(block))
    # One check per block and one block per check: test_example runs each.
    assert matched == sorted(CHECKS)
    # Each page has as many blocks as checks that say they are for it.
    blocks_per_page = collections.Counter(block.page for block in BLOCKS)
    checks_per_page = collections.Counter(c.page for c in CHECKS.values())
    assert blocks_per_page == checks_per_page
    codes = [block.code for block in BLOCKS]
    assert len(set(codes)) == len(codes), "two python blocks are identical"


# -- links between the pages -------------------------------------------------

_FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without its code blocks."""
    return _FENCED.sub("", text)


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    anchors: set[str] = set()
    for heading in _HEADING.findall(_prose(text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page: str) -> None:
    """A link to a file of the repository, or to a heading, finds it."""
    broken = []
    for target in _LINK.findall(_CODE_SPAN.sub("", _prose(_read(page)))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        linked = (ROOT / page).parent / path if path else ROOT / page
        if not linked.resolve().is_relative_to(ROOT) or not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md":
            if anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{target} (no such heading)")
    assert not broken, f"{page} has broken links: {broken}"
