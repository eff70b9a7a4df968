"""The statements of a batch's reads: gets, searches, namespace listings.

Each builder takes the store's :class:`~._plan.StoreSettings` and the
operations, and returns statements with their parameters; nothing here
touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from langgraph.store.base import GetOp, ListNamespacesOp, SearchOp

from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.store.postgres import _sql
from langgraph.store.postgres._filters import FilterSQL
from langgraph.store.postgres._plan import Planned, StoreSettings
from langgraph.store.postgres._values import escape_like, namespace_text

#: Embeddings per semantic search result requested, at least, taken from
#: the ANN index before keeping each item's best: an item has several
#: vectors when several fields (or list elements) are embedded.
CANDIDATES_PER_RESULT = 2
#: pgvector's bounds on ``hnsw.ef_search``.
EF_SEARCH_BOUNDS = (40, 1000)
#: pgvector's first version with iterative index scans.
ITERATIVE_SCANS_SINCE = (0, 8)


def _render(settings: StoreSettings, sql: str) -> str:
    return _sql.render(sql, settings.schema)


def get_statement(settings: StoreSettings, gets: Sequence[GetOp]) -> Statement:
    """One statement for all the gets of a batch (refreshing TTLs as asked)."""
    params: dict[str, Any] = {
        "prefixes": [namespace_text(op.namespace) for op in gets],
        "keys": [op.key for op in gets],
    }
    refresh = [bool(op.refresh_ttl) for op in gets]
    if any(refresh):
        sql = _sql.GET_REFRESHING_SQL
        params["refresh"] = refresh
    else:
        sql = _sql.GET_SQL
    live = _sql.LIVE if settings.omit_expired else "TRUE"
    return Statement(_render(settings, sql.format(live=live)), params)


def _where(settings: StoreSettings, op: SearchOp, params: dict[str, Any]) -> str:
    parts = []
    if op.namespace_prefix:
        ns = namespace_text(op.namespace_prefix)
        params["ns"] = ns
        params["ns_below"] = escape_like(ns) + ".%"
        parts.append(_sql.IN_NAMESPACE)
    if op.filter:
        filters = FilterSQL()
        parts.append(filters.condition(op.filter))
        params.update(filters.params)
    if settings.omit_expired:
        parts.append(_sql.LIVE)
    return " AND ".join(parts) or "TRUE"


def _wrap(
    settings: StoreSettings, sql: str, order: str, op: SearchOp, params: dict[str, Any]
) -> Statement:
    if op.refresh_ttl:
        sql = _sql.SEARCH_REFRESHING_SQL.format(search=sql, order=order)
    return Statement(_render(settings, sql), params)


def search_statements(
    settings: StoreSettings,
    position: int,
    op: SearchOp,
    query: str | None,
    *,
    exact_only: bool,
) -> list[Planned]:
    """The statements of one search: plain, or semantic with ``query`` (an
    embedding as text), capped through the ANN index unless ``exact_only``."""
    params: dict[str, Any] = {"limit": op.limit, "offset": op.offset}
    where = _where(settings, op, params)
    index = settings.index
    if query is None or index is None:
        sql = _sql.SEARCH_SQL.format(where=where)
        return [
            Planned(
                _wrap(settings, sql, _sql.SEARCH_ORDER, op, params), "search", position
            )
        ]
    params["query"] = query
    vector = {"op": index.operator, "vector_type": index.vector_type}

    def search(nearest: str, params: dict[str, Any]) -> Statement:
        # One format() call: the filters in `where` may hold braces.
        sql = _sql.SEMANTIC_SEARCH_SQL.format(
            nearest=nearest.format(**vector),
            where=where,
            score=_sql.SCORES[index.distance],
            **vector,
        )
        return _wrap(settings, sql, _sql.SEMANTIC_ORDER, op, params)

    exact = search("", params)
    if exact_only:
        return [Planned(exact, "search", position)]
    wanted = op.offset + op.limit
    candidates = max(wanted, 1) * index.vectors_per_item * CANDIDATES_PER_RESULT
    capped = search(_sql.NEAREST, {**params, "candidates": candidates})
    planned = [
        Planned(Statement(sql, values))
        for sql, values in _index_settings(settings, candidates)
    ]
    planned.append(Planned(capped, "search", position, candidates, exact))
    return planned


def _index_settings(
    settings: StoreSettings, candidates: int
) -> list[tuple[str, dict[str, Any]]]:
    index = settings.index
    assert index is not None
    iterative = (settings.pgvector or (0,)) >= ITERATIVE_SCANS_SINCE
    low, high = EF_SEARCH_BOUNDS
    if index.kind == "hnsw":
        ef_search = str(min(high, max(low, candidates)))
        statements = [(_sql.HNSW_SETTINGS_SQL, {"ef_search": ef_search})]
        if iterative:
            statements.append((_sql.HNSW_ITERATIVE_SQL, {}))
        return statements
    if index.kind == "ivfflat":
        # No iterative scan: its later rounds add lists whose vectors may be
        # nearer than those already returned, so the candidates' LIMIT would
        # keep farther ones. A page the probed lists cannot fill is searched
        # again exactly instead (exact_searches).
        probes = str(max(1, round(math.sqrt(index.lists))))
        return [(_sql.IVFFLAT_SETTINGS_SQL, {"probes": probes})]
    return []


def exact_searches(
    settings: StoreSettings,
    searches: dict[int, SearchOp],
    planned: list[Planned],
    rows: list[list[Any]],
) -> list[Planned]:
    """Semantic searches to run again without a cap on candidates: those
    whose page is not full. Through an ANN index, a scan may stop early
    (HNSW's ef_search, IVFFlat's probed lists, pgvector's cap on an
    iterative scan), so a short page may hide matches; without an index
    (``flat``), candidates fewer than the cap were all there are."""
    again = []
    flat = settings.index is not None and settings.index.kind == "flat"
    for entry, found in zip(planned, rows):
        cap = entry.candidates
        if cap is None:
            continue
        if len(found) >= searches[entry.position].limit:
            continue
        if flat and found and found[0][6] < cap:
            continue
        assert entry.exact is not None
        again.append(Planned(entry.exact, "search", entry.position))
    return again


def list_statement(settings: StoreSettings, op: ListNamespacesOp) -> Statement:
    """The statement of one ``list_namespaces``."""
    params: dict[str, Any] = {"limit": op.limit, "offset": op.offset}
    labels = _sql.LABELS
    if op.max_depth is not None:
        params["depth"] = op.max_depth
        labels = f"({labels})[1:%(depth)s]"
    parts = []
    for n, condition in enumerate(op.match_conditions or ()):
        path = tuple(condition.path)
        if not path:
            continue
        if condition.match_type not in ("prefix", "suffix"):
            raise ValueError(
                f"list_namespaces match_type must be 'prefix' or 'suffix', "
                f"not {condition.match_type!r}"
            )
        parts.append(f"cardinality({_sql.LABELS}) >= {len(path)}")
        for i, label in enumerate(path):
            if label == "*":
                continue
            name = f"c{n}_{i}"
            params[name] = label
            if condition.match_type == "prefix":
                at = str(i + 1)
            else:
                at = f"cardinality({_sql.LABELS}) - {len(path) - 1 - i}"
            parts.append(f"({_sql.LABELS})[{at}] = %({name})s")
    if settings.omit_expired:
        parts.append(_sql.LIVE)
        sql = _sql.LIST_LIVE_NAMESPACES_SQL
    else:
        sql = _sql.LIST_NAMESPACES_SQL
    where = " AND ".join(parts) or "TRUE"
    return Statement(_render(settings, sql.format(labels=labels, where=where)), params)
