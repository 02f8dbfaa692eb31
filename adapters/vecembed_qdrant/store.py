"""QdrantStore: Qdrant's side of the vecembed store contract (in memory, a local folder, or a server).

Only Qdrant calls live here; identity policy, validation, batching, retries and
progress are the shared engine's (:mod:`vecembed.store`, :mod:`vecembed.ingest`).
Registered as the ``qdrant`` entry point of ``vecembed.stores``::

    vecembed.open_store("qdrant", "docs", provider)                          # QdrantClient(":memory:")
    vecembed.open_store("qdrant", "docs", provider, path="./qdrant")         # local mode on disk
    vecembed.open_store("qdrant", "docs", provider, url="http://127.0.0.1:6333")
    vecembed.open_store("qdrant", "docs", provider, client=my_client, vector_name="text")
    await vecembed.aopen_store("qdrant", "docs", provider, client=AsyncQdrantClient(url=...))  # in an event loop

Points: the id is ``uuid5`` of the caller's id (a canonical UUID string is kept
as is), the payload holds the caller's metadata at the top level (so filters
name its keys directly) beside ``vecembed:id``, ``vecembed:text`` and
``vecembed:hash``. An ``AsyncQdrantClient`` (same method names, coroutines) is used
through a :class:`vecembed.aio.LoopBridge`: the calls below run on its event loop.
Where local mode sets the pace: it commits every point to
sqlite on its own (10–20 ms a point on disk), so there the writes, not the
embedding, are the bottleneck.

Sparse vectors (``open_store(..., sparse="bm25")``): the collection gets a named sparse vector
:data:`SPARSE_VECTOR_NAME` beside the dense one (named or not), with ``Modifier.IDF`` when the
sparse provider weighs query terms by IDF — Qdrant keeps the document frequencies and weighs
the query itself, in memory, path and server mode alike (qdrant-client 1.20's local mode
implements the modifier: ``sparse_idf = "database"`` everywhere). Hybrid search is one Query API
call: a dense and a sparse ``Prefetch`` (the filter on both) fused by ``RrfQuery``. Qdrant's RRF
scores ``1 / (k + position)`` with positions from 0 (and its default k is 2), so vecembed sends
``k + 1`` to get the paper's ``1 / (k + rank)`` of :class:`vecembed.Fusion`; weights are fused here
instead (Qdrant divides the rank by the weight, another formula), from both legs fetched in one
batch request. A server keeps counting deleted points in its IDF statistics until it optimises the
segment that held them (local mode forgets them at once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from vecembed.aio import LoopBridge, bridge_async_client
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.health import timed_check
from vecembed.identity import (
    RECORD_HASH_KEY,
    RECORD_ID_KEY,
    RECORD_TEXT_KEY,
    RESERVED_PREFIX,
    CollectionIdentity,
)
from vecembed.records import ID_NAMESPACE, Record, content_hash
from vecembed.retry import is_transient_default
from vecembed.sparse import Fusion, SparseVector
from vecembed.store import CollectionState, Hit, fuse_hits
from vecembed.types import Embeddings, HealthReport

__all__ = [
    "HASH_SELECTOR",
    "SPARSE_VECTOR_NAME",
    "QdrantStore",
    "hit_of",
    "is_transient",
    "open_qdrant_store",
    "point_id",
    "record_of",
    "record_payload",
    "stored_hashes_of",
    "to_filter",
]

log = logging.getLogger("vecembed")

#: Points above which a sparse or hybrid search on qdrant-client's local mode logs, once per store, that local
#: mode scores sparse vectors in pure Python (measured: ~25 µs a stored point a query, 120-470 ms at 5,183).
LOCAL_SPARSE_NOTICE_POINTS = 2000

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# gRPC status names that mean "try again later" rather than "this request is wrong".
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})
_RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})

#: The name of the sparse vector in a collection written with a sparse provider.
SPARSE_VECTOR_NAME = "sparse"

_DISTANCES = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the Qdrant call that raised ``exc`` may succeed.

    A 4xx answer (e.g. "Vector dimension error"), a closed local client or a
    local-mode ``ValueError`` is not transient: retrying would fail the same way.
    """
    if isinstance(exc, ResponseHandlingException):  # transport level: refused, reset, timed out
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    code = getattr(exc, "code", None)
    if callable(code) and type(exc).__module__.startswith("grpc"):
        try:
            return getattr(code(), "name", "") in _TRANSIENT_GRPC
        except Exception:
            return False
    return is_transient_default(exc)


