"""Checks of what callers pass (configs, ids, text for text columns, values
for JSONB), each failing with an error that says what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from psycopg.types.json import Jsonb

from langgraph.checkpoint.postgres._pg import jsonb as _json


def as_text(value: Any, field: str) -> str:
    """``value`` as the text stored in column ``field``, which cannot hold NUL."""
    text = str(value)
    if "\x00" in text:
        raise ValueError(
            f"{field} {text!r} contains a NUL character (\\x00), which Postgres "
            f"text columns cannot store: remove it from the {field}"
        )
    return text


# A JSON escape of U+0000 (which JSONB cannot store), not preceded by an odd
# number of backslashes (which would make it the literal text "\u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def as_jsonb(value: Any, what: str) -> Jsonb:
    """Encode ``value`` for a JSONB column now, refusing what JSONB would
    reject or alter, with an error that names ``what`` holds it."""
    data = _json.dumps(value)
    if b"\\u0000" in data and _NUL_ESCAPE.search(data):
        raise ValueError(
            f"the {what} contains a NUL character (\\x00) in a key or string, "
            "which Postgres JSONB cannot store: remove it (or encode the value, "
            "e.g. as base64)"
        )
    return _json.jsonb_text(data)


def check_finite(value: Any, path: str) -> None:
    """Refuse NaN and infinities, which orjson would write as null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value!r}, which JSON cannot hold (it would be stored "
                "as null): store it as a string, e.g. str(value)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_finite(item, f"{path}[{index}]")


class ConfigKeyError(KeyError, ValueError):
    """A config lacks a key the call needs.

    A ``KeyError``, as ``langgraph-checkpoint-postgres`` raises (it indexes
    the config), so handlers written for it keep working; and a
    ``ValueError``, as for any other argument we refuse.
    """

    def __str__(self) -> str:
        # KeyError shows its argument quoted, as a key; this one is a message.
        return str(self.args[0]) if self.args else ""


def thread_id_of(configurable: dict[str, Any]) -> str:
    try:
        thread_id = configurable["thread_id"]
    except KeyError:
        raise ConfigKeyError(
            'config["configurable"] has no "thread_id": pass '
            '{"configurable": {"thread_id": ...}} to identify the thread'
        ) from None
    return as_text(thread_id, "thread_id")


def namespace_of(configurable: dict[str, Any]) -> str:
    return as_text(configurable.get("checkpoint_ns") or "", "checkpoint_ns")


def configurable_of(config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable")
    if not isinstance(configurable, dict):
        raise ConfigKeyError(
            'config has no "configurable" dict: pass '
            '{"configurable": {"thread_id": ...}}'
        )
    return configurable


def check_limit(limit: Any) -> int | None:
    """Validate ``list()``'s ``limit``.

    ``langgraph-checkpoint-postgres`` takes whatever ``int()`` takes, so
    ``"2"`` and ``2.0`` work there and here; what ``int()`` would change
    (``1.5``, ``True``) or what cannot be a count is refused.
    """
    if limit is None or (type(limit) is int and limit >= 0):
        return limit
    try:
        count = int(limit)
    except (TypeError, ValueError):
        count = -1
    if (
        isinstance(limit, bool)
        or count < 0
        or (isinstance(limit, float) and count != limit)
    ):
        raise ValueError(f"limit must be a non-negative int, not {limit!r}")
    return count


def id_list(ids: Sequence[Any], name: str, method: str) -> list[str]:
    """Validate a list of thread or run ids; a bare string is a common slip."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(
            f"{method}() takes a list of ids as {name}, not {type(ids).__name__} "
            f"{ids!r}: wrap a single id in a list, e.g. {method}([{ids!r}])"
        )
    field = name[:-1]  # "thread_ids" -> "thread_id"
    return [as_text(i, field) for i in ids]
