"""One batch of store operations, planned free of I/O.

:class:`BatchPlan` checks the operations (before anything reaches the
database), says which texts need embedding, turns the operations and the
embeddings into the statements of one transaction, and turns the rows that
come back into results. The shells (:mod:`._sync`, :mod:`.aio`) only embed,
run statements and hand rows back.

Reads run before writes, so every read of a batch sees the store as it was
before the batch, as ``InMemoryStore`` and the existing package do; of
several puts to one item, the last wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    validate_op_namespace,
)

from langgraph.checkpoint.postgres._pg.jsonb import dumps
from langgraph.checkpoint.postgres._pg.statement import Statement
from langgraph.store.postgres import _sql
from langgraph.store.postgres._config import (
    VectorIndex,
    check_ttl_minutes,
    tokenize_fields,
)
from langgraph.store.postgres._filters import FilterSQL

#: Embeddings per semantic search result requested, at least, taken from
#: the ANN index before keeping each item's best: an item has several
#: vectors when several fields (or list elements) are embedded.
CANDIDATES_PER_RESULT = 2
#: pgvector's bounds on ``hnsw.ef_search``.
EF_SEARCH_BOUNDS = (40, 1000)
#: pgvector's first version with iterative index scans.
ITERATIVE_SCANS_SINCE = (0, 8)

Handler = Literal["get", "search", "list", "none"]


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


def _check_key(key: Any, op: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{op} key must be a str, not {type(key).__name__} {key!r}")
    if "\x00" in key:
        raise ValueError(f"{op} key {key!r} contains a NUL character")
    return key


def _check_page(limit: Any, offset: Any, op: str) -> None:
    for name, number in (("limit", limit), ("offset", offset)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(
                f"{op} {name} must be a non-negative integer, not {number!r}"
            )


def _check_put_namespace(namespace: tuple[str, ...]) -> None:
    if not namespace:
        raise ValueError(
            "put needs a namespace of at least one label, e.g. ('users', 'alice')"
        )
    if namespace[0] == "langgraph":
        raise ValueError(
            f"namespace {namespace!r}: the root label 'langgraph' is reserved "
            "for LangGraph itself; use another first label"
        )


@dataclass
class StoreSettings:
    """What a plan needs to know about its store (no connection)."""

    schema: str | None
    index: VectorIndex | None
    omit_expired: bool
    #: pgvector's version, once a semantic search has asked for it.
    pgvector: tuple[int, ...] | None = None


@dataclass
class BatchPlan:
    """The operations of one ``batch()``, checked and grouped."""

    settings: StoreSettings
    size: int
    gets: list[tuple[int, GetOp]] = field(default_factory=list)
    searches: list[tuple[int, SearchOp]] = field(default_factory=list)
    listings: list[tuple[int, ListNamespacesOp]] = field(default_factory=list)
    puts: dict[tuple[tuple[str, ...], str], PutOp] = field(default_factory=dict)
    documents: list[DocumentText] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, ops: Iterable[Op], settings: StoreSettings) -> BatchPlan:
        """Check ``ops`` and group them; raise ``ValueError`` (or LangGraph's
        ``InvalidNamespaceError``) for the first bad one, before any I/O."""
        plan = cls(settings, 0)
        for position, op in enumerate(ops):
            plan.size += 1
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                _check_key(op.key, "get")
                plan.gets.append((position, op))
            elif isinstance(op, SearchOp):
                _check_page(op.limit, op.offset, "search")
                if op.filter is not None:
                    FilterSQL().condition(op.filter)  # refuses a bad filter now
                if op.query is not None and not isinstance(op.query, str):
                    raise ValueError(f"search query must be a str, not {op.query!r}")
                plan.searches.append((position, op))
                if op.query and settings.index and op.query not in plan.queries:
                    plan.queries.append(op.query)
            elif isinstance(op, ListNamespacesOp):
                _check_page(op.limit, op.offset, "list_namespaces")
                depth = op.max_depth
                if depth is not None and (
                    isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
                ):
                    raise ValueError(
                        f"list_namespaces max_depth must be a positive integer "
                        f"or None, not {depth!r}"
                    )
                plan.listings.append((position, op))
            elif isinstance(op, PutOp):
                _check_put_namespace(op.namespace)
                _check_key(op.key, "put")
                if op.value is not None:
                    if not isinstance(op.value, Mapping):
                        raise ValueError(
                            f"put value must be a dict (or None to delete), not "
                            f"{type(op.value).__name__}"
                        )
                    check_value(op.value, "put value")
                    check_ttl_minutes(op.ttl)
                if op.index not in (None, False):
                    tokenize_fields(op.index)
                plan.puts[(op.namespace, op.key)] = op
            else:
                raise ValueError(f"unknown store operation: {type(op).__name__}")
        if settings.index is not None:
            plan.documents = plan._documents(settings.index)
        return plan

    def _documents(self, index: VectorIndex) -> list[DocumentText]:
        texts = []
        for op in self.puts.values():
            if op.value is None or op.index is False:
                continue
            fields = index.fields if op.index is None else tokenize_fields(op.index)[0]
            prefix = namespace_text(op.namespace)
            for path, tokens in fields:
                found = get_text_at_path(op.value, tokens)
                for i, text in enumerate(found):
                    name = path if len(found) == 1 else f"{path}.{i}"
                    texts.append(DocumentText(prefix, op.key, name, text))
        return texts

    @property
    def has_semantic_search(self) -> bool:
        return bool(self.queries)

    # -- statements ------------------------------------------------------

    def statements(
        self,
        document_vectors: Sequence[Sequence[float]],
        query_vectors: Sequence[Sequence[float]],
    ) -> list[Planned]:
        """The statements of the batch's transaction, reads first."""
        index = self.settings.index
        queries: dict[str, str] = {}
        if index is not None:
            if len(document_vectors) != len(self.documents):
                raise ValueError(
                    f"the embedder returned {len(document_vectors)} vectors for "
                    f"{len(self.documents)} texts"
                )
            for text, vector in zip(self.queries, query_vectors):
                queries[text] = vector_text(vector, index.dims, "a query embedding")
        planned: list[Planned] = []
        if self.gets:
            planned.append(self._get_statement())
        for position, search in self.searches:
            planned += self._search_statements(position, search, queries)
        for position, listing in self.listings:
            planned.append(Planned(self._list_statement(listing), "list", position))
        planned += self._write_statements(document_vectors)
        return planned

    def _render(self, sql: str) -> str:
        return _sql.render(sql, self.settings.schema)

    def _live(self) -> str:
        return _sql.LIVE if self.settings.omit_expired else "TRUE"

    def _get_statement(self) -> Planned:
        prefixes = [namespace_text(op.namespace) for _, op in self.gets]
        keys = [op.key for _, op in self.gets]
        refresh = [bool(op.refresh_ttl) for _, op in self.gets]
        params: dict[str, Any] = {"prefixes": prefixes, "keys": keys}
        if any(refresh):
            sql = _sql.GET_REFRESHING_SQL
            params["refresh"] = refresh
        else:
            sql = _sql.GET_SQL
        return Planned(
            Statement(self._render(sql.format(live=self._live())), params), "get"
        )

    def _where(self, op: SearchOp, params: dict[str, Any]) -> str:
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
        if self.settings.omit_expired:
            parts.append(_sql.LIVE)
        return " AND ".join(parts) or "TRUE"

    def _search_statements(
        self, position: int, op: SearchOp, queries: dict[str, str]
    ) -> list[Planned]:
        params: dict[str, Any] = {"limit": op.limit, "offset": op.offset}
        where = self._where(op, params)
        index = self.settings.index
        if not (op.query and index is not None):
            sql, order = _sql.SEARCH_SQL.format(where=where), _sql.SEARCH_ORDER
            return [Planned(self._wrap(sql, order, op, params), "search", position)]
        params["query"] = queries[op.query]

        vector = {"op": index.operator, "vector_type": index.vector_type}

        def search(nearest: str, params: dict[str, Any]) -> Statement:
            # One format() call: the filters in `where` may hold braces.
            sql = _sql.SEMANTIC_SEARCH_SQL.format(
                nearest=nearest.format(**vector),
                where=where,
                score=_sql.SCORES[index.distance],
                **vector,
            )
            return self._wrap(sql, _sql.SEMANTIC_ORDER, op, params)

        exact = search("", params)
        if self.puts:
            # Searched again after a short page (exact_searches), it would
            # run after this batch's writes and see them: search exactly
            # now, in the batch's transaction, before them.
            return [Planned(exact, "search", position)]
        wanted = op.offset + op.limit
        candidates = max(wanted, 1) * index.vectors_per_item * CANDIDATES_PER_RESULT
        capped = search(_sql.NEAREST, {**params, "candidates": candidates})
        planned = [
            Planned(Statement(s, p)) for s, p in self._index_settings(candidates)
        ]
        planned.append(Planned(capped, "search", position, candidates, exact))
        return planned

    def _wrap(
        self, sql: str, order: str, op: SearchOp, params: dict[str, Any]
    ) -> Statement:
        if op.refresh_ttl:
            sql = _sql.SEARCH_REFRESHING_SQL.format(search=sql, order=order)
        return Statement(self._render(sql), params)

    def _index_settings(self, candidates: int) -> list[tuple[str, dict[str, Any]]]:
        index = self.settings.index
        assert index is not None
        iterative = (self.settings.pgvector or (0,)) >= ITERATIVE_SCANS_SINCE
        low, high = EF_SEARCH_BOUNDS
        if index.kind == "hnsw":
            ef_search = str(min(high, max(low, candidates)))
            settings = [(_sql.HNSW_SETTINGS_SQL, {"ef_search": ef_search})]
            if iterative:
                settings.append((_sql.HNSW_ITERATIVE_SQL, {}))
            return settings
        if index.kind == "ivfflat":
            # No iterative scan: its later rounds add lists whose vectors may
            # be nearer than those already returned, so the candidates' LIMIT
            # would keep farther ones. A page the probed lists cannot fill is
            # searched again exactly instead (exact_searches).
            probes = str(max(1, round(math.sqrt(index.lists))))
            return [(_sql.IVFFLAT_SETTINGS_SQL, {"probes": probes})]
        return []

    def exact_searches(
        self, planned: list[Planned], rows: list[list[Any]]
    ) -> list[Planned]:
        """Semantic searches to run again without a cap on candidates: those
        whose page is not full. Through an ANN index, a scan may stop early
        (HNSW's ef_search, IVFFlat's probed lists, pgvector's cap on an
        iterative scan), so a short page may hide matches; without an index
        (``flat``), candidates fewer than the cap were all there are."""
        again = []
        flat = self.settings.index is not None and self.settings.index.kind == "flat"
        for entry, found in zip(planned, rows):
            cap = entry.candidates
            if cap is None:
                continue
            op = dict(self.searches)[entry.position]
            if len(found) >= op.limit:
                continue
            if flat and found and found[0][6] < cap:
                continue
            assert entry.exact is not None
            again.append(Planned(entry.exact, "search", entry.position))
        return again

    def _list_statement(self, op: ListNamespacesOp) -> Statement:
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
        if self.settings.omit_expired:
            parts.append(_sql.LIVE)
            sql = _sql.LIST_LIVE_NAMESPACES_SQL
        else:
            sql = _sql.LIST_NAMESPACES_SQL
        where = " AND ".join(parts) or "TRUE"
        return Statement(self._render(sql.format(labels=labels, where=where)), params)

    def _write_statements(
        self, document_vectors: Sequence[Sequence[float]]
    ) -> list[Planned]:
        if not self.puts:
            return []
        deletes = [op for op in self.puts.values() if op.value is None]
        upserts = [op for op in self.puts.values() if op.value is not None]
        planned = []
        params: dict[str, list[Any]]
        if deletes:
            params = {
                "prefixes": [namespace_text(op.namespace) for op in deletes],
                "keys": [op.key for op in deletes],
            }
            planned.append(
                Planned(Statement(self._render(_sql.DELETE_ITEMS_SQL), params))
            )
        if upserts:
            params = {
                "prefixes": [namespace_text(op.namespace) for op in upserts],
                "keys": [op.key for op in upserts],
                "values": [dumps(op.value).decode() for op in upserts],
                "ttls": [op.ttl for op in upserts],
            }
            planned.append(
                Planned(Statement(self._render(_sql.UPSERT_ITEMS_SQL), params))
            )
            index = self.settings.index
            if index is not None:
                planned += self._vector_statements(index, upserts, document_vectors)
        return planned

    def _vector_statements(
        self,
        index: VectorIndex,
        upserts: list[PutOp],
        document_vectors: Sequence[Sequence[float]],
    ) -> list[Planned]:
        rewritten = {
            "prefixes": [namespace_text(op.namespace) for op in upserts],
            "keys": [op.key for op in upserts],
        }
        planned = [Planned(Statement(self._render(_sql.DELETE_VECTORS_SQL), rewritten))]
        if self.documents:
            params = {
                "prefixes": [d.prefix for d in self.documents],
                "keys": [d.key for d in self.documents],
                "fields": [d.field_name for d in self.documents],
                "embeddings": [
                    vector_text(v, index.dims, f"the embedding of {d.field_name!r}")
                    for d, v in zip(self.documents, document_vectors)
                ],
            }
            sql = _sql.INSERT_VECTORS_SQL.format(vector_type=index.vector_type)
            planned.append(Planned(Statement(self._render(sql), params)))
        return planned

    # -- results ---------------------------------------------------------

    def results(
        self,
        planned: list[Planned],
        rows: list[list[Any]],
        deserializer: Any = None,
    ) -> list[Result]:
        """The batch's results, in the order of its operations."""
        results: list[Result] = [None] * self.size
        for entry, found in zip(planned, rows):
            if entry.handler == "get":
                by_id = {(row[0], row[1]): row for row in found}
                for position, op in self.gets:
                    row = by_id.get((namespace_text(op.namespace), op.key))
                    results[position] = (
                        None if row is None else _item(op.namespace, row, deserializer)
                    )
            elif entry.handler == "search":
                results[entry.position] = [
                    _search_item(row, deserializer) for row in found
                ]
            elif entry.handler == "list":
                results[entry.position] = [tuple(row[0]) for row in found]
        return results


def _value(value: Any, deserializer: Any) -> dict[str, Any]:
    if not isinstance(value, dict) and deserializer is not None:
        return deserializer(value)
    return value


def _item(namespace: tuple[str, ...], row: Sequence[Any], deserializer: Any) -> Item:
    return Item(
        value=_value(row[2], deserializer),
        key=row[1],
        namespace=namespace,
        created_at=row[3],
        updated_at=row[4],
    )


def _search_item(row: Sequence[Any], deserializer: Any) -> SearchItem:
    return SearchItem(
        namespace=tuple(row[0].split(".")),
        key=row[1],
        value=_value(row[2], deserializer),
        created_at=row[3],
        updated_at=row[4],
        score=None if row[5] is None else float(row[5]),
    )
