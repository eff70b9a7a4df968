"""The statements of a batch's writes: deletes, upserts and their vectors.

Built free of I/O from the batch's last put per item; they run after the
batch's reads, in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from langgraph.store.base import PutOp

from langgraph.checkpoint.postgres._pg.jsonb import dumps
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.store.postgres import _sql
from langgraph.store.postgres._plan import DocumentText, StoreSettings
from langgraph.store.postgres._values import namespace_text, vector_text


def write_statements(
    settings: StoreSettings,
    puts: Sequence[PutOp],
    documents: Sequence[DocumentText],
    document_vectors: Sequence[Sequence[float]],
) -> list[Statement]:
    """Delete the items put as ``None``, upsert the others and replace their
    vectors with those of ``documents``."""
    render = _sql.render
    schema = settings.schema
    deletes = [op for op in puts if op.value is None]
    upserts = [op for op in puts if op.value is not None]
    statements = []
    if deletes:
        deleted = _item_ids(deletes)
        statements.append(Statement(render(_sql.DELETE_ITEMS_SQL, schema), deleted))
    if len(upserts) == 1:
        statements.append(_upsert_one(settings, upserts[0]))
    elif upserts:
        params: dict[str, list[Any]] = {
            **_item_ids(upserts),
            "values": [dumps(op.value).decode() for op in upserts],
            "ttls": [op.ttl for op in upserts],
        }
        statements.append(Statement(render(_sql.UPSERT_ITEMS_SQL, schema), params))
    if upserts and settings.index is not None:
        statements += _vector_statements(settings, upserts, documents, document_vectors)
    return statements


def _item_ids(ops: Sequence[PutOp]) -> dict[str, list[Any]]:
    """The ``prefixes`` and ``keys`` parameters naming the items of ``ops``."""
    return {
        "prefixes": [namespace_text(op.namespace) for op in ops],
        "keys": [op.key for op in ops],
    }


def _upsert_one(settings: StoreSettings, op: PutOp) -> Statement:
    params: dict[str, Any] = {
        "prefix": namespace_text(op.namespace),
        "key": op.key,
        "value": dumps(op.value).decode(),
    }
    if op.ttl is None:
        expiry = _sql.NEVER_EXPIRES
    else:
        expiry = _sql.EXPIRES
        params["seconds"] = op.ttl * 60
        params["minutes"] = math.ceil(op.ttl)
    sql = _sql.UPSERT_ITEM_SQL.format(expiry=expiry)
    return Statement(_sql.render(sql, settings.schema), params)


def _vector_statements(
    settings: StoreSettings,
    upserts: list[PutOp],
    documents: Sequence[DocumentText],
    document_vectors: Sequence[Sequence[float]],
) -> list[Statement]:
    index = settings.index
    assert index is not None
    delete = _sql.render(_sql.DELETE_VECTORS_SQL, settings.schema)
    statements = [Statement(delete, _item_ids(upserts))]
    if documents:
        params = {
            "prefixes": [d.prefix for d in documents],
            "keys": [d.key for d in documents],
            "fields": [d.field_name for d in documents],
            "embeddings": [
                vector_text(v, index.dims, f"the embedding of {d.field_name!r}")
                for d, v in zip(documents, document_vectors)
            ],
        }
        sql = _sql.INSERT_VECTORS_SQL.format(vector_type=index.vector_type)
        statements.append(Statement(_sql.render(sql, settings.schema), params))
    return statements
