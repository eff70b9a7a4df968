"""Delta-channel history: the one query that walks a checkpoint's ancestors
for some channels, and the assembling of its rows into LangGraph's result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.checkpoint.postgres._sql import DELTA_HISTORY_SQL, render
from langgraph.checkpoint.postgres._validation import (
    as_text,
    configurable_of,
    namespace_of,
    thread_id_of,
)


def delta_history_statement(
    schema: str | None, config: RunnableConfig, channels: Sequence[str]
) -> Statement:
    configurable = configurable_of(config)
    checkpoint_id = configurable.get("checkpoint_id")
    return Statement(
        render(DELTA_HISTORY_SQL, schema),
        {
            "thread_id": thread_id_of(configurable),
            "checkpoint_ns": namespace_of(configurable),
            "checkpoint_id": (
                as_text(checkpoint_id, "checkpoint_id") if checkpoint_id else None
            ),
            "channels": list(dict.fromkeys(channels)),
        },
    )


def load_delta_history(
    serde: SerializerProtocol,
    rows: Sequence[Sequence[Any]],
    channels: Sequence[str],
) -> dict[str, DeltaChannelHistory]:
    """Assemble ``get_delta_channel_history``'s result from the walk's rows.

    ``rows`` are the visited ancestors, nearest first. Writes come out
    oldest first, each ancestor's in ``writes_sort_key`` order; the seed is
    the value at the nearest ancestor that stores one.
    """
    loads = serde.loads_typed
    writes: dict[str, list[PendingWrite]] = {ch: [] for ch in channels}
    seeds: dict[str, Any] = {}
    for row in reversed(rows):
        (
            _depth,
            seed_channels,
            seed_inline,
            seed_types,
            seed_payloads,
            task_ids,
            write_channels,
            write_types,
            write_payloads,
        ) = row
        for channel, inline, type_, payload in zip(
            seed_channels or (),
            seed_inline or (),
            seed_types or (),
            seed_payloads or (),
        ):
            seeds[channel] = inline if type_ is None else loads((type_, payload))
        for task_id, channel, type_, payload in zip(
            task_ids or (),
            write_channels or (),
            write_types or (),
            write_payloads or (),
        ):
            writes[channel].append((task_id, channel, loads((type_, payload))))
    result: dict[str, DeltaChannelHistory] = {}
    for channel in channels:
        entry: DeltaChannelHistory = {"writes": writes[channel]}
        if channel in seeds:
            entry["seed"] = seeds[channel]
        result[channel] = entry
    return result
