"""``export`` and ``import``: move or back up whole threads, byte for byte.

The file is JSON Lines. Line 1 is a header::

    {"format": "langgraph-postgres-export", "version": 1,
     "exported_at": "2026-12-06T18:30:00+00:00",
     "threads": ["chat-1"],
     "tables": {"checkpoints": {"thread_id": "text", ...}, ...},
     "rows": {"checkpoints": 12, "checkpoint_blobs": 20, "checkpoint_writes": 31}}

``tables`` is every column of the saver's three tables, as the source
database has them (names and Postgres types, in column order), so columns a
later migration adds travel too. Every further line is one row::

    {"table": "checkpoint_blobs", "row": {"thread_id": "chat-1", ..., "blob": "gqR..."}}

Values are the raw columns: ``bytea`` as base64, ``json``/``jsonb`` as the
text Postgres prints for them (re-read into the identical ``jsonb``),
integers and booleans as JSON numbers and booleans, anything else as its text
form. Nothing is decoded, so encrypted checkpoints move without their key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT = "langgraph-postgres-export"
VERSION = 1
#: The saver's tables, in the order they are exported.
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
#: Column types carried as JSON numbers/booleans/text as they are; any other
#: type (json, jsonb, timestamps, ...) travels as the text Postgres prints.
NATIVE_TYPES: dict[str, type] = {
    "integer": int,
    "bigint": int,
    "smallint": int,
    "boolean": bool,
    "text": str,
}
#: How an error names what a column of each native type holds.
KINDS = {int: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool = False
    has_default: bool = False


class FileError(Exception):
    """A malformed import file: ``line`` and what is wrong with it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


# -- values ------------------------------------------------------------------