def _canonical_uuid(value: str) -> str | None:
    # Only the 36-character hyphenated form counts: uuid.UUID also parses "{...}", "urn:uuid:" and bare hex,
    # and treating those as UUIDs would make two different caller ids collide.
    if len(value) != 36 or value.count("-") != 4:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a (normalised) caller id: the id itself when it is a UUID, else ``uuid5`` of it."""
    # "id:str:" as the 0.1 adapter spelled it, so string ids written then keep their points.
    return _canonical_uuid(doc_id) or str(uuid.uuid5(ID_NAMESPACE, "id:str:" + doc_id))


# -- the payload layout, shared with the Qdrant Edge store -------------------------------------------

#: Payload keys to fetch to know what is stored. Quoted: a payload selector is a JSON path, where ":" is only
#: allowed inside quotes.
HASH_SELECTOR = [f'"{RECORD_ID_KEY}"', f'"{RECORD_HASH_KEY}"']


def record_payload(record: Record) -> dict[str, Any]:
    """A point's payload: the caller's metadata at the top level (filters name its keys) beside vecembed's own."""
    return {**record.metadata, RECORD_ID_KEY: record.id, RECORD_TEXT_KEY: record.text,
            RECORD_HASH_KEY: record.content_hash}


def stored_hashes_of(payloads: Iterable[Mapping[str, Any] | None]) -> dict[str, str]:
    """``{caller id: content hash}`` from retrieved payloads (points written by other code are left out)."""
    out: dict[str, str] = {}
    for payload in payloads:
        if payload and RECORD_ID_KEY in payload and RECORD_HASH_KEY in payload:
            out[str(payload[RECORD_ID_KEY])] = str(payload[RECORD_HASH_KEY])
    return out


def hit_of(point_id_: Any, score: float, payload: Mapping[str, Any] | None) -> Hit:
    """A :class:`~vecembed.store.Hit` from a scored point: the caller's id and text, the metadata without ours."""
    payload = dict(payload or {})
    metadata = {k: v for k, v in payload.items() if not k.startswith(RESERVED_PREFIX)}
    text = str(payload.get(RECORD_TEXT_KEY, ""))
    return Hit(str(payload.get(RECORD_ID_KEY, point_id_)), float(score), text, metadata)


def record_of(point_id_: Any, payload: Mapping[str, Any] | None) -> Record:
    """A scanned point as a :class:`~vecembed.records.Record`: the caller's id, text, metadata and content hash.

    A point written by other code (no vecembed keys) comes back under its point id, with the text its
    payload has under ``vecembed:text`` (else empty) and a hash computed here.
    """
    payload = dict(payload or {})
    metadata = {k: v for k, v in payload.items() if not k.startswith(RESERVED_PREFIX)}
    text = str(payload.get(RECORD_TEXT_KEY, ""))
    stored = payload.get(RECORD_HASH_KEY)
    digest = str(stored) if stored else content_hash(text.encode("utf-8", "surrogatepass"), metadata)
    return Record(id=str(payload.get(RECORD_ID_KEY, point_id_)), text=text, metadata=metadata, content_hash=digest)


