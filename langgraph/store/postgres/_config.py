"""What a store is configured with: the pool, the vector index, the TTLs.

The ``TypedDict`` classes are the shapes callers write (the same names and
keys as ``langgraph-checkpoint-postgres``); :class:`VectorIndex` and
:func:`check_ttl_config` check them once, when the store is built, so that a
bad configuration fails there, with a message saying what to write instead,
and never halfway through a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langgraph.store.base import (
    IndexConfig,
    TTLConfig,
    ensure_embeddings,
    tokenize_path,
)
from typing_extensions import TypedDict

from langgraph.checkpoint.postgres._pg.options import PoolConfig

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings


class ANNIndexConfig(TypedDict, total=False):
    """The pgvector index over the stored embeddings.

    ``kind``: ``"hnsw"`` (default; best recall per query time), ``"ivfflat"``
    (faster to build, build it once the table holds data) or ``"flat"`` (no
    index: every search compares against every vector, exact). ``vector_type``:
    ``"vector"`` (default, 4-byte floats) or ``"halfvec"`` (2-byte floats:
    half the size, slightly less precise).
    """

    kind: Literal["hnsw", "ivfflat", "flat"]
    vector_type: Literal["vector", "halfvec"]


class HNSWConfig(ANNIndexConfig, total=False):
    """An HNSW index: ``m`` links per node (pgvector's default 16) and
    ``ef_construction`` candidates while building (default 64)."""

    kind: Literal["hnsw"]  # type: ignore[misc]
    m: int
    ef_construction: int


class IVFFlatConfig(ANNIndexConfig, total=False):
    """An IVFFlat index with ``nlist`` lists (pgvector's default 100; about
    rows / 1000 up to a million rows, then the square root of the rows)."""

    kind: Literal["ivfflat"]  # type: ignore[misc]
    nlist: int


class PostgresIndexConfig(IndexConfig, total=False):
    """Semantic search settings: ``dims``, ``embed`` and ``fields`` as
    LangGraph's ``IndexConfig``, plus the pgvector index
    (``ann_index_config``) and the distance (``"cosine"``, the default,
    ``"l2"`` or ``"inner_product"``).

    >>> index: PostgresIndexConfig = {
    ...     "dims": 1536,
    ...     "embed": "openai:text-embedding-3-small",
    ...     "fields": ["text"],
    ...     "ann_index_config": {"kind": "hnsw", "m": 16},
    ... }
    """

    ann_index_config: ANNIndexConfig
    distance_type: Literal["l2", "inner_product", "cosine"]


#: pgvector's ``<op>`` per distance, and the operator class an index needs.
DISTANCE_OPERATORS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
OPERATOR_CLASS_SUFFIX = {
    "cosine": "cosine_ops",
    "l2": "l2_ops",
    "inner_product": "ip_ops",
}
#: pgvector's limits on indexed dimensions, by storage type.
MAX_INDEXED_DIMS = {"vector": 2000, "halfvec": 4000}
MAX_DIMS = 16000
#: pgvector's default number of IVFFlat lists.
DEFAULT_IVFFLAT_LISTS = 100

_INDEX_PARAMETERS = {
    "hnsw": {"m": "m", "ef_construction": "ef_construction"},
    "ivfflat": {"nlist": "lists", "lists": "lists"},
    "flat": {},
}


def _bad_config(message: str) -> ValueError:
    return ValueError(f"index config: {message}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad_config(f"{what} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True)
class VectorIndex:
    """A checked ``index=`` configuration: what to embed, and how to store
    and search the vectors.

    ``fields`` pairs each configured path with its tokens (``"$"`` stays
    ``"$"``: the whole value). ``vectors_per_item`` estimates how many vectors
    an item gets, to size the candidate set of a search.
    """

    dims: int
    distance: Literal["l2", "inner_product", "cosine"]
    kind: Literal["hnsw", "ivfflat", "flat"]
    vector_type: Literal["vector", "halfvec"]
    parameters: tuple[tuple[str, int], ...]
    fields: tuple[tuple[str, str | list[str]], ...]
    vectors_per_item: int

    @classmethod
    def from_config(cls, config: PostgresIndexConfig) -> VectorIndex:
        """Check ``config``; raise a ``ValueError`` naming what to change."""
        if not isinstance(config, dict):
            raise _bad_config(
                f"expected a dict such as {{'dims': 1536, 'embed': ...}}, not "
                f"{type(config).__name__}"
            )
        if "dims" not in config:
            raise _bad_config("'dims' is required: the length of each embedding")
        dims = _positive_int(config["dims"], "'dims'")
        if dims > MAX_DIMS:
            raise _bad_config(f"'dims' is {dims}; pgvector holds at most {MAX_DIMS}")
        distance = config.get("distance_type", "cosine")
        if distance not in DISTANCE_OPERATORS:
            raise _bad_config(
                f"'distance_type' must be one of {sorted(DISTANCE_OPERATORS)}, "
                f"not {distance!r}"
            )
        ann = dict(config.get("ann_index_config") or {})
        kind = ann.pop("kind", "hnsw")
        if kind not in _INDEX_PARAMETERS:
            raise _bad_config(
                f"ann_index_config 'kind' must be 'hnsw', 'ivfflat' or 'flat', "
                f"not {kind!r}"
            )
        vector_type = ann.pop("vector_type", "vector")
        if vector_type not in MAX_INDEXED_DIMS:
            raise _bad_config(
                "ann_index_config 'vector_type' must be 'vector' or 'halfvec', "
                f"not {vector_type!r}"
            )
        if kind != "flat" and dims > MAX_INDEXED_DIMS[vector_type]:
            raise _bad_config(
                f"pgvector indexes at most {MAX_INDEXED_DIMS[vector_type]} "
                f"dimensions of {vector_type!r}, and 'dims' is {dims}: use "
                "vector_type 'halfvec' (up to 4000), or kind 'flat' (no index)"
            )
        known = _INDEX_PARAMETERS[kind]
        parameters: dict[str, int] = {}
        for name, value in ann.items():
            if name not in known:
                raise _bad_config(
                    f"ann_index_config key {name!r} does not apply to kind "
                    f"{kind!r}; it takes {sorted(known) or 'no parameters'}"
                )
            parameters[known[name]] = _positive_int(value, f"ann_index_config {name!r}")
        fields, vectors_per_item = tokenize_fields(config.get("fields"))
        return cls(
            dims=dims,
            distance=distance,
            kind=kind,  # type: ignore[arg-type]  # checked above
            vector_type=vector_type,  # type: ignore[arg-type]
            parameters=tuple(sorted(parameters.items())),
            fields=fields,
            vectors_per_item=vectors_per_item,
        )

    @property
    def operator(self) -> str:
        """pgvector's distance operator (smaller is closer, for all three)."""
        return DISTANCE_OPERATORS[self.distance]

    @property
    def operator_class(self) -> str:
        return f"{self.vector_type}_{OPERATOR_CLASS_SUFFIX[self.distance]}"

    @property
    def index_options(self) -> str:
        """The ``WITH (...)`` clause of the index, or nothing."""
        if not self.parameters:
            return ""
        return " WITH (" + ", ".join(f"{k} = {v}" for k, v in self.parameters) + ")"

    @property
    def lists(self) -> int:
        """An IVFFlat index's number of lists."""
        return dict(self.parameters).get("lists", DEFAULT_IVFFLAT_LISTS)


def tokenize_fields(
    fields: Any,
) -> tuple[tuple[tuple[str, str | list[str]], ...], int]:
    """Check the ``fields`` of an index config (or of ``put(index=...)``) and
    tokenize each path; return them with the number of vectors they give an
    item at least."""
    if fields is None:
        fields = ["$"]
    elif isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, (list, tuple)) or not all(
        isinstance(f, str) and f for f in fields
    ):
        raise _bad_config(
            f"'fields' must be a list of JSON paths such as ['text', "
            f"'tags[*]'], not {fields!r}"
        )
    tokenized: list[tuple[str, str | list[str]]] = []
    for path in fields:
        tokenized.append((path, "$" if path == "$" else tokenize_path(path)))
    return tuple(tokenized), max(1, len(tokenized))


