"""The ``memory`` store: the reference implementation of the store contract, in this process, exact, with numpy.

It sits beside the contract (:mod:`vecembed.store`) as httpx's ``MockTransport``
sits beside ``BaseTransport``: the smallest complete :class:`~vecembed.store.VectorStore`,
with no dependency beyond numpy, so that the ingest engine, :class:`~vecembed.collection.Store`
and code written against ``open_store`` can be run and tested without a database, and so
that a new adapter has a plain example of every call::

    with vecembed.open_store("memory", "docs", provider) as store:        # a private database
        store.ingest(docs)
        store.search("query", k=10, where={"lang": "en"})

    shared = MemoryDatabase()                                             # several stores, one database
    vecembed.open_store("memory", "docs", provider, client=shared)

Search is exact: every stored vector is scored (a matrix product), so results are
the true nearest neighbours — what the approximate indexes of the other stores are
measured against. ``where`` keeps records whose metadata value under each key
equals the given one (``True`` matches only booleans, ``1`` matches ``1`` and
``1.0``, a stored list matches when one of its items does), as Qdrant's filters
do. Nothing is persisted: ``path=`` and ``url=`` are refused.

Sparse vectors (:class:`~vecembed.store.SparseStore`, ``sparse_idf = "store"``): a collection
whose identity names a sparse provider keeps each record's
:class:`~vecembed.sparse.SparseVector` beside its dense vector, in an inverted index (term id
-> {row: weight}) whose posting lengths are the document frequencies — so the statistics
change in the same write and on delete, by construction. A sparse search is the exact dot
product of every record with the query, each query term weighted by
:func:`vecembed.sparse.idf` over the live records (what Qdrant's ``Modifier.IDF`` computes),
summed with numpy over each query term's posting (kept as arrays until the term's posting changes).
Hybrid search is fused here (:class:`~vecembed.store.NativeFusion`, as a database fuses server-side):
both rankings are row numbers until the fused top ``k``, the only records turned into hits.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecembed.errors import (
    CollectionNotFoundError,
    DimensionMismatchError,
    InvalidInputError,
    ProviderUnavailableError,
)
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity, canonical_distance
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record
from vecembed.retry import is_transient_default
from vecembed.sparse import Fusion, SparseVector, idf, reciprocal_rank_fusion
from vecembed.store import CollectionState, Hit
from vecembed.types import Embeddings, HealthReport

__all__ = ["MemoryCollection", "MemoryDatabase", "MemoryStore", "open_memory_store"]

#: The distances a memory collection scores by; every score is a similarity (higher is nearer).
DISTANCES = ("cosine", "dot", "euclid")


@dataclass
class _Row:
    text: str
    metadata: dict[str, Any]
    content_hash: str
    sparse: SparseVector | None = None


@dataclass(frozen=True)
class _Ranked:
    """One entry of a ranking before it becomes a :class:`Hit`: the record's id, row and score."""

    id: str
    at: int
    score: float


def _equal(stored: Any, wanted: Any) -> bool:
    # One type family per comparison: a bool is not the number 1 (Python says True == 1; filters should not).
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored is wanted
    if isinstance(wanted, int | float):
        return isinstance(stored, int | float) and stored == wanted
    return isinstance(stored, str) and stored == wanted