def _is_match_any(value: Any) -> bool:
    # Qdrant's MatchAny takes a list of str or a list of int, not a mixture (and bools are not ints to it).
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        return False
    return all(isinstance(v, str) for v in value) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def to_filter(query_filter: models.Filter | Mapping[str, Any] | None) -> models.Filter | None:
    """A ``models.Filter`` as it is, or a plain dict turned into one (every condition must hold).

    ``{"lang": "en"}`` matches a value, ``{"lang": ["en", "de"]}`` any of several,
    ``{"year": {"gte": 2020, "lt": 2024}}`` a range. Keys are metadata keys
    (nested ones with dots, as Qdrant spells them).
    """
    if query_filter is None or isinstance(query_filter, models.Filter):
        return query_filter
    if not isinstance(query_filter, Mapping):
        raise InvalidInputError(
            f"a filter must be a qdrant_client.models.Filter or a dict, got {type(query_filter).__name__}"
        )
    conditions: list[models.Condition] = []
    for key, value in query_filter.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"filter keys must be str, got {key!r}")
        if isinstance(value, Mapping) and value and set(value) <= _RANGE_KEYS:
            conditions.append(models.FieldCondition(key=key, range=models.Range(**dict(value))))
        elif isinstance(value, bool | int | str):
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        elif isinstance(value, float):
            # MatchValue takes no floats: an exact float is the range [v, v].
            conditions.append(models.FieldCondition(key=key, range=models.Range(gte=value, lte=value)))
        elif _is_match_any(value):
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        else:
            raise InvalidInputError(
                f"filter[{key!r}] = {value!r} is not a value, a non-empty list of str or of int, or a range "
                "dict with gt/gte/lt/lte; build a qdrant_client.models.Filter for anything else"
            )
    return models.Filter(must=conditions)


def _distance_name(distance: models.Distance) -> str:
    return str(distance.value).lower()


