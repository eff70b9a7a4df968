"""Hostile and odd input: every value either round-trips unchanged or is refused.

A refusal is a ``ValueError`` that says what is wrong, raised before anything
reaches the database: the three tables hold exactly what they held before
(read back over a separate plain connection) and the saver keeps working.

Every scenario is written once, as a coroutine against :class:`Api`, and runs
for sync savers (called directly) and async savers (awaited) alike; the test
id names the connection kind (``a...`` kinds are async).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tests.savers import ASYNC_KINDS, SYNC_KINDS, async_saver, sync_saver

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

#: Refusals depend on how a connection recovers (pipelines, transactions), so
#: they run on every kind; value round-trips on one sync and one async kind
#: with a pipeline and one each without.
ALL_KINDS = SYNC_KINDS + ASYNC_KINDS
VALUE_KINDS = ["pool-defaults", "pipeline", "aconn", "apipeline"]
#: 50 MB values: one sync pool and one async kind, to keep memory sane.
LARGE_KINDS = ["pool", "apool"]


# -- a sync or async saver behind one awaitable interface ----------------------


class Api:
    """Calls a :class:`PostgresSaver` directly or an async saver's ``a*`` methods."""

    def __init__(self, saver: PostgresSaver | AsyncPostgresSaver) -> None:
        self.saver = saver
        self.is_async = isinstance(saver, AsyncPostgresSaver)

    def next_version(self, current: str | None = None) -> str:
        return self.saver.get_next_version(current)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            if method == "list":
                return [t async for t in self.saver.alist(*args, **kwargs)]
            return await getattr(self.saver, "a" + method)(*args, **kwargs)
        result = getattr(self.saver, method)(*args, **kwargs)
        return list(result) if method == "list" else result

    async def put(self, *args: Any) -> RunnableConfig:
        return await self._call("put", *args)

    async def put_writes(self, *args: Any) -> None:
        await self._call("put_writes", *args)

    async def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._call("get_tuple", config)

    async def list(
        self, config: RunnableConfig | None, **kwargs: Any
    ) -> list[CheckpointTuple]:
        return await self._call("list", config, **kwargs)

    async def delete_thread(self, thread_id: Any) -> None:
        await self._call("delete_thread", thread_id)

    async def copy_thread(self, source: Any, target: Any) -> None:
        await self._call("copy_thread", source, target)

    async def prune(self, thread_ids: list[Any], **kwargs: Any) -> None:
        await self._call("prune", thread_ids, **kwargs)

    async def delete_for_runs(self, run_ids: list[Any]) -> None:
        await self._call("delete_for_runs", run_ids)


async def _open(kind: str, uri: str) -> AsyncIterator[Api]:
    if kind in SYNC_KINDS:
        with sync_saver(kind, uri) as saver:
            yield Api(saver)
    else:
        async with async_saver(kind, uri) as asaver:
            yield Api(asaver)


@pytest.fixture(params=ALL_KINDS)
async def api(request: pytest.FixtureRequest, db_uri: str) -> AsyncIterator[Api]:
    async for a in _open(request.param, db_uri):
        yield a


@pytest.fixture(params=VALUE_KINDS)
async def vapi(request: pytest.FixtureRequest, db_uri: str) -> AsyncIterator[Api]:
    async for a in _open(request.param, db_uri):
        yield a


@pytest.fixture(params=LARGE_KINDS)
async def large_api(request: pytest.FixtureRequest, db_uri: str) -> AsyncIterator[Api]:
    async for a in _open(request.param, db_uri):
        yield a


# -- helpers ---------------------------------------------------------------------


