"""Schemas: checking a schema name a caller passes, and SQL templates whose
object names are filled in for a schema."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterable

#: Postgres truncates longer identifiers, which would merge distinct schemas.
MAX_IDENTIFIER_BYTES = 63


def quote_identifier(name: str) -> str:
    """Quote ``name`` as an SQL identifier (any text is safe; case is kept)."""
    return '"' + name.replace('"', '""') + '"'


def check_schema(schema: str | None) -> str | None:
    """Validate a ``schema=`` argument, with an error that says what to pass."""
    if schema is None:
        return None
    if not isinstance(schema, str):
        raise TypeError(
            f"schema must be a str naming a Postgres schema, not "
            f"{type(schema).__name__} {schema!r}"
        )
    if not schema or "\x00" in schema:
        raise ValueError(
            f"schema {schema!r} is not a usable Postgres schema name: pass a "
            'non-empty name without NUL characters, e.g. schema="tenant_a"'
        )
    if len(schema.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"schema {schema!r} is longer than Postgres' limit of "
            f"{MAX_IDENTIFIER_BYTES} bytes, and Postgres would silently truncate "
            "it: pass a shorter name"
        )
    return schema


def renderer(names: Iterable[str]) -> Callable[[str, str | None], str]:
    """A function that fills in the object ``names`` of SQL templates.

    Templates name a layout's objects (tables, indexes) as placeholders,
    ``$checkpoints`` and so on. The function returns a template with each
    filled in for a schema: schema-qualified for a named schema, bare
    (resolved through the connection's ``search_path``) for ``None``. It is
    cached, since a client renders the same few templates over and over.

    >>> render = renderer(["items"])
    >>> render("SELECT 1 FROM $items", "tenant_a")
    'SELECT 1 FROM "tenant_a".items'
    >>> render("SELECT 1 FROM $items", None)
    'SELECT 1 FROM items'
    """
    known = tuple(names)

    @functools.lru_cache(maxsize=1024)
    def render(template: str, schema: str | None) -> str:
        prefix = "" if schema is None else quote_identifier(schema) + "."
        return string.Template(template).substitute(
            {name: prefix + name for name in known}
        )

    return render