def make_embeddings(config: PostgresIndexConfig) -> Embeddings:
    """The embedder of ``config['embed']``: LangChain ``Embeddings``, a sync
    or async function of a list of texts, or a ``"provider:model"`` string
    (which needs ``langchain`` installed)."""
    embed = config.get("embed")
    if embed is None:
        raise _bad_config(
            "'embed' is required: an Embeddings object, a function from a list "
            "of texts to a list of vectors, or a 'provider:model' string"
        )
    return ensure_embeddings(embed)


def legacy_index_config(
    config: PostgresIndexConfig, vector_index: VectorIndex
) -> dict[str, Any]:
    """``store.index_config`` as ``langgraph-checkpoint-postgres`` exposes it:
    the caller's config plus the tokenized fields and the vector estimate."""
    legacy: dict[str, Any] = dict(config)
    legacy["__tokenized_fields"] = list(vector_index.fields)
    legacy["__estimated_num_vectors"] = vector_index.vectors_per_item
    return legacy


#: The longest TTL the table holds: ``ttl_minutes`` is an integer column
#: (about 4000 years).
MAX_TTL_MINUTES = 2**31 - 1


def check_ttl_minutes(ttl: Any, what: str = "ttl") -> float | None:
    """Check a TTL in minutes (``None``: never expires)."""
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
        or ttl > MAX_TTL_MINUTES
    ):
        raise ValueError(
            f"{what} must be a positive number of minutes (fractions allowed, "
            f"e.g. 0.5 for 30 seconds; at most {MAX_TTL_MINUTES}) or None for "
            f"no expiry, not {ttl!r}"
        )
    return float(ttl)


_TTL_KEYS = ("default_ttl", "refresh_on_read", "omit_expired", "sweep_interval_minutes")


def check_ttl_config(ttl: TTLConfig | None) -> TTLConfig | None:
    """Check a ``ttl=`` configuration."""
    if ttl is None:
        return None
    if not isinstance(ttl, dict):
        raise ValueError(
            "ttl must be a dict such as {'default_ttl': 60}, not "
            f"{type(ttl).__name__}"
        )
    unknown = sorted(set(ttl) - set(_TTL_KEYS))
    if unknown:
        raise ValueError(f"unknown ttl config keys {unknown}: use {list(_TTL_KEYS)}")
    check_ttl_minutes(ttl.get("default_ttl"), "ttl 'default_ttl'")
    check_ttl_minutes(ttl.get("sweep_interval_minutes"), "ttl 'sweep_interval_minutes'")
    for flag in ("refresh_on_read", "omit_expired"):
        if flag in ttl and not isinstance(ttl[flag], bool):
            raise ValueError(f"ttl {flag!r} must be True or False, not {ttl[flag]!r}")
    return ttl


def sweep_interval(ttl: TTLConfig | None, override: float | None) -> float:
    """Minutes between two sweeps: the argument, the config, or 5."""
    minutes = override or (ttl or {}).get("sweep_interval_minutes") or 5
    return float(check_ttl_minutes(minutes, "sweep_interval_minutes") or 5)


__all__: Sequence[str] = (
    "ANNIndexConfig",
    "HNSWConfig",
    "IVFFlatConfig",
    "PoolConfig",
    "PostgresIndexConfig",
    "TTLConfig",
    "VectorIndex",
)
