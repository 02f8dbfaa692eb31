"""The store contract: what a database implements, the values every store shares, and the store registry.

The database side mirrors the provider side. A provider implements only the
forward pass and shares the text pipeline; a database implements only
:class:`VectorStore` — its own calls, nothing else — and shares the identity
check (:mod:`vecembed.identity`), the ingest engine (:mod:`vecembed.ingest`) and
the user's :class:`~vecembed.collection.Store` (:mod:`vecembed.collection`).
This module holds only the contract: it imports neither of them.

Stores are plug-ins: the ``vecembed.stores`` entry-point group maps a name to a
factory ``(collection, *, provider, path, url, client, **options) -> VectorStore``,
so a package of its own can add a database without touching vecembed
(:func:`available_stores` lists what is installed). vecembed itself imports no
adapter by name.
"""

from __future__ import annotations

import functools
from asyncio import AbstractEventLoop
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any, Protocol, runtime_checkable

from vecembed.errors import InvalidInputError
from vecembed.identity import CollectionIdentity, IdentitySource
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record
from vecembed.sparse import Fusion, SparseVector, reciprocal_rank_fusion
from vecembed.types import Embeddings, HealthReport

__all__ = [
    "STORE_ENTRY_POINTS",
    "AliasStore",
    "AsyncClientStore",
    "CollectionState",
    "DropStore",
    "Hit",
    "IngestReport",
    "NativeFusion",
    "PreferredBatchSize",
    "ScanStore",
    "ServerOnly",
    "SparseCapable",
    "SparseStore",
    "StoreFactory",
    "VectorStore",
    "available_sparse_stores",
    "available_stores",
    "fuse_hits",
    "keeps_sparse",
    "needs_server",
    "store_factory",
]

#: The entry-point group that registers stores (pyproject.toml ``[project.entry-points."vecembed.stores"]``).
STORE_ENTRY_POINTS = "vecembed.stores"


# -- values every store shares --------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One search result: the caller's id, a similarity score (higher is nearer), the text and metadata."""

    id: str
    score: float
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 6), "text": self.text, "metadata": dict(self.metadata)}


def fuse_hits(dense: Sequence[Hit], sparse: Sequence[Hit], k: int, fusion: Fusion) -> list[Hit]:
    """The fused top ``k`` of a dense and a sparse ranking (best first): Reciprocal Rank Fusion, its score as ``score``.

    What :class:`~vecembed.collection.Store` computes for a store without :class:`NativeFusion`, and what a
    native store computes when its database's fusion differs (weights).
    """
    fused = reciprocal_rank_fusion(
        [dense, sparse], k, k=fusion.k, weights=(fusion.dense_weight, fusion.sparse_weight)
    )
    return [Hit(hit.id, score, hit.text, hit.metadata) for hit, score in fused]


@dataclass(frozen=True, kw_only=True)
class IngestReport:
    """What one ingest did.

    ``documents``: documents read. ``written``: embedded and written by this call.
    ``skipped``: already stored with the same text and metadata, so not embedded again.
    ``duplicates``: repeats of a document in the input, collapsed into one.
    ``batches``: writes sent. ``retries``: transient failures a retry absorbed.
    ``truncated``: texts cut to the model's ``max_tokens`` by this call (None: the provider does not count).
    """

    db: str
    collection: str
    documents: int
    written: int
    skipped: int = 0
    duplicates: int = 0
    batches: int = 0
    retries: int = 0
    truncated: int | None = None
    seconds: float = 0.0

    @property
    def texts_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "collection": self.collection,
            "documents": self.documents,
            "written": self.written,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "retries": self.retries,
            "truncated": self.truncated,
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        truncated = "n/a" if self.truncated is None else str(self.truncated)
        return (
            f"{self.db}: ingested {self.documents} documents into {self.collection!r}: {self.written} written, "
            f"{self.skipped} unchanged, {self.duplicates} duplicates, {self.retries} retries, {truncated} truncated, "
            f"{self.seconds:.2f} s ({self.texts_per_second:.1f} texts/s)"
        )


@dataclass(frozen=True, kw_only=True)
class CollectionState:
    """What a database says about an existing collection.

    ``identity``: the recorded vecembed identity (None: none recorded). ``dimension`` /
    ``distance``: the vector size and distance the collection holds or was configured
    with, when the database knows. ``count``: its records — needed only when no
    identity is recorded, so a store may leave it None otherwise. ``source``: where
    ``identity`` was read (Chroma: its metadata, or only a stored vecembed
    embedding-function config, which the first claim copies into the metadata).
    ``sparse_field``: whether the database's collection has a sparse vector field (None: the
    store cannot tell, or any collection can take sparse vectors, as the memory store's can).
    """

    identity: CollectionIdentity | None
    dimension: int | None = None
    distance: str | None = None
    count: int | None = None
    source: IdentitySource = IdentitySource.METADATA
    sparse_field: bool | None = None


# -- the contract a database implements ------------------------------------------------------------


