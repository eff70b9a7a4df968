"""Checks of what callers pass, and the text forms values are stored in.

Each check raises a ``ValueError`` that names the problem and the fix,
before anything reaches the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson


def namespace_text(namespace: tuple[str, ...]) -> str:
    """A namespace as stored: its labels joined by dots."""
    return ".".join(namespace)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE`` pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def vector_text(vector: Sequence[float], dims: int, what: str) -> str:
    """An embedding as pgvector's text input, after checking it."""
    try:
        floats = [float(x) for x in vector]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not a list of numbers: {exc}") from None
    if len(floats) != dims:
        raise ValueError(
            f"{what} has {len(floats)} dimensions but the index config says "
            f"dims={dims}: make 'dims' match the embedding model"
        )
    if not all(map(math.isfinite, floats)):
        raise ValueError(f"{what} holds NaN or an infinity, which pgvector refuses")
    return orjson.dumps(floats).decode()


def check_value(value: Any, path: str) -> None:
    """Refuse what JSONB cannot hold as given: NaN and infinities (written
    as null) and NUL characters (refused by Postgres)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(
                f"{path} contains a NUL character, which Postgres text cannot "
                "hold: remove it, or encode the text (e.g. base64)"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value!r}, which JSON cannot hold (it would be "
                "stored as null): store it as a string, e.g. str(value)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                raise ValueError(f"{path} has a key with a NUL character: {key!r}")
            check_value(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_value(item, f"{path}[{index}]")


def check_key(key: Any, op: str) -> str:
    """An item's key: a str without NUL characters."""
    if not isinstance(key, str):
        raise ValueError(f"{op} key must be a str, not {type(key).__name__} {key!r}")
    if "\x00" in key:
        raise ValueError(f"{op} key {key!r} contains a NUL character")
    return key


def check_page(limit: Any, offset: Any, op: str) -> None:
    """A page's ``limit`` and ``offset``: non-negative integers."""
    for name, number in (("limit", limit), ("offset", offset)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(
                f"{op} {name} must be a non-negative integer, not {number!r}"
            )


def check_max_depth(depth: Any) -> None:
    """``list_namespaces``' ``max_depth``: a positive integer or ``None``."""
    if depth is not None and (
        isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
    ):
        raise ValueError(
            f"list_namespaces max_depth must be a positive integer or None, "
            f"not {depth!r}"
        )


def check_put_namespace(namespace: tuple[str, ...]) -> None:
    """A namespace to put into: at least one label, not LangGraph's root."""
    if not namespace:
        raise ValueError(
            "put needs a namespace of at least one label, e.g. ('users', 'alice')"
        )
    if namespace[0] == "langgraph":
        raise ValueError(
            f"namespace {namespace!r}: the root label 'langgraph' is reserved "
            "for LangGraph itself; use another first label"
        )
