"""Sparse vectors: the value type, the :class:`SparseEmbeddingProvider` protocol, its registry, IDF and fusion.

A sparse provider (``bm25``) turns a text into a :class:`SparseVector` — term ids and
weights — beside the dense provider's vector. Stores that hold sparse vectors
(:class:`vecembed.store.SparseStore`) search them by dot product; hybrid search fuses
the dense and the sparse ranking with :func:`reciprocal_rank_fusion`::

    bm25 = vecembed.load_sparse_provider("bm25")
    store = vecembed.open_store("qdrant", "docs", provider, sparse=bm25, path="./data")
    store.search("query", k=10, mode="hybrid")

Query weights need each term's inverse document frequency over the collection
(:attr:`SparseModelInfo.idf`): a database that computes it (Qdrant's ``Modifier.IDF``)
does so itself; any other store keeps document frequencies beside the collection and
weighs the query with :func:`idf`. Providers are registered as import strings, so
``import vecembed`` imports no stemmer.
"""

from __future__ import annotations

import heapq
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from vecembed.errors import InvalidInputError, UnknownProviderError
from vecembed.types import HealthReport

__all__ = [
    "HYBRID_DEPTH",
    "RRF_K",
    "SPARSE_PROVIDERS",
    "Fusion",
    "SparseEmbeddingProvider",
    "SparseModelInfo",
    "SparseVector",
    "available_sparse_providers",
    "check_sparse_argument",
    "idf",
    "load_sparse_provider",
    "reciprocal_rank_fusion",
    "registered_sparse_name",
]

#: name -> "module:Class", imported only when asked for.
SPARSE_PROVIDERS: dict[str, str] = {
    "bm25": "vecembed.providers.bm25:BM25Provider",
}

#: Reciprocal Rank Fusion's constant k in ``weight / (k + rank)``, rank from 1. 10, tuned on SciFact's train claims
#: (benchmarks/retrieval.py: hybrid nDCG@10 0.713 at k = 60, 0.722 at k = 10, both halves of the claims gain): a
#: small k lets each leg's top few decide. The original paper's and Chroma's default is 60; Qdrant's own is 2 in
#: ``1 / (k + rank - 1)``, so a store passes k + 1 there.
RRF_K = 10

#: Candidates fetched from each leg of a hybrid search when :attr:`Fusion.depth` is None (at least the ``k``
#: asked for): deep enough that a document ranked well by one leg only still reaches a fused top 10.
HYBRID_DEPTH = 100


@dataclass(frozen=True, eq=False)
class SparseVector:
    """A sparse vector: strictly increasing ``uint32`` term ids and their ``float32`` weights (same length).

    Built from any sequences; indices are sorted and checked (no repeats, no negatives, finite
    weights). An empty vector (no terms: an empty text, only stop words) is valid: a store
    accepts it and a sparse search with it finds nothing.
    """

    indices: NDArray[np.uint32]
    values: NDArray[np.float32]

    def __post_init__(self) -> None:
        raw_idx = np.asarray(self.indices)
        if raw_idx.size and (
            raw_idx.dtype.kind not in "iu" or int(raw_idx.min()) < 0 or int(raw_idx.max()) > 2**32 - 1
        ):
            raise InvalidInputError(
                f"SparseVector.indices must be integers in [0, 2**32), got dtype {raw_idx.dtype} "
                f"{raw_idx.min() if raw_idx.size else ''}..{raw_idx.max() if raw_idx.size else ''}"
            )
        idx = raw_idx.astype(np.uint32).reshape(-1)
        val = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if idx.shape != val.shape:
            raise InvalidInputError(
                f"SparseVector: {idx.size} indices but {val.size} values; give one weight per term id"
            )
        if val.size and not np.isfinite(val).all():
            raise InvalidInputError("SparseVector.values must be finite (no NaN or inf)")
        order = np.argsort(idx, kind="stable")
        idx, val = idx[order], val[order]
        if idx.size > 1 and (np.diff(idx.astype(np.int64)) == 0).any():
            raise InvalidInputError("SparseVector.indices repeat a term id; sum the weights of one term first")
        idx.setflags(write=False)
        val.setflags(write=False)
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "values", val)

    @classmethod
    def empty(cls) -> SparseVector:
        """The vector of a text without terms."""
        return cls(np.zeros(0, np.uint32), np.zeros(0, np.float32))

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> SparseVector:
        """``{term_id: weight}`` as a vector."""
        return cls(
            np.fromiter(weights.keys(), np.int64, len(weights)), np.fromiter(weights.values(), np.float32, len(weights))
        )

    def to_dict(self) -> dict[int, float]:
        """``{term_id: weight}`` (JSON-friendly, ids as int)."""
        return {int(i): float(v) for i, v in zip(self.indices, self.values, strict=True)}

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values))

    def __hash__(self) -> int:
        return hash((self.indices.tobytes(), self.values.tobytes()))

    def dot(self, other: SparseVector) -> float:
        """The dot product of two sparse vectors (what a sparse search scores)."""
        common, mine, theirs = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        if not common.size:
            return 0.0
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs].astype(np.float64)))


@dataclass(frozen=True, kw_only=True)
class SparseModelInfo:
    """What a sparse provider encodes with, and the identity of its term space.

    ``fingerprint`` covers everything that changes the vectors (stemmer, language, stop
    words, k1, b, average length, hashing); stores record and compare it like the dense one.
    ``idf``: query weights need the collection's inverse document frequencies (BM25): a store
    applies them (natively or from the document frequencies it keeps). ``options``: the
    load options that rebuild this provider with :func:`load_sparse_provider`.
    """

    name: str
    fingerprint: str
    idf: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInputError("SparseModelInfo.name must not be empty")
        if not self.fingerprint:
            raise InvalidInputError("SparseModelInfo.fingerprint must not be empty")