@runtime_checkable
class VectorStore(Protocol):
    """One collection of one database, as the ingest engine and :class:`Store` use it.

    Implement only database calls: no embedding, no identity policy, no retries
    (the engine retries what :meth:`is_transient` calls passing). Ids are the
    normalised caller ids (``str``); vectors are float32 ``(n, dim)``.

    Every store keeps each record's text and metadata beside its vector, and gives them back
    (:meth:`scan`): a collection can always be re-embedded into another model's space
    (:func:`vecembed.migrate`) without the original documents.

    Optional traits, each declared by a protocol below and tested with ``isinstance``:
    :class:`PreferredBatchSize` (documents per write), :class:`AsyncClientStore` (the
    event loop of a native async client), :class:`DropStore` (drop the collection),
    :class:`AliasStore`, :class:`SparseStore`, :class:`NativeFusion`; a factory may be :class:`ServerOnly`.
    """

    #: The database's name, as registered ("chroma", "qdrant").
    db: str
    #: The collection's name.
    collection: str
    #: Where it lives, for messages: a folder, a URL, or "memory".
    location: str
    #: Whether metadata values may be lists and dicts (else only str/int/float/bool).
    nested_metadata: bool

    def state(self) -> CollectionState | None:
        """The collection's recorded identity, vector size and distance; None when it does not exist."""
        ...

    def create(self, identity: CollectionIdentity) -> None:
        """Create the collection for ``identity``, recording it; a no-op when someone created it meanwhile."""
        ...

    def record_identity(self, identity: CollectionIdentity) -> None:
        """Record ``identity`` in an existing collection's metadata, keeping the user's own metadata."""
        ...

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        """Upsert ``records`` with their vectors (row i for record i); writing the same records again is a no-op."""
        ...

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content_hash}`` of those ``ids`` that are stored (ids not stored are left out)."""
        ...

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        """The ``k`` nearest records to each query vector, best first; ``where``: metadata that must equal."""
        ...

    def count(self) -> int:
        """Records in the collection (0 when it does not exist)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the records with these ids (ids not stored are ignored)."""
        ...

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        """Every stored record (the caller's id, text, metadata without vecembed's keys, content hash).

        In batches of at most ``batch_size``, read from the database one batch at a time, so memory
        does not grow with the collection; nothing when the collection does not exist. The order is
        the database's; records written or deleted during the scan may or may not be seen (a
        migration's catch-up pass picks them up).
        """
        ...

    def health(self) -> HealthReport:
        """Whether the database answers (not the collection, not the provider). Never raises."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying the call that raised ``exc`` may succeed (connection lost, timeout, 5xx, 429)."""
        ...

    def close(self) -> None:
        """Release the client if the store created it (a client passed in is the caller's to close)."""
        ...


# -- optional traits: declared, tested with isinstance ---------------------------------------------


@runtime_checkable
class PreferredBatchSize(Protocol):
    """A store whose cost per write call is high next to its cost per record: its documents per write.

    The engine uses ``preferred_batch_size`` when the caller names no ``batch_size`` (None: the default, 128).
    """

    preferred_batch_size: int | None


@runtime_checkable
class AsyncClientStore(Protocol):
    """A store on a native async client: its calls run on ``loop`` (through a :class:`vecembed.aio.LoopBridge`).

    :class:`~vecembed.collection.Store` then refuses its sync methods on that loop's own thread, where they
    would wait for themselves. ``loop`` None: a sync client after all.
    """

    loop: AbstractEventLoop | None


@runtime_checkable
class ScanStore(Protocol):
    """A store that reads its records back: id, text, metadata and content hash.

    Part of :class:`VectorStore` itself since every store implements it (issue 23); kept as a
    name of its own for code that needs only this call.
    """

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        """Every stored record (id, text, metadata, content hash), in batches of at most ``batch_size``.

        Every store keeps each record's text and metadata beside its vector: that is what lets a
        collection be re-embedded into another model's space (:func:`vecembed.migrate`) without
        the original documents. The order is the database's; records written during the scan
        may or may not be seen (a migration's catch-up pass picks them up).
        """
        ...


@runtime_checkable
class DropStore(Protocol):
    """A store that can delete its whole collection (records, index and identity); what ``drop_old`` uses."""

    def drop(self) -> None:
        """Delete the collection (a no-op when it does not exist); aliases that name it are the caller's care."""
        ...


@runtime_checkable
class SparseStore(Protocol):
    """A store that keeps a sparse vector (:class:`~vecembed.sparse.SparseVector`) per record beside the dense one.

    The collection is created with a sparse field when its identity names a sparse provider
    (``identity.sparse_fingerprint``). ``sparse_idf``: ``"database"`` when the database weighs
    query terms by IDF itself (Qdrant's ``Modifier.IDF``), ``"store"`` when the store keeps
    document frequencies beside the collection, updated in the same write and on delete, and
    weighs the query with :func:`vecembed.sparse.idf`.
    """

    sparse_idf: str

    def write_sparse(self, records: Sequence[Record], vectors: Embeddings, sparse: Sequence[SparseVector]) -> None:
        """:meth:`VectorStore.write` with each record's sparse vector too, in the same write."""
        ...

    def query_sparse(
        self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None
    ) -> list[list[Hit]]:
        """The ``k`` best records by sparse dot product (query weighted by IDF), best first."""
        ...