class QdrantStore:
    """One Qdrant collection as a :class:`~vecembed.store.VectorStore`.

    Also a :class:`~vecembed.store.SparseStore` (Qdrant weighs query terms by IDF: ``sparse_idf = "database"``)
    with :class:`~vecembed.store.NativeFusion` (the Query API's prefetch + RRF).
    """

    db = "qdrant"
    #: Qdrant payloads keep any JSON: lists and nested dicts are stored and filterable (with dotted keys).
    nested_metadata = True
    #: Qdrant computes IDF itself (``Modifier.IDF``), in every mode.
    sparse_idf = "database"

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        location: str,
        vector_name: str | None = None,
        owns_client: bool = False,
    ) -> None:
        if vector_name is not None and not (isinstance(vector_name, str) and vector_name):
            raise InvalidInputError(f"vector_name must be a non-empty str or None, got {vector_name!r}")
        if vector_name == SPARSE_VECTOR_NAME:
            raise InvalidInputError(
                f"vector_name {SPARSE_VECTOR_NAME!r} is the name of vecembed's sparse vector; name the dense one "
                "otherwise"
            )
        self.client = client
        self.collection = collection
        self.location = location
        self.vector_name = vector_name
        self._owns_client = owns_client
        #: The event loop of a bridged AsyncQdrantClient (the Store refuses sync calls on it); None otherwise.
        self.loop = client.loop if isinstance(client, LoopBridge) else None
        self._sparse_noticed = False

    @property
    def local_mode(self) -> bool:
        """Whether the client is qdrant-client's local mode (``":memory:"`` or ``path=``), not a server."""
        from qdrant_client.local.async_qdrant_local import AsyncQdrantLocal
        from qdrant_client.local.qdrant_local import QdrantLocal

        inner = getattr(self.client, "_client", None)
        return isinstance(inner, (QdrantLocal, AsyncQdrantLocal))

    def _notice_local_sparse(self) -> None:
        """Say once, on a large collection, that local mode's sparse scoring is pure Python and what is faster."""
        if self._sparse_noticed:
            return
        self._sparse_noticed = True
        if not self.local_mode:
            return
        points = int(self.client.count(self.collection, exact=True).count)
        if points > LOCAL_SPARSE_NOTICE_POINTS:
            log.warning(
                "qdrant collection %r at %s: qdrant-client's local mode scores a sparse query against each of its "
                "%d points in pure Python (~25 µs a point), so sparse and hybrid searches take ~%d ms here; for "
                "in-process hybrid search at this size use the qdrant-edge store (Qdrant's engine in this process) "
                "or a Qdrant server (url=)",
                self.collection, self.location, points, max(1, points * 25 // 1000),
            )

    # -- the collection ---------------------------------------------------------------------------

    def _vector_params(self, vectors: Any) -> models.VectorParams:
        name = self.collection
        if self.vector_name is None:
            if isinstance(vectors, models.VectorParams):
                return vectors
            names = sorted(vectors) if isinstance(vectors, Mapping) else []
            raise InvalidInputError(
                f"collection {name!r} has named vectors {names}; pass vector_name= (one of them) to open_store"
            )
        if isinstance(vectors, Mapping):
            params = vectors.get(self.vector_name)
            if isinstance(params, models.VectorParams):
                return params
            raise InvalidInputError(
                f"collection {name!r} has no vector named {self.vector_name!r} (it has {sorted(vectors)}); "
                "pass one of those as vector_name=, or use another collection"
            )
        raise InvalidInputError(
            f"collection {name!r} has one unnamed vector, not a vector named {self.vector_name!r}; "
            "leave vector_name= out, or use another collection"
        )

    def state(self) -> CollectionState | None:
        if not self.client.collection_exists(self.collection):
            return None
        info = self.client.get_collection(self.collection)
        params = self._vector_params(info.config.params.vectors)
        identity = CollectionIdentity.from_metadata(info.config.metadata)
        count = None if identity is not None else int(self.client.count(self.collection, exact=True).count)
        sparse_vectors = info.config.params.sparse_vectors or {}
        return CollectionState(
            identity=identity, dimension=params.size, distance=_distance_name(params.distance), count=count,
            sparse_field=SPARSE_VECTOR_NAME in sparse_vectors,
        )

    def create(self, identity: CollectionIdentity) -> None:
        params = models.VectorParams(size=identity.dimension, distance=_DISTANCES[identity.distance])
        sparse = None
        if identity.has_sparse:
            modifier = models.Modifier.IDF if identity.sparse_idf else None
            sparse = {SPARSE_VECTOR_NAME: models.SparseVectorParams(modifier=modifier)}
        try:
            self.client.create_collection(
                self.collection,
                vectors_config={self.vector_name: params} if self.vector_name else params,
                sparse_vectors_config=sparse,
                metadata=identity.to_metadata(),
            )
        except Exception:
            # Someone else may have created it meanwhile: then the caller reads theirs back and checks it.
            if not self.client.collection_exists(self.collection):
                raise

    def record_identity(self, identity: CollectionIdentity) -> None:
        # Qdrant merges collection metadata on update: the user's own keys stay.
        self.client.update_collection(self.collection, metadata=identity.to_metadata())

    # -- records ----------------------------------------------------------------------------------

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        points = [
            models.PointStruct(
                id=point_id(r.id),
                vector={self.vector_name: row.tolist()} if self.vector_name else row.tolist(),
                payload=record_payload(r),
            )
            for r, row in zip(records, vectors, strict=True)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def write_sparse(self, records: Sequence[Record], vectors: Embeddings, sparse: Sequence[SparseVector]) -> None:
        dense = self.vector_name or ""  # "": the unnamed vector, beside the named sparse one
        points = [
            models.PointStruct(
                id=point_id(r.id),
                vector={dense: row.tolist(), SPARSE_VECTOR_NAME: _sparse(terms)},
                payload=record_payload(r),
            )
            for r, row, terms in zip(records, vectors, sparse, strict=True)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def query_sparse(
        self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None
    ) -> list[list[Hit]]:
        self._notice_local_sparse()
        flt = to_filter(where)
        # A query without terms matches nothing: no request for it.
        asked = [i for i, q in enumerate(queries) if len(q)]
        requests = [
            models.QueryRequest(query=_sparse(queries[i]), using=SPARSE_VECTOR_NAME, filter=flt, limit=k,
                                with_payload=True)
            for i in asked
        ]
        out: list[list[Hit]] = [[] for _ in queries]
        if requests:
            responses = self.client.query_batch_points(self.collection, requests=requests)
            for i, response in zip(asked, responses, strict=True):
                out[i] = [hit_of(p.id, p.score, p.payload) for p in response.points]
        return out

    def query_hybrid(
        self,
        vectors: Embeddings,
        sparse: Sequence[SparseVector],
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
    ) -> list[list[Hit]]:
        self._notice_local_sparse()
        flt = to_filter(where)
        depth = fusion.depth_for(k)
        if not fusion.unweighted:
            # Qdrant's weighted RRF divides the rank by the weight (1 / (rank / w + k - 1)), not vecembed's
            # w / (k + rank): fetch both legs in one batch and fuse them here, as every other store does.
            legs = [models.QueryRequest(query=row.tolist(), using=self.vector_name, filter=flt, limit=depth,
                                        with_payload=True) for row in vectors]
            legs += [models.QueryRequest(query=_sparse(q), using=SPARSE_VECTOR_NAME, filter=flt, limit=depth,
                                         with_payload=True) for q in sparse]
            responses = self.client.query_batch_points(self.collection, requests=legs)
            ranked = [[hit_of(p.id, p.score, p.payload) for p in r.points] for r in responses]
            n = len(vectors)
            return [fuse_hits(ranked[i], ranked[n + i] if len(sparse[i]) else [], k, fusion) for i in range(n)]
        requests = []
        for row, terms in zip(vectors, sparse, strict=True):
            prefetch = [models.Prefetch(query=row.tolist(), using=self.vector_name, filter=flt, limit=depth)]
            if len(terms):  # a query of stop words only: the dense leg alone (still fused, so scores stay RRF's)
                prefetch.append(models.Prefetch(query=_sparse(terms), using=SPARSE_VECTOR_NAME, filter=flt,
                                                limit=depth))
            requests.append(models.QueryRequest(
                prefetch=prefetch,
                # k + 1: Qdrant counts positions from 0 (1 / (k + position)); Fusion.k is the paper's 1 / (k + rank)
                query=models.RrfQuery(rrf=models.Rrf(k=fusion.k + 1)),
                filter=flt,
                limit=k,
                with_payload=True,
            ))
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[hit_of(p.id, p.score, p.payload) for p in r.points] for r in responses]

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        stored = self.client.retrieve(
            self.collection,
            ids=[point_id(i) for i in ids],
            with_payload=models.PayloadSelectorInclude(include=HASH_SELECTOR),
            with_vectors=False,
        )
        return stored_hashes_of(point.payload for point in stored)

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        flt = to_filter(where)
        requests = [
            models.QueryRequest(query=row.tolist(), using=self.vector_name, filter=flt, limit=k, with_payload=True)
            for row in vectors
        ]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[hit_of(p.id, p.score, p.payload) for p in r.points] for r in responses]

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def delete(self, ids: Sequence[str]) -> None:
        selector = models.PointIdsList(points=[point_id(i) for i in ids])
        self.client.delete(self.collection, points_selector=selector, wait=True)

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        if not self.client.collection_exists(self.collection):
            return
        offset: Any = None
        while True:
            # scroll pages by point id: the next page starts at the id the last one returned
            points, offset = self.client.scroll(
                self.collection, limit=batch_size, offset=offset, with_payload=True, with_vectors=False
            )
            if points:
                yield [record_of(p.id, p.payload) for p in points]
            if offset is None:
                return

    def drop(self) -> None:
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)


    # -- the database -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        def check() -> tuple[bool, str, dict[str, bool]]:
            collections = self.client.get_collections().collections
            return True, f"reachable, {len(collections)} collections", {"reachable": True}

        return timed_check("qdrant", check)

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- aliases (AliasStore): Qdrant's own, in every mode -------------------------------------------
    # qdrant-client 1.20's local mode (":memory:" and path=) keeps aliases too, persisted with the collections
    # in path mode, and refuses an alias on a missing collection or over a collection's name as servers do.

    def aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def set_alias(self, alias: str, collection: str) -> None:
        # Delete + create in one request: Qdrant applies the list atomically, so a reader sees the old target or
        # the new one, never no alias. The delete only when the alias exists: a server refuses to delete a
        # missing one.
        create = models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
        )
        operations: list[models.AliasOperations] = [create]
        if alias in self.aliases():
            operations.insert(0, models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def drop_alias(self, alias: str) -> bool:
        if alias not in self.aliases():
            return False
        self.client.update_collection_aliases(
            change_aliases_operations=[models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))]
        )
        return True

    def for_collection(self, collection: str) -> QdrantStore:
        check_collection_name(collection)
        return QdrantStore(self.client, collection, location=self.location, vector_name=self.vector_name)


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())


