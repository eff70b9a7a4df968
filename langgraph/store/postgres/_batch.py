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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

from langgraph.store.postgres import _reads
from langgraph.store.postgres._config import (
    VectorIndex,
    check_ttl_minutes,
    tokenize_fields,
)
from langgraph.store.postgres._filters import FilterSQL
from langgraph.store.postgres._plan import DocumentText, Planned, StoreSettings
from langgraph.store.postgres._values import (
    check_key,
    check_max_depth,
    check_page,
    check_put_namespace,
    check_value,
    namespace_text,
    vector_text,
)
from langgraph.store.postgres._writes import write_statements


@dataclass
class BatchPlan:
    """The operations of one ``batch()``, checked and grouped."""

    settings: StoreSettings
    size: int
    gets: list[tuple[int, GetOp]] = field(default_factory=list)
    searches: dict[int, SearchOp] = field(default_factory=dict)
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
                check_key(op.key, "get")
                plan.gets.append((position, op))
            elif isinstance(op, SearchOp):
                check_page(op.limit, op.offset, "search")
                if op.filter is not None:
                    FilterSQL().condition(op.filter)  # refuses a bad filter now
                if op.query is not None and not isinstance(op.query, str):
                    raise ValueError(f"search query must be a str, not {op.query!r}")
                plan.searches[position] = op
                if op.query and settings.index and op.query not in plan.queries:
                    plan.queries.append(op.query)
            elif isinstance(op, ListNamespacesOp):
                check_page(op.limit, op.offset, "list_namespaces")
                check_max_depth(op.max_depth)
                plan.listings.append((position, op))
            elif isinstance(op, PutOp):
                check_put_namespace(op.namespace)
                check_key(op.key, "put")
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
        settings = self.settings
        queries: dict[str, str] = {}
        if settings.index is not None:
            if len(document_vectors) != len(self.documents):
                raise ValueError(
                    f"the embedder returned {len(document_vectors)} vectors for "
                    f"{len(self.documents)} texts"
                )
            for text, vector in zip(self.queries, query_vectors):
                dims = settings.index.dims
                queries[text] = vector_text(vector, dims, "a query embedding")
        planned: list[Planned] = []
        if self.gets:
            gets = [op for _, op in self.gets]
            planned.append(Planned(_reads.get_statement(settings, gets), "get"))
        for position, search in self.searches.items():
            query = queries.get(search.query) if search.query else None
            # A search again after a short page (exact_searches) would run
            # after this batch's writes and see them: with writes, search
            # exactly now, in the batch's transaction, before them.
            planned += _reads.search_statements(
                settings, position, search, query, exact_only=bool(self.puts)
            )
        for position, listing in self.listings:
            statement = _reads.list_statement(settings, listing)
            planned.append(Planned(statement, "list", position))
        writes = write_statements(
            settings, list(self.puts.values()), self.documents, document_vectors
        )
        planned += [Planned(statement) for statement in writes]
        return planned

    def exact_searches(
        self, planned: list[Planned], rows: list[list[Any]]
    ) -> list[Planned]:
        """The semantic searches to run again, exactly (see
        :func:`._reads.exact_searches`)."""
        return _reads.exact_searches(self.settings, self.searches, planned, rows)

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
