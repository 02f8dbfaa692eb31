"""QdrantEdgeStore: Qdrant Edge's side of the vecembed store contract (Qdrant's embedded engine, beta).

Only Qdrant Edge calls live here; identity policy, validation, batching, retries and
progress are the shared engine's (:mod:`vecembed.store`, :mod:`vecembed.ingest`); point
ids and dict filters are the Qdrant store's (:func:`vecembed_qdrant.store.point_id`,
:func:`vecembed_qdrant.store.to_filter`, converted here to Edge's own filter types).
Registered as the ``qdrant-edge`` entry point of ``vecembed.stores``::

    vecembed.open_store("qdrant-edge", "docs", provider, path="./edge")   # shard in ./edge/docs
    vecembed.open_store("qdrant-edge", "docs", provider)                  # a temporary folder, removed on close
    vecembed.open_store("qdrant-edge", "docs", provider, client=EdgeShards("./edge"))  # shards shared

What is kept where, under ``path``: one Edge shard per collection in ``path/<collection>``
(segments, WAL, HNSW; names other than ``[A-Za-z0-9_-]`` are %-escaped), and, beside it,
``path/<collection>.vecembed.json``: the collection's identity, because a shard has no
collection metadata. The file is replaced atomically (temporary file + ``os.replace``).

HNSW: Edge builds its index only when ``optimize()`` runs, in-process and blocking, and
the contract has no end-of-ingest hook; so every write marks the shard dirty and the
first query after writes optimizes it. Measured on 2 cores, 384-d: a no-op costs ~0.05 ms;
indexing 20,000 vectors took 8.8 s (brute-force p50 1.9 ms -> 1.4 ms), 100,000 took 152 s
(9.9 ms -> 3.1 ms). Shards under Edge's indexing threshold (10 MB of vectors, ~6,500 384-d) stay exact.
Call :meth:`QdrantEdgeStore.optimize` (``store.backend.optimize()``) after an ingest to
pay that cost there instead of in the first search.

Sparse vectors (qdrant-edge-py 0.9): a collection whose identity names a sparse provider
gets a sparse vector ``"sparse"`` with Qdrant's ``Modifier.Idf`` beside the unnamed dense
one, so Edge itself weighs query terms by IDF (over the points whose sparse vector has a
term; like Qdrant, deleted points leave the statistics only when their segment is
vacuumed); a hybrid query fetches both legs (ids only) in one Edge batch and fuses them in the store, then
reads the fused top ``k`` (Edge's own ``Fusion.Rrf`` orders tied scores differently from run to run).

One opener per shard: Edge locks a shard's WAL, so a second process, or a second store
object in this process, opening the same collection folder gets a
:class:`~vecembed.errors.ProviderUnavailableError` saying so; stores that must share
a folder share one :class:`EdgeShards` (``client=``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from hashlib import sha1
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import models
from vecembed_qdrant.store import (
    HASH_SELECTOR,
    hit_of,
    point_id,
    record_of,
    record_payload,
    stored_hashes_of,
    to_filter,
)

from vecembed.errors import InvalidInputError, ProviderUnavailableError, UnsupportedError
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity
from vecembed.records import Record
from vecembed.retry import is_transient_default
from vecembed.sparse import Fusion, SparseVector, reciprocal_rank_fusion
from vecembed.store import CollectionState, Hit
from vecembed.types import Embeddings, HealthReport

__all__ = ["EdgeShards", "QdrantEdgeStore", "open_qdrant_edge_store", "to_edge_filter"]

_DISTANCES = {
    "cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid,
    "manhattan": qe.Distance.Manhattan,
}
_IDENTITY_SUFFIX = ".vecembed.json"
#: The sparse vector's name in a shard (the dense vector is the unnamed one, "").
SPARSE_VECTOR = "sparse"
#: The aliases of a folder's collections. folder_name escapes "." and identity files end in ".vecembed.json",
#: so no collection's files can have this name.
ALIASES_FILE = "vecembed.aliases.json"


def folder_name(collection: str) -> str:
    """The shard folder's name for ``collection``: itself when it is ``[A-Za-z0-9_-]``, else %-escaped.

    "." is escaped too, so no folder name ends in ``.vecembed.json`` (the identity files) or is ``..``.
    """
    safe = re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), collection)
    # Long names: a prefix and a digest ("~" is never produced by the escaping, so no collision with short ones).
    return safe if len(safe) <= 150 else f"{safe[:100]}~{sha1(collection.encode()).hexdigest()}"


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` so that a reader sees the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ProviderUnavailableError(f"cannot read {path}: {exc}; restore it or delete the collection") from None
    if not isinstance(value, dict):
        raise ProviderUnavailableError(f"{path} holds {type(value).__name__}, not a JSON object")
    return value


def _condition(cond: Any) -> Any:
    if isinstance(cond, models.Filter):
        return _convert(cond)
    match, rng = getattr(cond, "match", None), getattr(cond, "range", None)
    known_match = isinstance(match, models.MatchValue | models.MatchAny) or (match is None and rng is not None)
    if not isinstance(cond, models.FieldCondition) or not known_match or not isinstance(rng, models.Range | None):
        raise InvalidInputError(
            f"the qdrant-edge store converts field conditions with a value, any-of or numeric range only, got {cond!r}"
        )
    if isinstance(match, models.MatchValue):
        # qdrant-edge-py 0.9 reads a Python bool as the int 1/0, which matches no JSON true/false; numpy's bool_
        # is not an int to it, so it arrives as a bool (tested: test_filters_convert_to_edge_types).
        value = match.value
        match = qe.MatchValue(np.bool_(value) if isinstance(value, bool) else value)  # type: ignore[arg-type]
    elif isinstance(match, models.MatchAny):
        values: Any = list(match.any)
        match = qe.MatchAny(values)
    if rng is not None:
        rng = qe.RangeFloat(gte=rng.gte, gt=rng.gt, lte=rng.lte, lt=rng.lt)
    return qe.FieldCondition(key=cond.key, match=match, range=rng)


def _convert(flt: models.Filter) -> qe.Filter:
    def conditions(part: Any) -> list[Any] | None:
        if part is None:
            return None
        return [_condition(c) for c in (part if isinstance(part, list) else [part])]

    return qe.Filter(must=conditions(flt.must), should=conditions(flt.should), must_not=conditions(flt.must_not))


def to_edge_filter(where: models.Filter | Mapping[str, Any] | None) -> qe.Filter | None:
    """A dict (read as :func:`vecembed_qdrant.store.to_filter` reads it) or a ``models.Filter``, as an Edge filter."""
    flt = to_filter(where)
    return None if flt is None else _convert(flt)


class EdgeShards:
    """The Edge shards of one folder, each opened once and shared by every store given this object (``client=``).

    ``path=None``: a temporary folder, removed by :meth:`close`. Not closed by the stores
    it is passed to: close it yourself (it closes every shard it opened).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._temporary = path is None
        self.path = Path(tempfile.mkdtemp(prefix="vecembed-edge-") if path is None else path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, qe.EdgeShard] = {}
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._closed = False

    def shard_path(self, collection: str) -> Path:
        return self.path / folder_name(collection)

    def identity_path(self, collection: str) -> Path:
        return self.path / (folder_name(collection) + _IDENTITY_SUFFIX)

    def collection_exists(self, collection: str) -> bool:
        return self.shard_path(collection).is_dir() or self.identity_path(collection).is_file()

    def check_open(self) -> None:
        """Raise :class:`~vecembed.errors.ProviderUnavailableError` once :meth:`close` has run."""
        if self._closed:
            raise ProviderUnavailableError(f"the Qdrant Edge shards at {self.path} are closed")

    def _opened(self, collection: str, opener: Any) -> qe.EdgeShard:
        folder = self.shard_path(collection)
        try:
            shard: qe.EdgeShard = opener(str(folder))
        except Exception as exc:
            if "WouldBlock" in str(exc):  # the WAL's file lock: another opener holds the shard
                raise ProviderUnavailableError(
                    f"the Qdrant Edge shard {folder} is open in another process or store (Edge allows one opener "
                    "per shard); close that one, use another folder, or share one EdgeShards object (client=)"
                ) from None
            raise
        self._open[collection] = shard
        # Unknown since the last optimize (another process may have written): a no-op optimize is cheap.
        self._dirty.add(collection)
        return shard

    def shard(self, collection: str) -> qe.EdgeShard | None:
        """The open shard of ``collection``, loading it on first use; None when it does not exist."""
        with self._lock:
            self.check_open()
            shard = self._open.get(collection)
            if shard is None and (self.shard_path(collection) / "edge_config.json").is_file():
                shard = self._opened(collection, qe.EdgeShard.load)
            return shard

    def create(self, collection: str, config: qe.EdgeConfig) -> qe.EdgeShard:
        """Create the shard of ``collection``, or return it when it exists (then ``config`` is not applied)."""
        with self._lock:
            return self.shard(collection) or self._opened(collection, lambda p: qe.EdgeShard.create(p, config))

    def vector_config(self, collection: str) -> tuple[int | None, str | None]:
        """The unnamed vector's size and distance as the shard's ``edge_config.json`` records them, when it does."""
        try:
            config = _read_json(self.shard_path(collection) / "edge_config.json")
        except ProviderUnavailableError:
            return None, None
        params = ((config or {}).get("vectors") or {}).get("")
        if not isinstance(params, dict):
            return None, None
        size, distance = params.get("size"), params.get("distance")
        return (size if isinstance(size, int) else None), (str(distance) if distance else None)

    def has_sparse(self, collection: str) -> bool:
        """Whether the shard was created with vecembed's sparse vector (its ``edge_config.json`` names it)."""
        try:
            config = _read_json(self.shard_path(collection) / "edge_config.json")
        except ProviderUnavailableError:
            return False
        return SPARSE_VECTOR in ((config or {}).get("sparse_vectors") or {})

    def read_identity(self, collection: str) -> dict[str, Any] | None:
        """The metadata in the identity file beside the shard (None: no file)."""
        return _read_json(self.identity_path(collection))

    def write_identity(self, collection: str, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` into the identity file (other keys stay), atomically."""
        with self._lock:
            merged = {**(self.read_identity(collection) or {}), **metadata}
            write_json_atomic(self.identity_path(collection), merged)

    def written(self, collection: str) -> None:
        with self._lock:
            self._dirty.add(collection)

    def optimize(self, collection: str, *, force: bool = False) -> bool:
        """Run Edge's optimizers (HNSW build, merges, vacuum) on a dirty shard; whether any segment changed."""
        with self._lock:
            shard = self.shard(collection)
            if shard is None or not (force or collection in self._dirty):
                return False
            changed = bool(shard.optimize())
            self._dirty.discard(collection)
            return changed

    def delete_collection(self, collection: str) -> bool:
        """Close and remove the shard and its identity file; whether there was one."""
        with self._lock:
            self.check_open()
            shard = self._open.pop(collection, None)
            self._dirty.discard(collection)
            if shard is not None:
                shard.close()
            existed = self.collection_exists(collection)
            shutil.rmtree(self.shard_path(collection), ignore_errors=True)
            self.identity_path(collection).unlink(missing_ok=True)
            return existed

    # -- aliases: one JSON file in the folder, replaced atomically (write, fsync, rename) --------------

    @property
    def aliases_path(self) -> Path:
        """``path/vecembed.aliases.json`` (no shard folder or identity file can have that name: see folder_name)."""
        return self.path / ALIASES_FILE

    def aliases(self) -> dict[str, str]:
        """``{alias: collection}`` as the file says ({} without one)."""
        value = _read_json(self.aliases_path) or {}
        return {str(k): str(v) for k, v in value.items()}

    def change_aliases(self, change: Any) -> None:
        """Read the aliases, apply ``change`` to the dict, write the file back atomically (one writer here)."""
        with self._lock:
            self.check_open()
            current = self.aliases()
            change(current)
            write_json_atomic(self.aliases_path, current)

    def collections(self) -> list[str]:
        """The shard folders under ``path`` (their escaped names)."""
        return sorted(p.name for p in self.path.iterdir() if (p / "edge_config.json").is_file())

    def close(self) -> None:
        """Flush and close every shard opened here; remove the folder when it was temporary."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            shards, self._open = list(self._open.values()), {}
            try:
                for shard in shards:
                    shard.flush()
                    shard.close()
            finally:
                if self._temporary:
                    shutil.rmtree(self.path, ignore_errors=True)



class QdrantEdgeStore:
    """One Qdrant Edge shard as a :class:`~vecembed.store.VectorStore` (see the module docstring)."""

    db = "qdrant-edge"
    #: Edge payloads keep any JSON, like Qdrant's: lists and nested dicts are stored and filterable.
    nested_metadata = True
    #: Edge weighs sparse query terms by IDF itself (``Modifier.Idf``).
    sparse_idf = "database"

    def __init__(
        self,
        shards: EdgeShards,
        collection: str,
        *,
        location: str,
        owns_shards: bool = False,
        hnsw_ef: int | None = None,
        hnsw_config: qe.HnswIndexConfig | None = None,
    ) -> None:
        if hnsw_ef is not None and (isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, int) or hnsw_ef < 1):
            raise InvalidInputError(f"hnsw_ef must be a positive int or None, got {hnsw_ef!r}")
        self.shards = shards
        self.collection = collection
        self.location = location
        self._owns_shards = owns_shards
        self._hnsw_ef = hnsw_ef
        self._params = None if hnsw_ef is None else qe.SearchParams(hnsw_ef=hnsw_ef)
        self._hnsw_config = hnsw_config

    # -- the collection ---------------------------------------------------------------------------

    def state(self) -> CollectionState | None:
        identity = CollectionIdentity.from_metadata(self.shards.read_identity(self.collection))
        shard = self.shards.shard(self.collection)  # opened (and locked) now: a second opener fails at open
        if identity is None and shard is None:
            return None
        dimension, distance = self.shards.vector_config(self.collection)
        if identity is not None:
            dimension, distance = dimension or identity.dimension, distance or identity.distance
        count = None if identity is not None else self.count()
        sparse_field = self.shards.has_sparse(self.collection) if shard is not None else None
        return CollectionState(
            identity=identity, dimension=dimension, distance=distance, count=count, sparse_field=sparse_field
        )

    def _config(self, identity: CollectionIdentity) -> qe.EdgeConfig:
        params = qe.EdgeVectorParams(size=identity.dimension, distance=_DISTANCES[identity.distance])
        modifier = qe.Modifier.Idf if identity.sparse_idf else None
        sparse = {SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=modifier)} if identity.has_sparse else None
        return qe.EdgeConfig(vectors=params, sparse_vectors=sparse, hnsw_config=self._hnsw_config)

    def create(self, identity: CollectionIdentity) -> None:
        self.shards.create(self.collection, self._config(identity))
        self.record_identity(identity)

    def record_identity(self, identity: CollectionIdentity) -> None:
        self.shards.write_identity(self.collection, identity.to_metadata())

    def _shard(self) -> qe.EdgeShard:
        shard = self.shards.shard(self.collection)
        if shard is not None:
            return shard
        # The identity file without its shard (the shard folder was removed): recreate the shard from it.
        identity = CollectionIdentity.from_metadata(self.shards.read_identity(self.collection))
        if identity is None:
            raise ProviderUnavailableError(f"qdrant-edge has no collection {self.collection!r} at {self.location}")
        return self.shards.create(self.collection, self._config(identity))

    # -- records ----------------------------------------------------------------------------------

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        points = [
            qe.Point(
                id=point_id(r.id),
                vector=row.tolist(),
                payload=record_payload(r),
            )
            for r, row in zip(records, vectors, strict=True)
        ]
        self._shard().update(qe.UpdateOperation.upsert_points(points))
        self.shards.written(self.collection)

    def _sparse_shard(self) -> qe.EdgeShard:
        shard = self._shard()
        if not self.shards.has_sparse(self.collection):
            raise UnsupportedError(
                f"qdrant-edge collection {self.collection!r} at {self.location} was created without sparse vectors; "
                "a collection gains them only by re-ingesting its documents into a new collection opened with sparse="
            )
        return shard

    def write_sparse(self, records: Sequence[Record], vectors: Embeddings, sparse: Sequence[SparseVector]) -> None:
        """:meth:`write` with each record's sparse vector in the same points (one update)."""
        if len(sparse) != len(records):
            raise InvalidInputError(f"write_sparse: {len(sparse)} sparse vectors for {len(records)} records")
        points = [
            qe.Point(
                id=point_id(r.id),
                vector={"": row.tolist(), SPARSE_VECTOR: _edge_sparse(sv)},
                payload=record_payload(r),
            )
            for r, row, sv in zip(records, vectors, sparse, strict=True)
        ]
        self._sparse_shard().update(qe.UpdateOperation.upsert_points(points))
        self.shards.written(self.collection)

    def query_sparse(self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        """The ``k`` best records by sparse dot product, query terms weighted by Edge's IDF."""
        if self.shards.shard(self.collection) is None:
            return [[] for _ in queries]
        shard = self._sparse_shard()
        self.optimize()
        flt = to_edge_filter(where)
        requests = [
            qe.QueryRequest(
                limit=k, query=qe.Query.Nearest(_edge_sparse(q), using=SPARSE_VECTOR), filter=flt, with_payload=True
            )
            for q in queries
        ]
        answers = shard.query_batch(qe.QueryBatchRequest(requests))
        return [[hit_of(p.id, p.score, p.payload) for p in points] for points in answers]

    def query_hybrid(
        self,
        vectors: Embeddings,
        sparse: Sequence[SparseVector],
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
    ) -> list[list[Hit]]:
        """Reciprocal Rank Fusion of the dense and the sparse ranking: both legs from one Edge batch, fused here.

        Edge's own ``Fusion.Rrf`` computes the same scores (with ``k + 1``: it ranks from 0) but orders equal
        fused scores differently from one process to the next (with k = 10, ranks (2, 5) and (5, 2) tie), so
        the same query gave other top-10 lists and the store disagreed with every other one (SciFact: nDCG@10
        0.7236 and 0.7270 against 0.7217). So the legs come back as point ids only, are fused by
        :func:`~vecembed.sparse.reciprocal_rank_fusion` (ties: the dense leg's order, as every store), and only
        the fused top ``k`` are read back with their payloads, weights included. That costs time: on SciFact
        (5,183 points, 100-deep legs, k = 10) Edge's ``Fusion.Rrf`` answered in ≈ 1.0 ms p50 and this in ≈ 1.5 ms,
        most of the difference Python's (a ``uuid.UUID`` per candidate id, then the fusion); a dense query took
        ≈ 0.7 ms. Deterministic results, equal on every store, are worth the half millisecond.
        """
        if len(sparse) != len(vectors):
            raise InvalidInputError(f"query_hybrid: {len(sparse)} sparse queries for {len(vectors)} dense ones")
        if self.shards.shard(self.collection) is None:
            return [[] for _ in vectors]
        shard = self._sparse_shard()
        self.optimize()
        flt = to_edge_filter(where)
        depth = fusion.depth_for(k)
        weights = (fusion.dense_weight, fusion.sparse_weight)
        # One Edge batch for every query: its dense leg, then its sparse leg when it has terms (the filter on each).
        requests: list[qe.QueryRequest] = []
        starts: list[int] = []
        for row, terms in zip(vectors, sparse, strict=True):
            starts.append(len(requests))
            requests.append(qe.QueryRequest(limit=depth, query=qe.Query.Nearest(row.tolist()), filter=flt,
                                            params=self._params, with_payload=False))
            if terms:  # no terms (only stop words): the dense leg alone, still fused so scores stay RRF's
                requests.append(qe.QueryRequest(limit=depth, query=qe.Query.Nearest(_edge_sparse(terms),
                                                                                    using=SPARSE_VECTOR),
                                                filter=flt, with_payload=False))
        answers = shard.query_batch(qe.QueryBatchRequest(requests))
        # Edge's points go to the fusion as they are: their ids are UUIDs, read once each (str() of 200 of them
        # would cost 0.15 ms), and no payload is read before the fused top k is known.
        fused: list[list[tuple[Any, float]]] = []
        for i, at in enumerate(starts):
            legs = [answers[at], answers[at + 1] if sparse[i] else []]
            fused.append(reciprocal_rank_fusion(legs, k, k=fusion.k, weights=weights))
        wanted: list[Any] = list(dict.fromkeys(point.id for ranking in fused for point, _ in ranking))
        payloads = {
            p.id: p.payload
            for p in (shard.retrieve(wanted, with_payload=True, with_vector=False) if wanted else [])
        }
        return [[hit_of(point.id, score, payloads.get(point.id)) for point, score in ranking] for ranking in fused]

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        shard = self.shards.shard(self.collection)
        if shard is None or not ids:
            return {}
        stored = shard.retrieve(
            [point_id(i) for i in ids],
            with_payload=qe.PayloadSelector.Include(HASH_SELECTOR),
            with_vector=False,
        )
        return stored_hashes_of(point.payload for point in stored)

    def optimize(self, *, force: bool = False) -> bool:
        """Build the HNSW index (and merge segments) now if anything was written since the last time."""
        return self.shards.optimize(self.collection, force=force)

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        shard = self.shards.shard(self.collection)
        if shard is None:
            return [[] for _ in vectors]
        self.optimize()
        flt = to_edge_filter(where)
        requests = [
            qe.QueryRequest(
                limit=k, query=qe.Query.Nearest(row.tolist()), filter=flt, params=self._params, with_payload=True
            )
            for row in vectors
        ]
        answers = shard.query_batch(qe.QueryBatchRequest(requests))
        return [[hit_of(p.id, p.score, p.payload) for p in points] for points in answers]

    def count(self) -> int:
        shard = self.shards.shard(self.collection)
        return 0 if shard is None else int(shard.count(qe.CountRequest(exact=True)))

    def delete(self, ids: Sequence[str]) -> None:
        shard = self.shards.shard(self.collection)
        if shard is not None and ids:
            shard.update(qe.UpdateOperation.delete_points([point_id(i) for i in ids]))

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        offset: Any = None
        while True:
            shard = self.shards.shard(self.collection)  # looked up per page: a dropped shard ends the scan
            if shard is None:
                return
            points, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=True, with_vector=False)
            )
            if points:
                yield [record_of(p.id, p.payload) for p in points]
            if offset is None:
                return

    def drop(self) -> None:
        self.shards.delete_collection(self.collection)


    # -- the database -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        def check() -> tuple[bool, str, dict[str, bool]]:
            self.shards.check_open()
            writable = os.access(self.shards.path, os.W_OK)
            detail = f"embedded at {self.shards.path}, {len(self.shards.collections())} shards"
            return writable, detail + ("" if writable else " (folder not writable)"), {"writable": writable}

        return timed_check("qdrant-edge", check)

    def is_transient(self, exc: BaseException) -> bool:
        # An embedded engine has no connection to lose: only the shared I/O / timeout cases may pass.
        return is_transient_default(exc)

    def close(self) -> None:
        if self._owns_shards:
            self.shards.close()

    # -- aliases (AliasStore): a JSON file beside the shards ------------------------------------------
    # Replaced by write-then-rename (os.replace), so a reader in this or another process sees the old file or the
    # new one. Changes within one process take turns under the shards' lock; two processes changing aliases at
    # the same moment may lose one change (a folder has no compare-and-set): change them from one place.

    def aliases(self) -> dict[str, str]:
        return self.shards.aliases()

    def set_alias(self, alias: str, collection: str) -> None:
        self.shards.change_aliases(lambda current: current.__setitem__(alias, collection))

    def drop_alias(self, alias: str) -> bool:
        if alias not in self.aliases():
            return False
        self.shards.change_aliases(lambda current: current.pop(alias, None))
        return True

    def for_collection(self, collection: str) -> QdrantEdgeStore:
        return QdrantEdgeStore(self.shards, collection, location=self.location, hnsw_ef=self._hnsw_ef,
                               hnsw_config=self._hnsw_config)


def _edge_sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(vector.indices.tolist(), vector.values.tolist())


def open_qdrant_edge_store(
    collection: str,
    *,
    provider: Any = None,
    path: str | None = None,
    url: str | None = None,
    client: EdgeShards | None = None,
    hnsw_ef: int | None = None,
    hnsw_config: qe.HnswIndexConfig | None = None,
    **options: Any,
) -> QdrantEdgeStore:
    """The ``qdrant-edge`` entry point: a :class:`QdrantEdgeStore` in folder ``path``, in shared ``client`` shards,
    or (neither) in a temporary folder removed on close — the embedded engine's "in memory".

    ``hnsw_ef``: the HNSW search breadth (Edge's default otherwise); ``hnsw_config``: a
    ``qdrant_edge.HnswIndexConfig`` (m, ef_construct, ...) for a shard created now.
    ``url=`` is refused: Qdrant Edge is embedded only (use the ``qdrant`` store for a server).
    """
    if url is not None:
        raise InvalidInputError(
            f"qdrant-edge is an embedded engine and takes no url= (got {url!r}); give path= (a folder), "
            "or use the 'qdrant' store for a server"
        )
    if options:
        raise InvalidInputError(
            f"unknown qdrant-edge options {sorted(options)}; it takes hnsw_ef= and hnsw_config= "
            "(one unnamed vector: no vector_name=)"
        )
    if hnsw_config is not None and not isinstance(hnsw_config, qe.HnswIndexConfig):
        raise InvalidInputError(f"hnsw_config must be a qdrant_edge.HnswIndexConfig, got {type(hnsw_config).__name__}")
    settings: dict[str, Any] = {"hnsw_ef": hnsw_ef, "hnsw_config": hnsw_config}
    if client is not None:
        if not isinstance(client, EdgeShards):
            raise InvalidInputError(f"client must be a vecembed_qdrant_edge.EdgeShards, got {type(client).__name__}")
        return QdrantEdgeStore(client, collection, location=str(client.path), **settings)
    shards = EdgeShards(path)
    return QdrantEdgeStore(
        shards, collection, location="memory" if path is None else path, owns_shards=True, **settings
    )


#: Qdrant Edge stores keep sparse vectors (see :class:`~vecembed.store.SparseCapable`).
open_qdrant_edge_store.keeps_sparse = True  # type: ignore[attr-defined]