def _local_client(path: str) -> QdrantClient:
    Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=path)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise ProviderUnavailableError(
                f"the Qdrant folder {path} is in use by another process (local mode allows one client at a time); "
                "stop it, or use another folder, or a server (url=)"
            ) from None
        raise


#: What Qdrant refuses in a new collection's name (the server's rule, mirrored by qdrant-client 1.20's local mode).
INVALID_NAME_CHARS = '<>:"/\\|?*\x00\x1f'
#: Qdrant's longest collection name, in characters.
MAX_NAME_LENGTH = 255


def check_collection_name(collection: str) -> None:
    """Refuse, before anything is opened or embedded, a name Qdrant would refuse when the collection is created."""
    bad = sorted({c for c in collection if c in INVALID_NAME_CHARS})
    if bad or collection in ("", ".", "..") or len(collection) > MAX_NAME_LENGTH:
        why = (f"it contains {', '.join(map(repr, bad))}" if bad
               else f"it has {len(collection)} characters" if collection not in ("", ".", "..") else "it is reserved")
        raise InvalidInputError(
            f"{collection[:80]!r} is not a Qdrant collection name ({why}): a name has 1 to {MAX_NAME_LENGTH} "
            f"characters, is not '.' or '..', and has none of {' '.join(INVALID_NAME_CHARS[:9])} nor NUL or \\x1f"
        )


