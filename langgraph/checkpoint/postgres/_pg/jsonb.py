"""JSONB encoding and decoding with orjson, scoped to our own cursors.

psycopg decodes ``jsonb`` with the standard library unless told otherwise.
We register orjson loaders on each cursor a client opens (never on the
connection or globally), so the user's own queries on a shared connection keep
whatever JSON handling they configured.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.json import Jsonb

# JSONB's binary wire format is a version byte followed by the JSON text.
_JSONB_BINARY_VERSION = 1


# orjson reads integers beyond 64 bits as floats, silently. JSONB can hold
# them (the 3.x package wrote such values inline), so a document that may
# contain one, a number token of 19 or more digits, is read with the standard
# library instead. The test maps every digit to "0" and every byte that may
# precede a number (space, ":", ",", "[", "-") to a space, then looks for a
# space followed by 19 zeros: a C-speed scan, several times cheaper than a
# regular expression. Digits inside strings (channel versions) follow a quote,
# which maps to neither, and do not match; a false match only costs speed.
_NUMBER_SHAPE = bytes(
    ord("0") if b in b"0123456789" else ord(" ") if b in b" \t\n\r:,[-" else ord("x")
    for b in range(256)
)
_LONG_NUMBER = b" " + b"0" * 19


def _may_hold_long_integer(data: bytes) -> bool:
    return _LONG_NUMBER in (b" " + data).translate(_NUMBER_SHAPE)


def loads(data: Buffer) -> Any:
    """Decode JSON text exactly, integers of any size included."""
    data = bytes(data)
    if _may_hold_long_integer(data):
        return json.loads(data)
    return orjson.loads(data)


class _OrjsonJsonbTextLoader(Loader):
    def load(self, data: Buffer) -> Any:
        return loads(data)


class _OrjsonJsonbBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> Any:
        view = memoryview(data)
        if view[0] != _JSONB_BINARY_VERSION:
            raise ValueError(f"unknown jsonb binary format version {view[0]}")
        return loads(view[1:])


def use_orjson(context: AdaptContext) -> None:
    """Decode ``jsonb`` results of this cursor (or connection) with orjson."""
    adapters = context.adapters
    adapters.register_loader("jsonb", _OrjsonJsonbTextLoader)
    adapters.register_loader("jsonb", _OrjsonJsonbBinaryLoader)


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as JSON text for a ``jsonb`` parameter.

    Non-string dict keys (ints in ``versions_seen`` of old checkpoints, for
    instance) are written as strings, as the standard library does. Integers
    beyond 64 bits, which orjson refuses, go through the standard library.
    """
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode()


def jsonb(obj: Any) -> Jsonb:
    """Wrap ``obj`` as a ``jsonb`` query parameter encoded by orjson."""
    return Jsonb(obj, dumps=dumps)


def jsonb_text(data: bytes) -> Jsonb:
    """Wrap JSON text already encoded (by :func:`dumps`) as a ``jsonb`` parameter."""
    return Jsonb(data, dumps=_as_is)


def _as_is(data: bytes) -> bytes:
    return data