@runtime_checkable
class NativeFusion(Protocol):
    """A :class:`SparseStore` whose database fuses the dense and the sparse ranking itself (Qdrant's Query API).

    Without it, :class:`~vecembed.collection.Store` queries both legs to the same depth and fuses them with
    :func:`vecembed.sparse.reciprocal_rank_fusion`.
    """

    def query_hybrid(
        self,
        vectors: Embeddings,
        sparse: Sequence[SparseVector],
        k: int,
        where: Mapping[str, Any] | None,
        fusion: Fusion,
    ) -> list[list[Hit]]:
        """The ``k`` best records by Reciprocal Rank Fusion of the dense and the sparse ranking."""
        ...


@runtime_checkable
class AliasStore(Protocol):
    """A store whose database keeps collection aliases: a name that points at one collection and moves atomically.

    Aliases belong to the database (not to the store's collection): any store of the database lists and
    moves them. Qdrant keeps them natively; pgvector in a table changed in one transaction; Chroma and
    Qdrant Edge in a small record written atomically; the memory store in its :class:`MemoryDatabase`.
    :func:`vecembed.set_alias` checks the names first (the alias is a valid collection name and no
    collection's; the collection exists), so a store may take them as checked.
    """

    def aliases(self) -> dict[str, str]:
        """``{alias: collection}`` for every alias of the database (one small read: a store re-reads it often)."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` (creating or moving it) in one atomic step."""
        ...

    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias`` (the collection stays); whether there was one."""
        ...

    def for_collection(self, collection: str) -> VectorStore:
        """A store of the same database, on this store's client, for ``collection`` (where an alias points).

        Closing it leaves the client open: the store it came from owns the client.
        """
        ...


class StoreFactory(Protocol):
    """What a ``vecembed.stores`` entry point names: builds a :class:`VectorStore` for one collection.

    ``provider`` None: the store is opened before the provider is known (it is loaded from what the
    collection records), or only for its database (aliases).
    """

    def __call__(
        self,
        collection: str,
        *,
        provider: EmbeddingProvider | None,
        path: str | None,
        url: str | None,
        client: Any,
        **options: Any,
    ) -> VectorStore: ...


#: Stores that ship inside vecembed itself. They are declared as entry points too (pyproject.toml); listed here
#: as well so that the reference store works from a source checkout whose installed metadata predates it.
_BUILTIN_STORES = {"memory": "vecembed.memory_store:open_memory_store"}


@functools.cache
def _entry_points() -> dict[str, importlib_metadata.EntryPoint]:
    builtin = {
        name: importlib_metadata.EntryPoint(name=name, value=value, group=STORE_ENTRY_POINTS)
        for name, value in _BUILTIN_STORES.items()
    }
    return {**builtin, **{ep.name: ep for ep in importlib_metadata.entry_points(group=STORE_ENTRY_POINTS)}}


def available_stores() -> list[str]:
    """The database names :func:`open_store` accepts (every installed ``vecembed.stores`` entry point)."""
    return sorted(_entry_points())


def store_factory(db: str) -> StoreFactory:
    """The factory registered as ``db`` (imports its adapter, which checks its own extra)."""
    entry = _entry_points().get(db) if isinstance(db, str) else None
    if entry is None:
        names = ", ".join(available_stores()) or "none (is vecembed installed? pip install -e '.[all]')"
        raise InvalidInputError(f"unknown database {db!r}; available: {names}")
    factory: StoreFactory = entry.load()
    return factory


@runtime_checkable
class ServerOnly(Protocol):
    """A store factory marked ``server_only = True``: its database is a server only (``url=``, no ``path=``)."""

    server_only: bool


def needs_server(db: str) -> bool:
    """Whether store ``db`` only talks to a server (its factory is marked ``server_only = True``): no ``path=``."""
    factory = store_factory(db)
    return isinstance(factory, ServerOnly) and bool(factory.server_only)


def keeps_sparse(db: str) -> bool:
    """Whether store ``db``'s factory is marked ``keeps_sparse = True`` (known without opening a collection)."""
    factory = store_factory(db)
    return isinstance(factory, SparseCapable) and bool(factory.keeps_sparse)


@runtime_checkable
class SparseCapable(Protocol):
    """A store factory marked ``keeps_sparse = True``: its stores are :class:`SparseStore` s.

    Lets :func:`available_sparse_stores` (named by every "not supported here" message) list them without
    opening a collection.
    """

    keeps_sparse: bool


def available_sparse_stores() -> list[str]:
    """The database names whose stores keep sparse vectors (sparse and hybrid search), among those installed.

    Imports each store's adapter to ask its factory (only the messages of :class:`~vecembed.errors.UnsupportedError`
    need it); an adapter whose extra is missing is left out.
    """
    names = []
    for db in available_stores():
        try:
            if keeps_sparse(db):
                names.append(db)
        except Exception:  # a missing extra, a broken plug-in: left out, never a second error
            continue
    return names
