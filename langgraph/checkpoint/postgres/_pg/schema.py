"""Postgres identifiers: quoting them, and checking a schema name a caller passes."""

from __future__ import annotations

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