def _config(thread_id: Any, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _thread(thread_id: Any) -> Any:
    """A config naming only a thread: every namespace of it."""
    return {"configurable": {"thread_id": thread_id}}


def _with(config: RunnableConfig, **changes: Any) -> Any:
    return {"configurable": {**config["configurable"], **changes}}


def _checkpoint(
    api: Api,
    values: dict[str, Any],
    *,
    checkpoint_id: str | None = None,
    versions: dict[str, str] | None = None,
) -> Checkpoint:
    """A checkpoint holding ``values``, each at a fresh version unless given."""
    checkpoint = empty_checkpoint()
    if checkpoint_id is not None:
        checkpoint["id"] = checkpoint_id
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = (
        {ch: api.next_version() for ch in values} if versions is None else versions
    )
    return checkpoint


def _dump(uri: str) -> dict[str, list[str]]:
    """Every row of the three tables, as text, read over a plain connection."""
    with psycopg.connect(uri) as conn:
        return {
            table: [
                r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1")
            ]
            for table in TABLES
        }


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, floats keeping their sign, types exact."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


SEED_THREAD = "seed"
SEED_VALUES = {"text": "hello", "blob": b"\x00seed"}


async def _seed(api: Api) -> RunnableConfig:
    """Put one checkpoint with an inline value, a blob and writes; return its config."""
    checkpoint = _checkpoint(api, SEED_VALUES)
    config = await api.put(
        _config(SEED_THREAD),
        checkpoint,
        {"source": "input", "step": 1, "run_id": "seed-run"},
        dict(checkpoint["channel_versions"]),
    )
    await api.put_writes(config, [("text", "w"), ("blob", b"w")], "seed-task", "p")
    return config


async def _assert_refused(
    api: Api,
    db_uri: str,
    attempt: Callable[[Api, RunnableConfig], Awaitable[Any]],
    words: tuple[str, ...],
) -> None:
    """``attempt`` raises a ValueError naming ``words``; nothing changes."""
    seed = await _seed(api)
    before = _dump(db_uri)
    with pytest.raises(ValueError) as info:
        await attempt(api, seed)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert _dump(db_uri) == before
    # The refusal left the saver (its connection, pipeline, pool) usable.
    loaded = await api.get_tuple(seed)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == SEED_VALUES
    assert sorted(loaded.pending_writes or []) == [
        ("seed-task", "blob", b"w"),
        ("seed-task", "text", "w"),
    ]


def _put(
    api: Api,
    config: RunnableConfig,
    *,
    values: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
    extra_versions: dict[str, str] | None = None,
    extra_new_versions: dict[str, str] | None = None,
) -> Awaitable[RunnableConfig]:
    """A put with an inline value and a blob, so a partial write would show."""
    values = {"text": "new", "blob": b"new"} if values is None else values
    checkpoint = _checkpoint(api, values, checkpoint_id=checkpoint_id)
    new_versions = dict(checkpoint["channel_versions"])
    checkpoint["channel_versions"].update(extra_versions or {})
    new_versions.update(extra_new_versions or {})
    metadata = {"source": "loop", "step": 2} if metadata is None else metadata
    return api.put(config, checkpoint, metadata, new_versions)


def _writes(
    api: Api,
    config: RunnableConfig,
    *,
    channel: str = "text",
    task_id: str = "task",
    task_path: str = "",
) -> Awaitable[None]:
    return api.put_writes(config, [("blob", b"x"), (channel, "v")], task_id, task_path)


# -- NUL in identifiers and names: refused ----------------------------------------

Attempt = Callable[[Api, RunnableConfig], Awaitable[Any]]

NUL_NAME_CASES: dict[str, tuple[str, Attempt]] = {
    "put-thread_id": ("thread_id", lambda a, s: _put(a, _config("t\x00"))),
    "put-checkpoint_ns": (
        "checkpoint_ns",
        lambda a, s: _put(a, _config(SEED_THREAD, "ns\x00")),
    ),
    "put-checkpoint_id": (
        "checkpoint_id",
        lambda a, s: _put(a, s, checkpoint_id="1ef\x00id"),
    ),
    "put-parent-checkpoint_id": (
        "checkpoint_id",
        lambda a, s: _put(a, _with(s, checkpoint_id="parent\x00")),
    ),
    "put-channel-inline-value": (
        "channel",
        lambda a, s: _put(a, s, values={"text": "new", "c\x00h": "inline"}),
    ),
    "put-channel-blob-value": (
        "channel",
        lambda a, s: _put(a, s, values={"blob": b"new", "c\x00h": b"blob"}),
    ),
    "put-channel_versions-key": (
        "channel",
        lambda a, s: _put(a, s, extra_versions={"c\x00h": a.next_version()}),
    ),
    "put-new_versions-key": (
        "channel",
        lambda a, s: _put(a, s, extra_new_versions={"c\x00h": a.next_version()}),
    ),
    "put_writes-thread_id": (
        "thread_id",
        lambda a, s: _writes(a, _with(s, thread_id="seed\x00")),
    ),
    "put_writes-checkpoint_ns": (
        "checkpoint_ns",
        lambda a, s: _writes(a, _with(s, checkpoint_ns="\x00")),
    ),
    "put_writes-checkpoint_id": (
        "checkpoint_id",
        lambda a, s: _writes(
            a, _with(s, checkpoint_id=s["configurable"]["checkpoint_id"] + "\x00")
        ),
    ),
    "put_writes-task_id": ("task_id", lambda a, s: _writes(a, s, task_id="ta\x00sk")),
    "put_writes-task_path": (
        "task_path",
        lambda a, s: _writes(a, s, task_path="~\x00path"),
    ),
    "put_writes-channel": ("channel", lambda a, s: _writes(a, s, channel="c\x00h")),
    "get_tuple-thread_id": ("thread_id", lambda a, s: a.get_tuple(_config("\x00"))),
    "get_tuple-checkpoint_ns": (
        "checkpoint_ns",
        lambda a, s: a.get_tuple(_with(s, checkpoint_ns="ns\x00")),
    ),
    "get_tuple-checkpoint_id": (
        "checkpoint_id",
        lambda a, s: a.get_tuple(_with(s, checkpoint_id="id\x00")),
    ),
    "list-thread_id": ("thread_id", lambda a, s: a.list(_config("seed\x00"))),
    "delete_thread": ("thread_id", lambda a, s: a.delete_thread("seed\x00")),
    "copy_thread-source": ("thread_id", lambda a, s: a.copy_thread("s\x00", "copy")),
    "copy_thread-target": (
        "thread_id",
        lambda a, s: a.copy_thread(SEED_THREAD, "copy\x00"),
    ),
    "prune": ("thread_id", lambda a, s: a.prune([SEED_THREAD, "seed\x00"])),
}


@pytest.mark.parametrize("case", list(NUL_NAME_CASES))
async def test_nul_in_a_name_is_refused_and_changes_nothing(
    api: Api, db_uri: str, case: str
) -> None:
    field, attempt = NUL_NAME_CASES[case]
    await _assert_refused(api, db_uri, attempt, ("NUL", field))


# -- metadata JSONB cannot hold: refused -------------------------------------------

# A NUL in a top-level string value is removed instead, as
# langgraph-checkpoint-postgres does (tests/test_upstream_behaviour.py).
NUL_METADATA: dict[str, dict[str, Any]] = {
    "top-key": {"source": "loop", "a\x00b": "v"},
    "nested-value": {"source": "loop", "outer": {"inner": "x\x00"}},
    "nested-key": {"source": "loop", "outer": {"\x00": 1}},
    "in-list": {"source": "loop", "outer": [1, ["ok", "deep\x00"]]},
    "deep": {"l0": {"l1": {"l2": {"l3": {"l4": {"l5": [{"l6": "\x00"}]}}}}}},
}

NONFINITE_METADATA: dict[str, dict[str, Any]] = {
    "nan": {"score": float("nan")},
    "inf": {"score": float("inf")},
    "-inf": {"score": float("-inf")},
    "nested-nan": {"outer": {"score": float("nan")}},
    "inf-in-list": {"scores": [1.0, float("inf")]},
}


@pytest.mark.parametrize("case", list(NUL_METADATA))
async def test_nul_in_metadata_is_refused_and_changes_nothing(
    api: Api, db_uri: str, case: str
) -> None:
    metadata = NUL_METADATA[case]
    await _assert_refused(
        api, db_uri, lambda a, s: _put(a, s, metadata=metadata), ("NUL", "metadata")
    )


@pytest.mark.parametrize("case", list(NONFINITE_METADATA))
async def test_nan_or_infinity_in_metadata_is_refused_and_changes_nothing(
    api: Api, db_uri: str, case: str
) -> None:
    metadata = NONFINITE_METADATA[case]
    await _assert_refused(
        api, db_uri, lambda a, s: _put(a, s, metadata=metadata), ("metadata",)
    )


async def test_escaped_nul_text_in_metadata_is_not_a_nul(vapi: Api) -> None:
    # Six characters, backslash-u-0-0-0-0: legal text that merely looks like
    # JSON's escape for U+0000.
    text = "\\u0000"
    metadata = {
        "escaped": text,
        text: "as a key",
        "nested": {text: [text, "a" + text + "b", "\\" + text]},
    }
    checkpoint = _checkpoint(vapi, {"value": text})
    config = await vapi.put(
        _config("escaped"), checkpoint, metadata, dict(checkpoint["channel_versions"])
    )
    loaded = await vapi.get_tuple(config)
    assert loaded is not None
    assert loaded.metadata == metadata
    assert loaded.checkpoint["channel_values"] == {"value": text}
    (listed,) = await vapi.list(None, filter={"escaped": text})
    assert listed.metadata == metadata


# -- NUL, NaN and infinities in values: round-trip -----------------------------------

ODD_VALUES: dict[str, Any] = {
    "nul": "a\x00b",
    "only-nul": "\x00",
    "trailing-nul": "abc\x00",
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "nested": {"k\x00": ["\x00", float("nan"), float("-inf")], "x": "\x00y"},
}


async def test_nul_and_nonfinite_values_and_writes_round_trip(vapi: Api) -> None:
    checkpoint = _checkpoint(vapi, ODD_VALUES)
    config = await vapi.put(
        _config("odd"), checkpoint, {}, dict(checkpoint["channel_versions"])
    )
    writes = [(f"w-{k}", v) for k, v in ODD_VALUES.items()]
    await vapi.put_writes(config, writes, "task")
    loaded = await vapi.get_tuple(config)
    (listed,) = await vapi.list(_config("odd"))
    for found in (loaded, listed):
        assert found is not None
        assert _same(found.checkpoint["channel_values"], ODD_VALUES)
        assert _same(found.pending_writes, [("task", c, v) for c, v in writes])


# -- quotes, backslashes, placeholders and non-ASCII in every text column -------------

TEXTS = {
    "backslash": "back\\slash\\",
    "single-quote": "it's",
    "double-quote": 'say "hi"',
    "percent-s": "%s",
    "percent-named": "%(x)s",
    "braces": "{}",
    "format-field": "{0} {checkpoint_ns}",
    "dollar": "$1",
    "template": "$checkpoints",
    "escaped-nul": "\\u0000",
    "sql": "'; DROP TABLE checkpoints; --",
    "all": "\\'\"%s%(x)s{}$1%%",
    "emoji": "😀👍🏽👨‍👩‍👧",
    "cjk": "中文漢字日本語한국어",
    "combining": "e\u0301a\u0308Z\u0324\u0354\u0367",
    "rtl": "שלום مرحبا \u202eevil\u202c",
    "uffff": "\uffff",
    "max-codepoint": "\U0010ffff",
    "bom-zero-width": "\ufeff\u200b\u200d",
}


@pytest.mark.parametrize("name", list(TEXTS))
async def test_odd_text_round_trips_in_every_column(
    vapi: Api, db_uri: str, name: str
) -> None:
    s = TEXTS[name]
    thread, ns = f"t{s}", f"ns{s}"
    parent_id, child_id = f"1{s}", f"2{s}"
    inline_ch, blob_ch, write_ch = f"ch{s}", f"blob{s}", f"w{s}"
    task_id, task_path = f"task{s}", f"path{s}"
    blob = s.encode() + b"\x00\xff"
    meta1 = {f"k{s}": f"v{s}", s: s, "nested": {f"k{s}": [f"v{s}", s]}, "step": 1}
    meta2 = {**meta1, "step": 2}

    # A neighbour whose names are the odd ones with the odd part removed.
    plain = _checkpoint(vapi, {"ch": "plain"})
    await vapi.put(
        _config("t", "ns"), plain, {"k": "v"}, dict(plain["channel_versions"])
    )

    first = _checkpoint(
        vapi, {inline_ch: f"v{s}", blob_ch: blob}, checkpoint_id=parent_id
    )
    parent_config = await vapi.put(
        _config(thread, ns), first, meta1, dict(first["channel_versions"])
    )
    assert parent_config == _config(thread, ns, parent_id)
    # The child changes only the inline channel; the blob stays at its version.
    inline_version = vapi.next_version(first["channel_versions"][inline_ch])
    second = _checkpoint(
        vapi,
        {inline_ch: f"w{s}", blob_ch: blob},
        checkpoint_id=child_id,
        versions={**first["channel_versions"], inline_ch: inline_version},
    )
    child_config = await vapi.put(
        parent_config, second, meta2, {inline_ch: inline_version}
    )
    assert child_config == _config(thread, ns, child_id)
    await vapi.put_writes(
        child_config, [(write_ch, f"val{s}"), (inline_ch, s)], task_id, task_path
    )
    expected_writes = [(task_id, write_ch, f"val{s}"), (task_id, inline_ch, s)]

    latest = await vapi.get_tuple(_config(thread, ns))
    assert latest is not None
    assert latest.config == child_config
    assert latest.parent_config == parent_config
    assert latest.checkpoint["channel_values"] == {inline_ch: f"w{s}", blob_ch: blob}
    assert latest.metadata == meta2
    assert latest.pending_writes == expected_writes
    older = await vapi.get_tuple(parent_config)
    assert older is not None
    assert older.checkpoint["channel_values"] == {inline_ch: f"v{s}", blob_ch: blob}
    assert older.metadata == meta1

    listed = await vapi.list(_thread(thread))
    assert _ids(listed) == [child_id, parent_id]
    assert [t.config["configurable"]["checkpoint_ns"] for t in listed] == [ns, ns]
    assert listed[0].pending_writes == expected_writes
    assert _ids(await vapi.list(_config(thread, ns), before=child_config)) == [
        parent_id
    ]
    assert _ids(await vapi.list(None, filter={f"k{s}": f"v{s}"})) == [
        child_id,
        parent_id,
    ]
    assert _ids(await vapi.list(None, filter={s: s, "step": 2})) == [child_id]
    with psycopg.connect(db_uri) as conn:
        stored_paths = conn.execute(
            "SELECT DISTINCT task_path FROM checkpoint_writes WHERE thread_id = %s",
            (thread,),
        ).fetchall()
    assert stored_paths == [(task_path,)]

    await vapi.copy_thread(thread, f"copy{s}")
    copied = await vapi.list(_thread(f"copy{s}"))
    assert _ids(copied) == [child_id, parent_id]
    assert copied[0].checkpoint["channel_values"] == latest.checkpoint["channel_values"]
    assert copied[0].pending_writes == expected_writes

    await vapi.delete_thread(thread)
    assert await vapi.get_tuple(_config(thread, ns)) is None
    assert _ids(await vapi.list(_thread(f"copy{s}"))) == [child_id, parent_id]
    neighbour = await vapi.get_tuple(_config("t", "ns"))
    assert neighbour is not None
    assert neighbour.checkpoint["channel_values"] == {"ch": "plain"}


# -- non-string thread ids ------------------------------------------------------------


@pytest.mark.parametrize(
    ("thread", "target"),
    [
        pytest.param(42, 4242, id="int"),
        pytest.param(
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            uuid.UUID("87654321-4321-8765-4321-876543218765"),
            id="uuid",
        ),
    ],
)
@pytest.mark.parametrize("address", ["object", "str"])
async def test_non_string_thread_id_is_one_thread_for_every_method(
    vapi: Api, db_uri: str, thread: Any, target: Any, address: str
) -> None:
    """Put with the int/UUID; address it as the object or as its str()."""
    at = thread if address == "object" else str(thread)
    target_at = target if address == "object" else str(target)
    run_1, run_2 = uuid.uuid4(), uuid.uuid4()

    neighbour = _checkpoint(vapi, {"k": "n"})
    await vapi.put(
        _config("neighbour"),
        neighbour,
        {"run_id": str(run_2)},
        dict(neighbour["channel_versions"]),
    )
    cp1 = _checkpoint(vapi, {"k": "one", "b": b"one"})
    c1 = await vapi.put(
        _config(thread), cp1, {"run_id": str(run_1)}, dict(cp1["channel_versions"])
    )
    assert c1["configurable"]["thread_id"] == str(thread)
    id1 = c1["configurable"]["checkpoint_id"]
    cp2 = _checkpoint(vapi, {"k": "two", "b": b"two"})
    c2 = await vapi.put(
        _config(thread, checkpoint_id=id1),
        cp2,
        {"run_id": str(run_2)},
        dict(cp2["channel_versions"]),
    )
    id2 = c2["configurable"]["checkpoint_id"]

    latest = await vapi.get_tuple(_config(at))
    assert latest is not None and latest.config == c2
    assert latest.parent_config == c1
    assert latest.checkpoint["channel_values"] == {"k": "two", "b": b"two"}
    first = await vapi.get_tuple(_config(at, checkpoint_id=id1))
    assert first is not None and first.config == c1
    assert _ids(await vapi.list(_config(at))) == [id2, id1]

    await vapi.put_writes(_config(at, checkpoint_id=id2), [("k", "w")], "task")
    for form in (thread, str(thread)):
        found = await vapi.get_tuple(_config(form))
        assert found is not None and found.pending_writes == [("task", "k", "w")]

    await vapi.copy_thread(at, target_at)
    for form in (target, str(target)):
        copied = await vapi.list(_config(form))
        assert _ids(copied) == [id2, id1]
        assert copied[0].pending_writes == [("task", "k", "w")]
        assert copied[0].checkpoint["channel_values"] == {"k": "two", "b": b"two"}

    # run_2 made the second checkpoint of the thread, of its copy and the
    # neighbour's only one.
    await vapi.delete_for_runs([run_2])
    for form in (thread, str(thread), target, str(target)):
        assert _ids(await vapi.list(_config(form))) == [id1]
    assert await vapi.get_tuple(_config("neighbour")) is None

    cp3 = _checkpoint(vapi, {"k": "three"})
    c3 = await vapi.put(
        _config(at, checkpoint_id=id1), cp3, {}, dict(cp3["channel_versions"])
    )
    id3 = c3["configurable"]["checkpoint_id"]
    assert _ids(await vapi.list(_config(thread))) == [id3, id1]
    await vapi.prune([at])
    for form in (thread, str(thread)):
        (kept,) = await vapi.list(_config(form))
        assert kept.config == c3
        assert kept.checkpoint["channel_values"] == {"k": "three"}
    assert _ids(await vapi.list(_config(target))) == [id1]

    await vapi.delete_thread(at)
    for form in (thread, str(thread)):
        assert await vapi.get_tuple(_config(form)) is None
    assert _ids(await vapi.list(_config(str(target)))) == [id1]
    rows = _dump(db_uri)
    assert not any(f"({thread}," in row for table in rows.values() for row in table)


# -- size ---------------------------------------------------------------------------

LARGE = 50 * 1024 * 1024


def _large_value(kind: str) -> Any:
    if kind == "bytes":
        return os.urandom(LARGE)
    # Distinct ends, so that truncation or a shifted chunk shows.
    return "<start>" + "0123456789abcdef" * (LARGE // 16) + "<end>"


@pytest.mark.parametrize("kind", ["bytes", "str"])
async def test_a_50_mb_channel_value_round_trips(large_api: Api, kind: str) -> None:
    value = _large_value(kind)
    checkpoint = _checkpoint(large_api, {"big": value, "small": "s"})
    config = await large_api.put(
        _config("large"), checkpoint, {"k": "v"}, dict(checkpoint["channel_versions"])
    )
    loaded = await large_api.get_tuple(config)
    assert loaded is not None
    big = loaded.checkpoint["channel_values"]["big"]
    assert type(big) is type(value) and len(big) == len(value)
    assert big == value
    assert loaded.checkpoint["channel_values"]["small"] == "s"
    del loaded, big
    (listed,) = await large_api.list(_config("large"))
    assert listed.checkpoint["channel_values"]["big"] == value


def _many_values(count: int, tag: str) -> dict[str, Any]:
    """``count`` channels: inline ints, strings, floats and None, blob bytes and
    dicts."""
    values: dict[str, Any] = {}
    for i in range(count):
        channel = f"channel-{i:04d}"
        values[channel] = [
            i,
            f"{tag} text {i}",
            f"{tag}-{i}".encode() + b"\x00",
            {"i": i, "tag": tag, "list": [i, str(i)]},
            i + 0.5,
            None,
        ][i % 6]
    return values


async def test_a_checkpoint_with_2000_channels_round_trips(vapi: Api) -> None:
    first_values = _many_values(2000, "first")
    first = _checkpoint(vapi, first_values)
    c1 = await vapi.put(
        _config("wide"), first, {"step": 1}, dict(first["channel_versions"])
    )
    # The next checkpoint changes every seventh channel; the others keep
    # their version (and blob).
    changed = {ch for i, ch in enumerate(first_values) if i % 7 == 0}
    updated = _many_values(2000, "second")
    second_values = {
        ch: updated[ch] if ch in changed else v for ch, v in first_values.items()
    }
    new_versions = {
        ch: vapi.next_version(first["channel_versions"][ch]) for ch in changed
    }
    second = _checkpoint(
        vapi,
        second_values,
        versions={**first["channel_versions"], **new_versions},
    )
    c2 = await vapi.put(c1, second, {"step": 2}, new_versions)

    loaded_1 = await vapi.get_tuple(c1)
    loaded_2 = await vapi.get_tuple(c2)
    assert loaded_1 is not None and loaded_2 is not None
    assert loaded_1.checkpoint["channel_values"] == first_values
    assert loaded_2.checkpoint["channel_values"] == second_values
    assert loaded_2.checkpoint["channel_versions"] == second["channel_versions"]
    listed = await vapi.list(_config("wide"))
    assert [t.checkpoint["channel_values"] for t in listed] == [
        second_values,
        first_values,
    ]


# -- metadata filters are data, never SQL ---------------------------------------------

HOSTILE_FILTER_TEXT = [
    "'",
    '"',
    "\\",
    "'; DROP TABLE checkpoints; --",
    '"; DROP TABLE checkpoint_blobs; --',
    "' OR '1'='1",
    "x') OR true --",
    "?|",
    "?&",
    "?",
    "@>",
    "<@",
    "->>",
    "#>",
    "#>>",
    "%s",
    "%(filter)s",
    "{}",
    "$1",
    "\\u0000",
    "null",
    "[]",
]


async def test_hostile_metadata_filters_match_exactly_and_change_nothing(
    vapi: Api, db_uri: str
) -> None:
    ids: list[str] = []
    for i, text in enumerate(HOSTILE_FILTER_TEXT):
        checkpoint = _checkpoint(vapi, {"i": i})
        metadata = {
            text: f"value {i}",
            "k": text,
            "i": i,
            "nested": {text: True},
            "tags": [text, "common"],
        }
        config = await vapi.put(
            _config(f"thread {i}"), checkpoint, metadata, {"i": vapi.next_version()}
        )
        ids.append(config["configurable"]["checkpoint_id"])
    plain = _checkpoint(vapi, {})
    await vapi.put(_config("plain"), plain, {"k": "plain", "i": -1}, {})
    before = _dump(db_uri)
    assert len(before["checkpoints"]) == len(HOSTILE_FILTER_TEXT) + 1

    for i, text in enumerate(HOSTILE_FILTER_TEXT):
        for filter in (
            {text: f"value {i}"},
            {"k": text},
            {"k": text, "i": i},
            {"nested": {text: True}},
            {"tags": [text]},
        ):
            found = await vapi.list(None, filter=filter)
            assert _ids(found) == [ids[i]], (text, filter)
            assert found[0].metadata["k"] == text
        for filter in (
            {text: f"value {i + 1}"},
            {"k": text, "i": i + 1},
            {"k": text + "x"},
            {text + "x": f"value {i}"},
        ):
            assert await vapi.list(None, filter=filter) == [], (text, filter)
    assert len(await vapi.list(None, filter={"tags": ["common"]})) == len(ids)
    assert _dump(db_uri) == before


# -- configs missing a key -----------------------------------------------------


async def test_configs_missing_a_key_are_refused_by_name(
    vapi: Api, db_uri: str
) -> None:
    # tests/test_savers.py covers the sync get_tuple/put cases.
    seed = await _seed(vapi)
    before = _dump(db_uri)
    no_thread = {"configurable": {"checkpoint_ns": ""}}
    with pytest.raises(ValueError, match="thread_id"):
        await vapi.put_writes(
            {"configurable": {"checkpoint_id": seed["configurable"]["checkpoint_id"]}},
            [("a", 1)],
            "task",
        )
    with pytest.raises(ValueError, match="checkpoint_id"):
        await vapi.put_writes(_config(SEED_THREAD), [("a", 1)], "task")
    with pytest.raises(ValueError, match="thread_id"):
        await vapi.get_tuple(no_thread)
    with pytest.raises(ValueError, match="thread_id"):
        await _put(vapi, no_thread)
    assert _dump(db_uri) == before
    # A list config without a thread_id lists every thread.
    other = await _put(vapi, _config("other"))
    assert sorted(_ids(await vapi.list(no_thread))) == sorted(
        [seed["configurable"]["checkpoint_id"], other["configurable"]["checkpoint_id"]]
    )