def _matches(metadata: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    for key, wanted in where.items():
        if key not in metadata:
            return False
        stored = metadata[key]
        if isinstance(stored, list):
            if not any(_equal(item, wanted) for item in stored):
                return False
        elif not _equal(stored, wanted):
            return False
    return True


class MemoryCollection:
    """One collection: ids, vectors (float32, one row each), texts, metadata and content hashes; thread-safe."""

    def __init__(self, name: str, *, dimension: int, distance: str = "cosine",
                 metadata: Mapping[str, Any] | None = None) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise InvalidInputError(f"memory collection {name!r}: dimension must be a positive int, got {dimension!r}")
        distance = canonical_distance(distance)
        if distance not in DISTANCES:
            raise InvalidInputError(
                f"memory collection {name!r}: distance {distance!r} is not one of {', '.join(DISTANCES)}"
            )
        self.name = name
        self.dimension = dimension
        self.distance = distance
        #: The collection's own metadata (vecembed records its identity here, beside the user's keys).
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._rows: list[_Row] = []
        self._position: dict[str, int] = {}
        # term id -> {row: weight}: the sparse index; len(postings) is the term's document frequency.
        self._postings: dict[int, dict[int, float]] = {}
        # term id -> (rows, weights) of its posting as arrays, made when a query needs them; a write or a
        # delete that changes a term's posting drops its arrays.
        self._posting_arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sparse_records = 0  # records written with a sparse vector (an empty one counts): IDF's N
        # Rows 0..count-1 are live; capacity grows by doubling so a stream of small upserts stays linear.
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def count(self) -> int:
        """Records stored."""
        return len(self._ids)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Embeddings,
        rows: Sequence[tuple[str, Mapping[str, Any], str]],
        sparse: Sequence[SparseVector] | None = None,
    ) -> None:
        """Insert or replace records: ``ids[i]`` gets ``vectors[i]`` and ``rows[i]`` = (text, metadata, hash).

        ``sparse``: each record's sparse vector too (None: a dense-only write; a replaced record loses its old one).
        """
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(ids) or len(rows) != len(ids) or (
            sparse is not None and len(sparse) != len(ids)
        ):
            raise InvalidInputError(
                f"memory collection {self.name!r}: {len(ids)} ids, {len(rows)} rows, "
                f"{'no' if sparse is None else len(sparse)} sparse vectors and vectors of shape "
                f"{array.shape} do not line up; expected ({len(ids)}, {self.dimension})"
            )
        if sparse is not None and not all(isinstance(v, SparseVector) for v in sparse):
            raise InvalidInputError(
                f"memory collection {self.name!r}: sparse vectors must be vecembed.SparseVector; nothing was written"
            )
        if array.shape[1] != self.dimension:
            raise DimensionMismatchError(
                f"memory collection {self.name!r} holds {self.dimension}-dimensional vectors, got "
                f"{array.shape[1]}; nothing was written",
                expected=self.dimension,
                got=int(array.shape[1]),
            )
        if self.distance == "cosine":
            # Stored unit-length, so a score is one dot product; a zero vector stays zero (score 0).
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            array = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
        with self._lock:
            for i, (doc_id, vector, (text, metadata, content_hash)) in enumerate(zip(ids, array, rows, strict=True)):
                row = _Row(text, copy.deepcopy(dict(metadata)), content_hash, None if sparse is None else sparse[i])
                at = self._position.get(doc_id)
                if at is None:
                    at = len(self._ids)
                    self._grow(at + 1)
                    self._position[doc_id] = at
                    self._ids.append(doc_id)
                    self._rows.append(row)
                else:
                    self._unindex(at, self._rows[at])
                    self._rows[at] = row
                self._index(at, row)
                self._vectors[at] = vector

    def _index(self, at: int, row: _Row) -> None:
        if row.sparse is None:
            return
        self._sparse_records += 1
        for term, weight in zip(row.sparse.indices.tolist(), row.sparse.values.tolist(), strict=True):
            self._postings.setdefault(term, {})[at] = weight
            self._posting_arrays.pop(term, None)

    def _unindex(self, at: int, row: _Row) -> None:
        if row.sparse is None:
            return
        self._sparse_records -= 1
        for term in row.sparse.indices.tolist():
            posting = self._postings[term]
            del posting[at]
            self._posting_arrays.pop(term, None)
            if not posting:
                del self._postings[term]

    def _move_postings(self, row: _Row, source: int, target: int) -> None:
        """The record at row ``source`` now sits at row ``target``: its postings follow it."""
        if row.sparse is None:
            return
        for term in row.sparse.indices.tolist():
            posting = self._postings[term]
            posting[target] = posting.pop(source)
            self._posting_arrays.pop(term, None)

    def _posting(self, term: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows holding ``term`` and their weights (float64, as Python sums them), or None."""
        arrays = self._posting_arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term)
            if not posting:
                return None
            rows = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            weights = np.fromiter(posting.values(), dtype=np.float64, count=len(posting))
            arrays = self._posting_arrays[term] = (rows, weights)
        return arrays

    def document_frequency(self, term: int) -> int:
        """Records whose sparse vector has ``term`` (the statistic a sparse search weighs the query by)."""
        with self._lock:
            return len(self._postings.get(int(term), ()))

    def sparse_records(self) -> int:
        """Records written with a sparse vector (an empty one included): the ``N`` of :func:`~vecembed.sparse.idf`."""
        return self._sparse_records

    def _grow(self, needed: int) -> None:
        if needed > self._vectors.shape[0]:
            grown = np.zeros((max(needed, 2 * self._vectors.shape[0], 64), self.dimension), dtype=np.float32)
            grown[: len(self._ids)] = self._vectors[: len(self._ids)]
            self._vectors = grown

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of those ``ids`` that are stored."""
        with self._lock:
            return {i: self._rows[self._position[i]].content_hash for i in ids if i in self._position}

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        """Every stored record, ``batch_size`` at a time, in insertion order (as of the start of the scan).

        The ids are copied once (one reference each); each batch is read under the lock, so a record
        deleted meanwhile is left out and one changed meanwhile comes back as it is now.
        """
        with self._lock:
            ids = list(self._ids)
        for lo in range(0, len(ids), batch_size):
            with self._lock:
                at = [(i, self._position.get(i)) for i in ids[lo : lo + batch_size]]
                rows = [(i, self._rows[p]) for i, p in at if p is not None]
            batch = [Record(id=i, text=r.text, metadata=copy.deepcopy(r.metadata), content_hash=r.content_hash)
                     for i, r in rows]
            if batch:
                yield batch

    def delete(self, ids: Sequence[str]) -> None:
        """Delete these ids (ids not stored are ignored)."""
        with self._lock:
            for doc_id in ids:
                at = self._position.pop(doc_id, None)
                if at is None:
                    continue
                self._unindex(at, self._rows[at])
                last = len(self._ids) - 1
                if at != last:  # the last row fills the gap: rows stay contiguous, deletion stays O(1)
                    moved = self._ids[last]
                    self._move_postings(self._rows[last], last, at)
                    self._ids[at], self._rows[at] = moved, self._rows[last]
                    self._vectors[at] = self._vectors[last]
                    self._position[moved] = at
                self._ids.pop()
                self._rows.pop()

    def search(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        """The ``k`` best records for each query vector by exact scoring, best first (ties: insertion order)."""
        with self._lock:
            return [[self._hit(r.at, r.score) for r in ranking] for ranking in self._rank_dense(vectors, k, where)]

    def search_sparse(
        self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None, *, weigh_idf: bool
    ) -> list[list[Hit]]:
        """The ``k`` best records for each sparse query by exact dot product, best first (ties: storage order).

        ``weigh_idf``: each query term's weight is multiplied by its :func:`~vecembed.sparse.idf` over the
        records stored now. Records that share no term with the query are not hits (their score is 0).
        """
        with self._lock:
            allowed = self._allowed(where)
            return [
                [self._hit(r.at, r.score) for r in self._rank_sparse(query, k, allowed, weigh_idf)]
                for query in queries
            ]

    def search_hybrid(
        self,
        vectors: Embeddings,
        sparse: Sequence[SparseVector],
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
        *,
        weigh_idf: bool,
    ) -> list[list[Hit]]:
        """Reciprocal Rank Fusion of the dense and the sparse ranking (each ``fusion.depth_for(k)`` deep), top ``k``.

        The same fused list as :func:`vecembed.store.fuse_hits` of :meth:`search` and :meth:`search_sparse`,
        without making hits of the candidates that do not make the top ``k``.
        """
        if len(sparse) != len(vectors):
            raise InvalidInputError(
                f"memory collection {self.name!r}: {len(sparse)} sparse queries for {len(vectors)} dense ones"
            )
        depth = fusion.depth_for(k)
        weights = (fusion.dense_weight, fusion.sparse_weight)
        with self._lock:
            allowed = self._allowed(where)
            dense = self._rank_dense(vectors, depth, where, allowed)
            out: list[list[Hit]] = []
            for ranking, query in zip(dense, sparse, strict=True):
                terms = self._rank_sparse(query, depth, allowed, weigh_idf)
                fused = reciprocal_rank_fusion([ranking, terms], k, k=fusion.k, weights=weights)
                out.append([self._hit(r.at, score) for r, score in fused])
            return out

    def _allowed(self, where: Mapping[str, Any] | None) -> np.ndarray | None:
        """The rows whose metadata match ``where`` (None: every row). Under the lock."""
        if not where:
            return None
        return np.array([i for i in range(len(self._ids)) if _matches(self._rows[i].metadata, where)], dtype=np.int64)

    def _rank_dense(
        self,
        vectors: Embeddings,
        k: int,
        where: Mapping[str, Any] | None,
        allowed: np.ndarray | None = None,
    ) -> list[list[_Ranked]]:
        """The ``k`` best rows for each query vector, best first (ties: insertion order). Under the lock."""
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise DimensionMismatchError(
                f"memory collection {self.name!r} holds {self.dimension}-dimensional vectors, got query vectors "
                f"of shape {queries.shape}",
                expected=self.dimension,
                got=int(queries.shape[-1]) if queries.ndim else None,
            )
        n = len(self._ids)
        if where and allowed is None:
            allowed = self._allowed(where)
        if allowed is not None:
            candidates = allowed
            stored = self._vectors[candidates]
        else:
            candidates = np.arange(n)
            stored = self._vectors[:n]  # a view: no copy of the whole matrix for every query
        scores = self._scores(queries, stored)
        return [
            [_Ranked(self._ids[int(candidates[j])], int(candidates[j]), float(row[j])) for j in _top(row, k)]
            for row in scores
        ]

    def _rank_sparse(
        self, query: SparseVector, k: int, allowed: np.ndarray | None, weigh_idf: bool
    ) -> list[_Ranked]:
        """The ``k`` best rows by sparse dot product, best first (ties: storage order). Under the lock.

        Each row's score is summed term by term in the query's order, in float64, as a Python loop would.
        """
        n = len(self._ids)
        total = self._sparse_records
        scores = np.zeros(n, dtype=np.float64)
        touched = np.zeros(n, dtype=bool)
        for term, weight in zip(query.indices.tolist(), query.values.tolist(), strict=True):
            posting = self._posting(term)
            if posting is None:
                continue
            rows, values = posting
            w = weight * idf(len(rows), total) if weigh_idf else weight
            scores[rows] += w * values  # rows are unique within one posting
            touched[rows] = True
        if allowed is not None:
            keep = np.zeros(n, dtype=bool)
            keep[allowed] = True
            touched &= keep
        candidates = np.flatnonzero(touched)
        chosen = candidates[_top(scores[candidates], k)]
        return [_Ranked(self._ids[int(at)], int(at), float(scores[at])) for at in chosen]

    def _scores(self, queries: Embeddings, stored: Embeddings) -> Embeddings:
        if self.distance == "cosine":
            norms = np.linalg.norm(queries, axis=1, keepdims=True)
            queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
        products: Embeddings = queries @ stored.T
        if self.distance != "euclid":
            return products
        # euclid: 1 - d²/2, which is the cosine similarity on the unit vectors a normalised model writes
        # (what the Chroma store answers for its l2 space too).
        squared = (queries**2).sum(axis=1)[:, None] + (stored**2).sum(axis=1)[None, :] - 2.0 * products
        similarity: Embeddings = (1.0 - np.maximum(squared, 0.0) / 2.0).astype(np.float32)
        return similarity

    def _hit(self, at: int, score: float) -> Hit:
        row = self._rows[at]
        return Hit(self._ids[at], score, row.text, copy.deepcopy(row.metadata))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest ``scores``, best first, equal scores in position order (a stable sort).

    Only the scores at least as high as the k-th best are sorted, so a large collection costs one partition.
    """
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
    head = np.flatnonzero(scores >= kth)
    return head[np.argsort(-scores[head], kind="stable")][:k]


class MemoryDatabase:
    """Collections by name, in this process: the ``client=`` of the memory store (stores that share one see
    each other's collections, as stores on one server do). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collections: dict[str, MemoryCollection] = {}
        #: alias -> collection: one table per database, changed under its lock (so a move is atomic).
        self._aliases: dict[str, str] = {}

    def collection(self, name: str) -> MemoryCollection | None:
        """The collection ``name``, or None."""
        with self._lock:
            return self._collections.get(name)

    def create_collection(self, name: str, *, dimension: int, distance: str = "cosine",
                          metadata: Mapping[str, Any] | None = None) -> MemoryCollection:
        """Create ``name`` (or return it when it exists already: a second creator gets the first one's)."""
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None:
                return existing
            created = MemoryCollection(name, dimension=dimension, distance=distance, metadata=metadata)
            self._collections[name] = created
            return created

    def delete_collection(self, name: str) -> None:
        """Drop ``name``, its records and the aliases that point at it (as Qdrant does); no-op when it is not there."""
        with self._lock:
            self._collections.pop(name, None)
            self._aliases = {a: c for a, c in self._aliases.items() if c != name}

    def list_collections(self) -> list[str]:
        """The names of the collections, sorted."""
        with self._lock:
            return sorted(self._collections)

    def aliases(self) -> dict[str, str]:
        """``{alias: collection}``."""
        with self._lock:
            return dict(self._aliases)

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection``; refuse a collection that does not exist or an alias that is one."""
        with self._lock:
            if collection not in self._collections:
                raise CollectionNotFoundError(
                    f"memory has no collection {collection!r} for alias {alias!r} to point at",
                    db="memory", collection=collection, location="memory",
                )
            if alias in self._collections:
                raise InvalidInputError(
                    f"{alias!r} is a memory collection: an alias may not shadow a collection; choose another name"
                )
            self._aliases[alias] = collection

    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias``; whether there was one."""
        with self._lock:
            return self._aliases.pop(alias, None) is not None

    def __repr__(self) -> str:
        return f"<MemoryDatabase {self.list_collections()}>"


def _weighs_idf(col: MemoryCollection) -> bool:
    """Whether the collection's sparse provider weighs query terms by IDF (as its identity records)."""
    identity = CollectionIdentity.from_metadata(col.metadata)
    return identity is not None and bool(identity.sparse_idf)


class MemoryStore:
    """One collection of a :class:`MemoryDatabase` as a :class:`~vecembed.store.VectorStore`.

    Also a :class:`~vecembed.store.SparseStore` that keeps its own document frequencies (``sparse_idf = "store"``)
    and a :class:`~vecembed.store.NativeFusion`: hybrid search is fused in the collection, as a database would.
    """

    db = "memory"
    #: Records keep any JSON metadata (lists and nested dicts), as Qdrant payloads do.
    nested_metadata = True
    #: Query terms are weighted by IDF from the document frequencies this store keeps.
    sparse_idf = "store"

    def __init__(self, database: MemoryDatabase, collection: str, *, location: str = "memory") -> None:
        self.database = database
        self.collection = collection
        self.location = location

    def _col(self) -> MemoryCollection:
        found = self.database.collection(self.collection)
        if found is None:
            raise ProviderUnavailableError(f"memory collection {self.collection!r} is gone (deleted meanwhile)")
        return found

    # -- the collection ---------------------------------------------------------------------------

    def state(self) -> CollectionState | None:
        found = self.database.collection(self.collection)
        if found is None:
            return None
        identity = CollectionIdentity.from_metadata(found.metadata)
        return CollectionState(
            identity=identity,
            dimension=found.dimension,
            distance=found.distance,
            count=None if identity is not None else found.count(),
        )

    def create(self, identity: CollectionIdentity) -> None:
        self.database.create_collection(
            self.collection, dimension=identity.dimension, distance=identity.distance, metadata=identity.to_metadata()
        )

    def record_identity(self, identity: CollectionIdentity) -> None:
        # Merged into the metadata, as Qdrant does: the user's own keys stay.
        self._col().metadata.update(identity.to_metadata())

    # -- records ----------------------------------------------------------------------------------

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        self._col().upsert(
            [r.id for r in records], vectors, [(r.text, r.metadata, r.content_hash) for r in records]
        )

    def write_sparse(self, records: Sequence[Record], vectors: Embeddings, sparse: Sequence[SparseVector]) -> None:
        self._col().upsert(
            [r.id for r in records], vectors, [(r.text, r.metadata, r.content_hash) for r in records], sparse
        )

    def query_sparse(
        self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None
    ) -> list[list[Hit]]:
        col = self._col()
        return col.search_sparse(queries, k, where, weigh_idf=_weighs_idf(col))

    def query_hybrid(
        self,
        vectors: Embeddings,
        sparse: Sequence[SparseVector],
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
    ) -> list[list[Hit]]:
        col = self._col()
        return col.search_hybrid(vectors, sparse, k, where, fusion, weigh_idf=_weighs_idf(col))

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        return self._col().hashes(ids)

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        return self._col().search(vectors, k, where)

    def count(self) -> int:
        found = self.database.collection(self.collection)
        return 0 if found is None else found.count()

    def delete(self, ids: Sequence[str]) -> None:
        self._col().delete(ids)

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        found = self.database.collection(self.collection)
        if found is not None:
            yield from found.scan(batch_size)

    def drop(self) -> None:
        self.database.delete_collection(self.collection)


    # -- the database -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        def check() -> tuple[bool, str, dict[str, bool]]:
            names = self.database.list_collections()
            return True, f"in this process ({len(names)} collections)", {"memory": True}

        return timed_check("memory", check)

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient_default(exc)

    def close(self) -> None:
        """Nothing to release: the database lives as long as something holds it."""

    # -- aliases (AliasStore): the database's table -------------------------------------------------

    def aliases(self) -> dict[str, str]:
        return self.database.aliases()

    def set_alias(self, alias: str, collection: str) -> None:
        self.database.set_alias(alias, collection)

    def drop_alias(self, alias: str) -> bool:
        return self.database.drop_alias(alias)

    def for_collection(self, collection: str) -> MemoryStore:
        return MemoryStore(self.database, collection, location=self.location)


def open_memory_store(
    collection: str,
    *,
    provider: EmbeddingProvider | None = None,
    path: str | None = None,
    url: str | None = None,
    client: MemoryDatabase | None = None,
    **options: Any,
) -> MemoryStore:
    """The ``memory`` entry point: a :class:`MemoryStore` on ``client`` (a :class:`MemoryDatabase`) or a new one.

    Without ``client`` the store gets a database of its own, gone when the store is; pass one
    :class:`MemoryDatabase` to several stores to share collections between them.
    """
    del provider  # the memory store embeds nothing and keeps no embedding function
    if options:
        raise InvalidInputError(f"the memory store takes no options {sorted(options)}; it takes client=")
    if path is not None or url is not None:
        raise InvalidInputError(
            f"the memory store keeps its collections in this process only; it takes no "
            f"{'path=' if path is not None else 'url='}: pass client=MemoryDatabase() to share one between stores, "
            "or use a database that persists (chroma, qdrant, qdrant-edge with path=)"
        )
    if client is None:
        return MemoryStore(MemoryDatabase(), collection)
    if not isinstance(client, MemoryDatabase):
        raise InvalidInputError(
            f"the memory store's client= must be a vecembed.memory_store.MemoryDatabase, got {type(client).__name__}"
        )
    return MemoryStore(client, collection)


#: The memory store keeps sparse vectors (see :class:`~vecembed.store.SparseCapable`).
open_memory_store.keeps_sparse = True  # type: ignore[attr-defined]
