"""The pieces of a batch's plan: what the builders of statements share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.store.postgres._config import VectorIndex

#: Which result a statement's rows fill ("none": its rows are not wanted).
Handler = Literal["get", "search", "list", "none"]


@dataclass
class StoreSettings:
    """What a plan needs to know about its store (no connection)."""

    schema: str | None
    index: VectorIndex | None
    omit_expired: bool
    #: pgvector's version, once a semantic search has asked for it.
    pgvector: tuple[int, ...] | None = None


@dataclass
class Planned:
    """A statement of the plan, and which result its rows fill."""

    statement: Statement
    handler: Handler = "none"
    position: int = -1
    #: A semantic search's cap on candidates (None: exact or not semantic).
    candidates: int | None = None
    #: The same search without the cap and the index, should the capped one
    #: come back short.
    exact: Statement | None = None


@dataclass
class DocumentText:
    """A text of a put to embed, and where its vector goes."""

    prefix: str
    key: str
    field_name: str
    text: str