def open_qdrant_store(
    collection: str,
    *,
    provider: Any = None,
    path: str | None = None,
    url: str | None = None,
    client: QdrantClient | AsyncQdrantClient | None = None,
    vector_name: str | None = None,
    **options: Any,
) -> QdrantStore:
    """The ``qdrant`` entry point: a :class:`QdrantStore` on ``client``, a server ``url``, a local ``path`` or memory.

    ``options`` other than ``vector_name`` go to ``QdrantClient(url=..., **options)`` (e.g. ``api_key``, ``timeout``).
    An ``AsyncQdrantClient`` needs :func:`vecembed.aopen_store` (its calls run on that event loop);
    a sync ``open_store`` refuses it with :class:`~vecembed.errors.EventLoopError`.
    """
    check_collection_name(collection)
    if client is not None:
        if options:
            raise InvalidInputError(f"client options {sorted(options)} cannot apply to a client passed in")
        if isinstance(client, AsyncQdrantClient):
            # The bridge has QdrantClient's method names, each waiting for the async client's coroutine.
            client = cast(QdrantClient, bridge_async_client(client, db="qdrant"))
        return QdrantStore(client, collection, location="client", vector_name=vector_name)
    if url is not None:
        return QdrantStore(
            QdrantClient(url=url, **options), collection, location=url, vector_name=vector_name, owns_client=True
        )
    if options:
        raise InvalidInputError(f"client options {sorted(options)} apply only to a server (url=)")
    if path is not None:
        return QdrantStore(_local_client(path), collection, location=path, vector_name=vector_name, owns_client=True)
    return QdrantStore(QdrantClient(":memory:"), collection, location="memory", vector_name=vector_name,
                       owns_client=True)


#: Qdrant stores keep sparse vectors (see :class:`~vecembed.store.SparseCapable`).
open_qdrant_store.keeps_sparse = True  # type: ignore[attr-defined]