@runtime_checkable
class SparseEmbeddingProvider(Protocol):
    """Turns texts into :class:`SparseVector` s; :func:`load_sparse_provider` builds one by name."""

    @property
    def info(self) -> SparseModelInfo: ...

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One vector per text, in order (the document-side weights: BM25's saturated, length-normalised tf)."""
        ...

    def embed_query(self, text: str) -> SparseVector:
        """The query's vector (its terms; the store multiplies in IDF where :attr:`SparseModelInfo.idf`)."""
        ...

    def health_check(self) -> HealthReport:
        """Whether the provider can encode (never raises)."""
        ...

    def close(self) -> None:
        """Release what the provider holds."""
        ...


def available_sparse_providers() -> list[str]:
    """The names :func:`load_sparse_provider` accepts."""
    return sorted(SPARSE_PROVIDERS)


def load_sparse_provider(name: str = "bm25", **options: Any) -> SparseEmbeddingProvider:
    """Build the sparse provider registered as ``name`` with ``options`` (e.g. ``language="german"``)."""
    target = SPARSE_PROVIDERS.get(name) if isinstance(name, str) else None
    if target is None:
        raise UnknownProviderError(
            f"unknown sparse provider {name!r}; available: {', '.join(available_sparse_providers())}"
        )
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    provider: SparseEmbeddingProvider = cls(**options)
    return provider


def registered_sparse_name(model: str) -> str | None:
    """The registered name (:func:`load_sparse_provider`'s) that a :attr:`SparseModelInfo.name` starts with
    (``bm25-english`` -> ``bm25``); None when it names no registered provider."""
    for name in sorted(SPARSE_PROVIDERS, key=len, reverse=True):
        if model == name or model.startswith(f"{name}-"):
            return name
    return None


def check_sparse_argument(sparse: Any) -> str | SparseEmbeddingProvider | None:
    """A ``sparse=`` argument (``open_store``, ``migrate``) as given, after checking it is a provider's name, a
    :class:`SparseEmbeddingProvider` or None; anything else raises :class:`~vecembed.errors.InvalidInputError`."""
    if sparse is not None and not isinstance(sparse, str | SparseEmbeddingProvider):
        raise InvalidInputError(
            f"sparse must be a sparse provider's name (e.g. 'bm25') or a SparseEmbeddingProvider, "
            f"got {type(sparse).__name__}; nothing was written"
        )
    return sparse


def idf(document_frequency: int, documents: int) -> float:
    """BM25's inverse document frequency, as Qdrant's ``Modifier.IDF`` computes it.

    ``ln(1 + (N - n + 0.5) / (n + 0.5))`` for a term in ``n`` of ``N`` documents: always
    positive, so a term in every document still counts a little.
    """
    n, total = max(int(document_frequency), 0), max(int(documents), 0)
    return math.log(1.0 + (total - n + 0.5) / (n + 0.5))


@dataclass(frozen=True)
class Fusion:
    """How hybrid search fuses the dense and the sparse ranking: Reciprocal Rank Fusion.

    A document's score is ``sum(weight / (k + rank))`` over the rankings it appears in (rank from 1).
    ``depth``: candidates fetched from each leg (None: the store's choice, at least the ``k`` asked for).
    """

    k: int = RRF_K
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    depth: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise InvalidInputError(f"Fusion.k must be an int >= 0, got {self.k!r}")
        for name in ("dense_weight", "sparse_weight"):
            weight = getattr(self, name)
            if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
                raise InvalidInputError(f"Fusion.{name} must be a finite number >= 0, got {weight!r}")
        if self.depth is not None and (
            isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1
        ):
            raise InvalidInputError(f"Fusion.depth must be a positive int or None, got {self.depth!r}")

    def depth_for(self, k: int) -> int:
        """Candidates to fetch from each leg for a fused top ``k``: :attr:`depth` or :data:`HYBRID_DEPTH`, >= k."""
        return max(k, self.depth or HYBRID_DEPTH)

    @property
    def unweighted(self) -> bool:
        """Whether both legs weigh 1 (plain RRF, which every database's fusion computes alike)."""
        return self.dense_weight == 1.0 and self.sparse_weight == 1.0


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


H = TypeVar("H", bound=_Identified)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[H]], limit: int, *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[H, float]]:
    """Fuse ranked lists (best first) of items with an ``id``: the ``limit`` best ``(item, fused score)``.

    Ties keep the order of first appearance (earlier ranking, better rank), so the result is deterministic.
    The item kept for an id is its first appearance.
    """
    if weights is not None and len(weights) != len(rankings):
        raise InvalidInputError(f"reciprocal_rank_fusion: {len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    items: dict[str, H] = {}
    for j, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else float(weights[j])
        for rank, item in enumerate(ranking, start=1):
            doc_id = item.id  # read once: a database's point may compute it on each access
            if doc_id in scores:
                scores[doc_id] += weight / (k + rank)
            else:
                scores[doc_id] = weight / (k + rank)
                items[doc_id] = item
    # nlargest is sorted(..., reverse=True)[:limit], which is stable: ties keep the order of first appearance.
    order = heapq.nlargest(limit, scores, key=scores.__getitem__)
    return [(items[doc_id], scores[doc_id]) for doc_id in order]
