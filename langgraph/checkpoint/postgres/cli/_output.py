"""Writing results: a table or lines for people, JSON for scripts.

Every command builds plain data first and hands it to :class:`Output`, which
prints it as JSON under ``--json`` and through ``rich`` otherwise. Colours are
used only on a terminal (rich's own detection, which also honours
``NO_COLOR``); piped output is plain text, wide enough not to fold ids.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

#: Width of piped (non-terminal) human output: ids and timestamps stay on
#: one line, so that ``grep`` and ``awk`` see whole rows.
PIPED_WIDTH = 240


def jsonable(value: Any) -> Any:
    """``value`` as data that JSON can carry, for ``--json`` output.

    Pydantic models (LangChain messages) become their fields, bytes become
    ``{"base64": ...}``, sets and tuples lists; anything else unknown its
    ``repr``, so that output never fails on a value the command only shows.

    >>> jsonable({"a": (1, b"hi"), "b": {2}})
    {'a': [1, {'base64': 'aGk='}], 'b': [2]}
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = (
            sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        )
        return [jsonable(v) for v in items]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return jsonable(model_dump())
        except Exception:  # noqa: BLE001 - fall back to repr below
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        )
    if hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    return repr(value)


class Output:
    """Where a command's results go (``--json`` or human) and how."""

    def __init__(self, *, json_mode: bool, stream: IO[str] | None = None) -> None:
        self.json_mode = json_mode
        self.stream = stream if stream is not None else sys.stdout
        terminal = self.stream.isatty() if hasattr(self.stream, "isatty") else False
        width = None if terminal else int(os.environ.get("COLUMNS") or PIPED_WIDTH)
        self.console = Console(
            file=self.stream, highlight=False, width=width, soft_wrap=not terminal
        )

    def json(self, data: Any) -> None:
        """Print ``data`` as one indented JSON document."""
        text = orjson.dumps(jsonable(data), option=orjson.OPT_INDENT_2).decode()
        self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        """Print ``data`` as JSON under ``--json``, else call ``human()``."""
        if self.json_mode:
            self.json(data)
        else:
            human()

    def line(self, text: str = "", style: str | None = None) -> None:
        """Print one line of human output (rich markup is not interpreted)."""
        self.console.print(text, style=style, markup=False)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Print ``key: value`` lines, keys aligned."""
        items = [(k, "" if v is None else str(v)) for k, v in pairs]
        width = max((len(k) for k, _ in items), default=0)
        for key, value in items:
            self.console.print(f"{key + ':':<{width + 1}} {value}", markup=False)

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str | tuple[str, str]],
        *,
        title: str | None = None,
        empty: str = "(none)",
    ) -> None:
        """Print ``rows`` as a table of ``columns``.

        A column is a key of the rows, or ``(key, heading)``. Numbers are
        right-aligned; ``None`` shows as an empty cell.
        """
        if not rows:
            if title:
                self.line(title, style="bold")
            self.line(empty, style="dim")
            return
        table = Table(
            title=title, title_justify="left", show_edge=False, pad_edge=False
        )
        keys: list[str] = []
        for column in columns:
            key, heading = (column, column) if isinstance(column, str) else column
            numeric = all(
                isinstance(row.get(key), (int, float)) or row.get(key) is None
                for row in rows
            )
            table.add_column(heading, justify="right" if numeric else "left")
            keys.append(key)
        for row in rows:
            table.add_row(
                *("" if row.get(k) is None else str(row.get(k)) for k in keys)
            )
        self.console.print(table)


def human_bytes(size: int | None) -> str:
    """``size`` in bytes, as people read it.

    >>> human_bytes(0), human_bytes(1536), human_bytes(3 * 1024**3)
    ('0 B', '1.5 kB', '3.0 GB')
    """
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
