"""Behaviour of ``langgraph-checkpoint-postgres`` 3.2.0 that code relies on.

Each test pins something 3.2.0 does (observed by running it, in a separate
virtualenv, against a real server) where this package used to differ, so that
code written for 3.2.0 keeps working. Where 3.2.0 silently alters or loses
data this package behaves differently on purpose (tested where that behaviour
is: test_hostile_input.py, test_savers.py); where 3.2.0 fails in the server
(NUL that JSONB cannot hold), this package raises a ValueError first. The
differences kept on purpose for bad input are pinned here too, marked so.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.serde.types import TASKS

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tests.savers import Saves, arun_saves, run_saves


def _config(thread_id: str, ns: str = "", **more: Any) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, **more}}


def _checkpoint(v: int = 4) -> Checkpoint:
    checkpoint = empty_checkpoint()  # format v2 in langgraph-checkpoint 4.3
    checkpoint["v"] = v
    if v < 4:
        checkpoint["pending_sends"] = []  # type: ignore[typeddict-unknown-key]
    return checkpoint


def _ids(tuples: Any) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


async def _alist(saver: AsyncPostgresSaver, *args: Any, **kwargs: Any) -> list[Any]:
    return [t async for t in saver.alist(*args, **kwargs)]


# -- NUL in metadata --------------------------------------------------------------
# LangGraph's get_serializable_checkpoint_metadata drops NUL from top-level
# string values (of the metadata argument and of the config's metadata and
# configurable); 3.2.0 stores what it returns. Nested, or in a key, neither
# package can store it: 3.2.0 fails in the server
# (psycopg.errors.UntranslatableCharacter), this package refuses it before
# with a ValueError that says why.

NUL_CONFIG = {
    "configurable": {"thread_id": "t", "checkpoint_ns": "", "user": "u\x00v"},
    "metadata": {"note": "\x00n"},
}
NUL_STRIPPED = {"my_key": "abc", "source": "loop", "user": "uv", "note": "n"}

REFUSED_NUL: dict[str, tuple[Any, dict[str, Any]]] = {
    "nested-value": (_config("t"), {"outer": {"k": "\x00"}}),
    "in-list": (_config("t"), {"tags": ["a\x00"]}),
    "top-key": (_config("t"), {"a\x00b": "v"}),
    "configurable-key": (_config("t", **{"k\x00": "v"}), {}),
}


def test_nul_in_a_top_level_metadata_string_is_removed(saver: PostgresSaver) -> None:
    metadata: Any = {"my_key": "\x00abc", "source": "loop"}
    config = saver.put(NUL_CONFIG, _checkpoint(), metadata, {})
    loaded = saver.get_tuple(config)
    assert loaded is not None and loaded.metadata == NUL_STRIPPED
    assert _ids(saver.list(None, filter={"my_key": "abc", "user": "uv"})) == [
        config["configurable"]["checkpoint_id"]
    ]


async def test_nul_in_a_top_level_metadata_string_is_removed_async(
    asaver: AsyncPostgresSaver,
) -> None:
    metadata: Any = {"my_key": "\x00abc", "source": "loop"}
    config = await asaver.aput(NUL_CONFIG, _checkpoint(), metadata, {})
    loaded = await asaver.aget_tuple(config)
    assert loaded is not None and loaded.metadata == NUL_STRIPPED
    found = await _alist(asaver, None, filter={"my_key": "abc", "note": "n"})
    assert _ids(found) == [config["configurable"]["checkpoint_id"]]


@pytest.mark.parametrize("case", list(REFUSED_NUL))
def test_nul_nested_in_metadata_or_in_a_key_is_refused(
    saver: PostgresSaver, case: str
) -> None:
    config, metadata = REFUSED_NUL[case]
    with pytest.raises(ValueError, match="NUL"):
        saver.put(config, _checkpoint(), metadata, {})
    assert saver.get_tuple(_config("t")) is None


@pytest.mark.parametrize("case", list(REFUSED_NUL))
async def test_nul_nested_in_metadata_or_in_a_key_is_refused_async(
    asaver: AsyncPostgresSaver, case: str
) -> None:
    config, metadata = REFUSED_NUL[case]
    with pytest.raises(ValueError, match="NUL"):
        await asaver.aput(config, _checkpoint(), metadata, {})
    assert await asaver.aget_tuple(_config("t")) is None


# -- list() arguments ----------------------------------------------------------------


def test_list_with_an_empty_config_lists_every_thread(saver: PostgresSaver) -> None:
    saver.put(_config("a"), _checkpoint(), {}, {})
    saver.put(_config("b"), _checkpoint(), {}, {})
    assert len(list(saver.list({}))) == 2  # 3.2.0 treats {} like None
    assert _ids(saver.list({})) == _ids(saver.list(None))


async def test_list_with_an_empty_config_lists_every_thread_async(
    asaver: AsyncPostgresSaver,
) -> None:
    await asaver.aput(_config("a"), _checkpoint(), {}, {})
    await asaver.aput(_config("b"), _checkpoint(), {}, {})
    assert len(await _alist(asaver, {})) == 2
    assert _ids(await _alist(asaver, {})) == _ids(await _alist(asaver, None))


# Kept on purpose: 3.2.0 lists nothing before a config that names no
# checkpoint (`checkpoint_id < NULL`), which hides the caller's slip; this
# package says what is missing.
BEFORE_WITHOUT_ID = [{"configurable": {}}, {"configurable": {"thread_id": "t"}}]


@pytest.mark.parametrize("before", BEFORE_WITHOUT_ID)
def test_list_before_a_config_without_checkpoint_id_is_refused(
    saver: PostgresSaver, before: Any
) -> None:
    saver.put(_config("t"), _checkpoint(), {}, {})
    with pytest.raises(ValueError, match="checkpoint_id"):
        list(saver.list(_config("t"), before=before))


@pytest.mark.parametrize("before", BEFORE_WITHOUT_ID)
async def test_list_before_a_config_without_checkpoint_id_is_refused_async(
    asaver: AsyncPostgresSaver, before: Any
) -> None:
    await asaver.aput(_config("t"), _checkpoint(), {}, {})
    with pytest.raises(ValueError, match="checkpoint_id"):
        await _alist(asaver, _config("t"), before=before)


@pytest.mark.parametrize("limit", ["2", 2.0])
def test_list_limit_is_anything_int_takes(saver: PostgresSaver, limit: Any) -> None:
    config = _config("t")
    for _ in range(3):
        config = saver.put(config, _checkpoint(), {}, {})
    assert len(list(saver.list(_config("t"), limit=limit))) == 2


@pytest.mark.parametrize("limit", ["2", 2.0])
async def test_list_limit_is_anything_int_takes_async(
    asaver: AsyncPostgresSaver, limit: Any
) -> None:
    config = _config("t")
    for _ in range(3):
        config = await asaver.aput(config, _checkpoint(), {}, {})
    assert len(await _alist(asaver, _config("t"), limit=limit)) == 2


# Kept on purpose: what int() would alter, or what is no count, is refused
# (3.2.0 lists 1 row for 1.5 and True, and fails in the server for -1).
@pytest.mark.parametrize("limit", [1.5, True, -1, "x", [2]])
def test_list_limit_that_is_no_count_is_refused(
    saver: PostgresSaver, limit: Any
) -> None:
    with pytest.raises(ValueError, match="limit"):
        list(saver.list(_config("t"), limit=limit))


# -- subclasses that set SQL --------------------------------------------------------
# Kept on purpose: 3.2.0 reads its statements from class attributes, so a
# subclass could change them; this package has none to read, and refuses a
# subclass that sets one rather than ignore it.


def test_a_subclass_setting_upstream_sql_attributes_is_refused() -> None:
    with pytest.raises(TypeError, match="SELECT_SQL.*schema="):

        class Custom(PostgresSaver):
            SELECT_SQL = "SELECT * FROM other.checkpoints"

    with pytest.raises(TypeError, match="MIGRATIONS"):

        class Migrating(AsyncPostgresSaver):
            MIGRATIONS = ["CREATE TABLE other.checkpoints ()"]

    class Plain(PostgresSaver):  # subclasses that set none of them are fine
        def note(self) -> str:
            return "ok"

    assert Plain.MIGRATIONS == PostgresSaver.MIGRATIONS


# -- configs missing a key ----------------------------------------------------------
# 3.2.0 raises KeyError (it indexes the config); a ValueError that is also a
# KeyError keeps both kinds of handler working.


def test_configs_missing_a_key_raise_key_error(saver: PostgresSaver) -> None:
    with pytest.raises(KeyError):
        saver.get_tuple({})
    with pytest.raises(KeyError):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(KeyError):
        saver.put({"configurable": {"checkpoint_ns": ""}}, _checkpoint(), {}, {})
    with pytest.raises(KeyError):
        saver.put_writes(_config("t"), [("a", 1)], "task")


async def test_configs_missing_a_key_raise_key_error_async(
    asaver: AsyncPostgresSaver,
) -> None:
    with pytest.raises(KeyError):
        await asaver.aget_tuple({})
    with pytest.raises(KeyError):
        await asaver.aget_tuple({"configurable": {}})
    with pytest.raises(KeyError):
        await asaver.aput(
            {"configurable": {"checkpoint_ns": ""}}, _checkpoint(), {}, {}
        )
    with pytest.raises(KeyError):
        await asaver.aput_writes(_config("t"), [("a", 1)], "task")


# -- prune(strategy="keep_latest") ----------------------------------------------------


def _namespaces(tuples: Any) -> dict[str, str]:
    return {
        t.config["configurable"]["checkpoint_ns"]: t.config["configurable"][
            "checkpoint_id"
        ]
        for t in tuples
    }


SUBGRAPHS = ("call:old", "call:new", "kept")


def _subgraph_thread() -> Saves:
    """Three root checkpoints, then two in each of SUBGRAPHS, started from
    the first root checkpoint ("call:old", "kept") or the last ("call:new").
    Returns the latest checkpoint id of each namespace."""
    roots, config = [], _config("t")
    for _ in range(3):
        config = yield "put", (config, _checkpoint(), {}, {})
        roots.append(config["configurable"]["checkpoint_id"])
    latest = {"": roots[-1]}
    for ns in SUBGRAPHS:
        root = roots[-1] if ns == "call:new" else roots[0]
        config = _config("t", ns)
        for _ in range(2):
            metadata = {"parents": {"": root}}
            config = yield "put", (config, _checkpoint(), metadata, {})
        latest[ns] = config["configurable"]["checkpoint_id"]
    return latest


def test_prune_deletes_subgraph_calls_started_from_pruned_checkpoints(
    saver: PostgresSaver,
) -> None:
    latest = run_saves(saver, _subgraph_thread())
    saver.prune(["t"])
    # A call's namespace ("name:task_id") goes with the root checkpoint it
    # started from; a `checkpointer=True` subgraph's ("kept") keeps its latest.
    del latest["call:old"]
    assert _namespaces(saver.list({"configurable": {"thread_id": "t"}})) == latest


async def test_prune_deletes_subgraph_calls_started_from_pruned_checkpoints_async(
    asaver: AsyncPostgresSaver,
) -> None:
    latest = await arun_saves(asaver, _subgraph_thread())
    await asaver.aprune(["t"])
    del latest["call:old"]
    found = await _alist(asaver, {"configurable": {"thread_id": "t"}})
    assert _namespaces(found) == latest


def test_prune_clears_the_parent_of_a_kept_checkpoint(saver: PostgresSaver) -> None:
    config = saver.put(_config("t"), _checkpoint(), {}, {})
    config = saver.put(config, _checkpoint(), {}, {})
    saver.prune(["t"])
    (kept,) = saver.list(_config("t"))
    assert kept.config == config
    assert kept.parent_config is None


async def test_prune_clears_the_parent_of_a_kept_checkpoint_async(
    asaver: AsyncPostgresSaver,
) -> None:
    config = await asaver.aput(_config("t"), _checkpoint(), {}, {})
    config = await asaver.aput(config, _checkpoint(), {}, {})
    await asaver.aprune(["t"])
    (kept,) = await _alist(asaver, _config("t"))
    assert kept.config == config
    assert kept.parent_config is None


SENDS = ["send-a", "send-b"]


def test_prune_keeps_the_pending_sends_of_a_pre_v4_checkpoint(
    saver: PostgresSaver,
) -> None:
    # Before checkpoint format v4, a superstep's sends were writes of the
    # parent checkpoint; a v3 checkpoint reads them from there.
    parent = saver.put(_config("t"), _checkpoint(v=3), {}, {})
    saver.put_writes(parent, [(TASKS, s) for s in SENDS], "task")
    config = saver.put(parent, _checkpoint(v=3), {}, {})
    saver.prune(["t"])
    loaded = saver.get_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"].get(TASKS) == SENDS


async def test_prune_keeps_the_pending_sends_of_a_pre_v4_checkpoint_async(
    asaver: AsyncPostgresSaver,
) -> None:
    parent = await asaver.aput(_config("t"), _checkpoint(v=3), {}, {})
    await asaver.aput_writes(parent, [(TASKS, s) for s in SENDS], "task")
    config = await asaver.aput(parent, _checkpoint(v=3), {}, {})
    await asaver.aprune(["t"])
    loaded = await asaver.aget_tuple(config)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"].get(TASKS) == SENDS


def test_prune_keeps_a_subgraph_call_until_its_root_checkpoint_is_saved(
    saver: PostgresSaver,
) -> None:
    # A run saves in the background, so a subgraph call can commit before the
    # root checkpoint it started from: its namespace keeps its latest, as any.
    config = saver.put(_config("t"), _checkpoint(), {}, {})
    latest = {"": saver.put(config, _checkpoint(), {}, {})}
    unsaved = _checkpoint()["id"]
    call = _config("t", "call:early")
    for _ in range(2):
        call = saver.put(call, _checkpoint(), {"parents": {"": unsaved}}, {})
    latest["call:early"] = call
    saver.prune(["t"])
    found = list(saver.list({"configurable": {"thread_id": "t"}}))
    assert _namespaces(found) == {
        ns: c["configurable"]["checkpoint_id"] for ns, c in latest.items()
    }


async def test_prune_keeps_a_subgraph_call_until_its_root_checkpoint_is_saved_async(
    asaver: AsyncPostgresSaver,
) -> None:
    config = await asaver.aput(_config("t"), _checkpoint(), {}, {})
    latest = {"": await asaver.aput(config, _checkpoint(), {}, {})}
    unsaved = _checkpoint()["id"]
    call = _config("t", "call:early")
    for _ in range(2):
        call = await asaver.aput(call, _checkpoint(), {"parents": {"": unsaved}}, {})
    latest["call:early"] = call
    await asaver.aprune(["t"])
    found = await _alist(asaver, {"configurable": {"thread_id": "t"}})
    assert _namespaces(found) == {
        ns: c["configurable"]["checkpoint_id"] for ns, c in latest.items()
    }