def encode_value(type_: str, value: Any) -> Any:
    """A column's value as the export file carries it.

    >>> encode_value("bytea", b"hi"), encode_value("integer", 3)
    ('aGk=', 3)
    """
    if value is None:
        return None
    if type_ == "bytea":
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def decode_value(column: Column, value: Any) -> Any:
    """The value to insert for a file's ``value`` of ``column``; ValueError
    saying why when it cannot be one.

    >>> decode_value(Column("blob", "bytea"), "aGk=")
    b'hi'
    >>> decode_value(Column("idx", "integer"), "3")
    Traceback (most recent call last):
    ...
    ValueError: column idx (integer) holds "3", expected a number
    """
    if value is None:
        if column.not_null:
            raise ValueError(f"column {column.name} may not be null")
        return None
    if column.type == "bytea":
        if not isinstance(value, str):
            raise ValueError(f"column {column.name} (bytea) is not a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"column {column.name} holds bad base64") from None
    expected = NATIVE_TYPES.get(column.type, str)
    if type(value) is not expected:
        shown = orjson.dumps(value).decode()[:40]
        raise ValueError(
            f"column {column.name} ({column.type}) holds {shown}, "
            f"expected {KINDS[expected]}"
        )
    if column.type in ("json", "jsonb") and isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError(f"column {column.name} holds invalid JSON text") from None
    return value


# -- the header --------------------------------------------------------------


def make_header(
    threads: Sequence[str],
    layout: Mapping[str, Sequence[Column]],
    rows: Mapping[str, int],
    now: datetime.datetime,
) -> dict[str, Any]:
    """The first line of an export."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now.isoformat(),
        "threads": list(threads),
        "tables": {t: {c.name: c.type for c in layout[t]} for t in TABLES},
        "rows": {t: rows[t] for t in TABLES},
    }


@dataclass
class Header:
    threads: list[str]
    tables: dict[str, list[Column]]
    rows: dict[str, int]


def parse_header(data: Any) -> Header:
    """Check a header line's content; ValueError saying what is wrong.

    >>> parse_header({"format": "x"})
    Traceback (most recent call last):
    ...
    ValueError: not a langgraph-postgres export (format 'x')
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else None
        raise ValueError(f"not a langgraph-postgres export (format {got!r})")
    if data.get("version") != VERSION:
        raise ValueError(
            f"export version {data.get('version')!r} is not supported "
            f"(this langgraph-postgres reads version {VERSION})"
        )
    threads, tables, rows = data.get("threads"), data.get("tables"), data.get("rows")
    if not isinstance(threads, list) or not all(isinstance(t, str) for t in threads):
        raise ValueError('the header\'s "threads" is not a list of thread ids')
    if not isinstance(tables, dict) or sorted(tables) != sorted(TABLES):
        raise ValueError(
            f'the header\'s "tables" must name exactly {", ".join(TABLES)}'
        )
    parsed: dict[str, list[Column]] = {}
    for table in TABLES:
        columns = tables[table]
        if not isinstance(columns, dict) or not all(
            isinstance(v, str) for v in columns.values()
        ):
            raise ValueError(f'the header\'s "tables.{table}" is not {{column: type}}')
        parsed[table] = [Column(name, type_) for name, type_ in columns.items()]
    if not isinstance(rows, dict) or not all(
        isinstance(rows.get(t), int) for t in TABLES
    ):
        raise ValueError("the header's \"rows\" does not count each table's rows")
    return Header(threads, parsed, {t: rows[t] for t in TABLES})


def layout_problems(
    source: Mapping[str, Sequence[Column]], target: Mapping[str, Sequence[Column]]
) -> list[str]:
    """Why rows of the ``source`` layout cannot go into ``target`` as they
    are: a column the target lacks or types differently, or a required
    target column the file does not fill.

    >>> layout_problems({"t": [Column("a", "text")]}, {"t": [Column("a", "bytea")]})
    ['t.a is text in the file but bytea in the database']
    """
    problems = []
    for table, columns in source.items():
        have = {c.name: c for c in target.get(table, [])}
        for column in columns:
            if column.name not in have:
                problems.append(f"{table}.{column.name} is not in the database")
            elif have[column.name].type != column.type:
                problems.append(
                    f"{table}.{column.name} is {column.type} in the file but "
                    f"{have[column.name].type} in the database"
                )
        named = {c.name for c in columns}
        for column in target.get(table, []):
            if column.name not in named and column.not_null and not column.has_default:
                problems.append(
                    f"{table}.{column.name} is required but not in the file"
                )
    return problems


# -- reading an import -------------------------------------------------------


@dataclass
class ThreadTally:
    """What the file holds for one thread."""

    thread_id: str
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    bytes: int = 0


def read_records(
    lines: Iterator[str], header: Header, target: Mapping[str, Sequence[Column]]
) -> Iterator[tuple[int, str, list[Any], str, int]]:
    """The rows after the header: ``(line, table, values, thread, size)``,
    values in the header's column order, decoded for insertion; FileError
    at the first malformed line, and at the end when rows are missing."""
    types = {t: {c.name: c for c in target[t]} for t in TABLES}
    columns = {t: [types[t][c.name] for c in header.tables[t]] for t in TABLES}
    names = {t: [c.name for c in header.tables[t]] for t in TABLES}
    threads = set(header.threads)
    seen = dict.fromkeys(TABLES, 0)
    number = 1
    for number, text in enumerate(lines, start=2):
        if not text.strip():
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FileError(number, f"not JSON ({exc})") from None
        if not isinstance(record, dict) or set(record) != {"table", "row"}:
            raise FileError(number, 'expected {"table": ..., "row": {...}}')
        table, row = record["table"], record["row"]
        if table not in TABLES:
            raise FileError(number, f"unknown table {table!r}")
        if not isinstance(row, dict):
            raise FileError(number, '"row" is not an object')
        unknown = [c for c in row if c not in names[table]]
        if unknown:
            raise FileError(number, f"unknown column {table}.{unknown[0]}")
        missing = [c for c in names[table] if c not in row]
        if missing:
            raise FileError(number, f"missing column {table}.{missing[0]}")
        try:
            values = [decode_value(c, row[c.name]) for c in columns[table]]
        except ValueError as exc:
            raise FileError(number, f"{table}: {exc}") from None
        thread = row.get("thread_id")
        if thread not in threads:
            raise FileError(number, f"thread {thread!r} is not in the header's threads")
        size = sum(len(v) for v in values if isinstance(v, (bytes, str)))
        seen[table] += 1
        yield number, table, values, thread, size
    short = [t for t in TABLES if seen[t] != header.rows[t]]
    if short:
        t = short[0]
        raise FileError(
            number,
            f"the file has {seen[t]} {t} rows but its header says "
            f"{header.rows[t]} (was it cut short?)",
        )


def open_header(lines: Iterator[str]) -> Header:
    try:
        first = next(lines)
    except StopIteration:
        raise FileError(1, "the input is empty; expected an export's header") from None
    try:
        data = orjson.loads(first)
    except orjson.JSONDecodeError as exc:
        raise FileError(1, f"not JSON ({exc})") from None
    try:
        return parse_header(data)
    except ValueError as exc:
        raise FileError(1, str(exc)) from None


def rename(values: list[Any], header: Header, table: str, new_id: str) -> list[Any]:
    """``values`` with the thread id set to ``new_id``."""
    position = [c.name for c in header.tables[table]].index("thread_id")
    values[position] = new_id
    return values
