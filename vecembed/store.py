"""The store contract: what a database implements, the values every store shares, and :func:`open_store`.

The database side mirrors the provider side. A provider implements only the
forward pass and shares the text pipeline; a database implements only
:class:`VectorStore` — its own calls, nothing else — and shares the identity
check (:mod:`vecembed.identity`) and the ingest engine (:mod:`vecembed.ingest`)::

    with vecembed.open_store("qdrant", "docs", provider, path="./vecembed-data") as store:
        report = store.ingest(docs)              # str | (id, text) | {"id", "text", "metadata"} | Document
        hits = store.search("query", k=10, where={"lang": "en"})   # [Hit(id, score, text, metadata)]

Stores are plug-ins: the ``vecembed.stores`` entry-point group maps a name to a
factory ``(collection, *, provider, path, url, client, **options) -> VectorStore``,
so a package of its own can add a database without touching vecembed
(:func:`available_stores` lists what is installed). vecembed itself imports no
adapter by name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any, Protocol, runtime_checkable

from vecembed.aio import Worker
from vecembed.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    ProviderUnavailableError,
)
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity, Verdict, claiming, verify_identity
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Document, Record
from vecembed.types import Embeddings, HealthReport

__all__ = [
    "STORE_ENTRY_POINTS",
    "CollectionState",
    "Document",
    "Hit",
    "IngestReport",
    "Record",
    "Store",
    "VectorStore",
    "aopen_store",
    "available_stores",
    "open_store",
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
    identity is recorded, so a store may leave it None otherwise.
    """

    identity: CollectionIdentity | None
    dimension: int | None = None
    distance: str | None = None
    count: int | None = None


# -- the contract a database implements ------------------------------------------------------------


@runtime_checkable
class VectorStore(Protocol):
    """One collection of one database, as the ingest engine and :class:`Store` use it.

    Implement only database calls: no embedding, no identity policy, no retries
    (the engine retries what :meth:`is_transient` calls passing). Ids are the
    normalised caller ids (``str``); vectors are float32 ``(n, dim)``.

    Optional: ``preferred_batch_size`` (an int), the documents per write the engine
    uses when the caller names none (default 128) — for a database whose cost per
    write call is high next to its cost per record. ``loop`` (an asyncio event loop):
    the loop of the native async client the store's calls run on (through a
    :class:`vecembed.aio.LoopBridge`); :class:`Store` then refuses its sync methods on
    that loop's own thread, where they would wait for themselves.
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

    def health(self) -> HealthReport:
        """Whether the database answers (not the collection, not the provider). Never raises."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying the call that raised ``exc`` may succeed (connection lost, timeout, 5xx, 429)."""
        ...

    def close(self) -> None:
        """Release the client if the store created it (a client passed in is the caller's to close)."""
        ...


class StoreFactory(Protocol):
    """What a ``vecembed.stores`` entry point names: builds a :class:`VectorStore` for one collection."""

    def __call__(
        self,
        collection: str,
        *,
        provider: EmbeddingProvider,
        path: str | None,
        url: str | None,
        client: Any,
        **options: Any,
    ) -> VectorStore: ...


@functools.cache
def _entry_points() -> dict[str, importlib_metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib_metadata.entry_points(group=STORE_ENTRY_POINTS)}


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


def needs_server(db: str) -> bool:
    """Whether store ``db`` only talks to a server (its factory is marked ``server_only = True``): no ``path=``."""
    return bool(getattr(store_factory(db), "server_only", False))


# -- what a user holds -----------------------------------------------------------------------------


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    return k


def _check_where(where: Any) -> dict[str, Any] | None:
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidInputError(f"where must be a dict of metadata key -> value, got {type(where).__name__}")
    out: dict[str, Any] = {}
    for key, value in where.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"where: keys must be non-empty str, got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInputError(
                f"where[{key!r}] = {value!r}: an exact-match filter takes a str, int, float or bool value"
            )
        out[key] = value
    return out or None


class Store:
    """One collection of one database, bound to a provider. Open it with :func:`open_store`.

    Every write goes through :func:`vecembed.ingest.ingest`; every read and write is
    checked against the identity the collection records, at open and again before each
    ingest and each search (so a collection replaced by another model's is noticed).
    """

    def __init__(
        self,
        backend: VectorStore,
        provider: EmbeddingProvider,
        *,
        create: bool = True,
        adopt: bool = False,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        vector_name: str | None = None,
    ) -> None:
        from vecembed.ingest import StoreCaller

        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"provider must be an EmbeddingProvider (e.g. vecembed.load_provider('onnx')), "
                f"got {type(provider).__name__}"
            )
        self.backend = backend
        self.provider = provider
        self.adopt = adopt
        self.identity = CollectionIdentity.of(provider.info, vector_name=vector_name)
        self._caller = StoreCaller(backend, max_retries=max_retries, retry_backoff=retry_backoff)
        self._loop = getattr(backend, "loop", None)
        if self._loop is not None:
            # A native async client: a worker thread waits while its call runs on the loop, so a second one can
            # embed the next query meanwhile (providers serve several threads; the database calls still go
            # one at a time through the caller).
            self.async_concurrency = 2
        if self._verify() is None and not create:
            raise CollectionNotFoundError(
                f"{backend.db} has no collection {backend.collection!r} at {backend.location}",
                db=backend.db,
                collection=backend.collection,
                location=backend.location,
            )

    # -- identity -----------------------------------------------------------------------------

    @property
    def db(self) -> str:
        return self.backend.db

    @property
    def collection(self) -> str:
        return self.backend.collection

    @property
    def location(self) -> str:
        return self.backend.location

    def _off_loop(self, call: str) -> None:
        """Refuse a sync call on the event loop of the store's async client (it would wait for itself)."""
        if self._loop is not None:
            from vecembed.aio import refuse_on_loop

            refuse_on_loop(self._loop, f"store.{call}()", f"`await store.a{call}(...)`")

    def _verify(self) -> tuple[CollectionState, Verdict] | None:
        state = self._caller(self.backend.state)
        if state is None:
            return None
        verdict = verify_identity(
            self.collection,
            self.identity,
            recorded=state.identity,
            stored_dimension=state.dimension,
            stored_distance=state.distance,
            count=state.count,
            normalized=self.provider.info.normalized,
            adopt=self.adopt,
        )
        return state, verdict

    def _claim(self) -> None:
        """Before the first write of an ingest: create the collection, or record the identity, and read it back."""
        with claiming(self.db, self.location, self.collection):  # check, record, read back: one step here
            checked = self._verify()
            if checked is None:
                self._caller(lambda: self.backend.create(self.identity))
            elif checked[1] is Verdict.RECORD:
                self._caller(lambda: self.backend.record_identity(self.identity))
            else:
                return
            # Read back rather than trusted: another process may have claimed it meanwhile (then its identity
            # must match ours), and Qdrant servers before 1.16 accept collection metadata and drop it.
            checked = self._verify()
        if checked is None or checked[0].identity is None:
            raise ProviderUnavailableError(
                f"{self.db} did not keep the identity recorded in collection {self.collection!r} at "
                f"{self.location}; a server too old to store collection metadata (Qdrant < 1.16)? Upgrade it"
            )

    # -- the API ------------------------------------------------------------------------------

    def ingest(
        self,
        documents: Iterable[Any],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = False,
        skip_unchanged: bool = True,
    ) -> IngestReport:
        """Embed and write ``documents``; return an :class:`IngestReport`. See :func:`vecembed.ingest.ingest`.

        ``documents``: any iterable of ``str``, ``(id, text)``, ``{"id", "text", "metadata"}`` or
        :class:`Document`. Re-running the same ingest writes nothing (``written`` 0, every
        document ``skipped``); after a failure it embeds only what is missing.
        """
        from vecembed.ingest import ingest

        self._off_loop("ingest")
        return ingest(
            self.backend,
            self.provider,
            documents,
            caller=self._caller,
            before_first_write=self._claim,
            batch_size=batch_size,
            show_progress=show_progress,
            skip_unchanged=skip_unchanged,
        )

    def search(self, query: str, k: int = 10, where: Mapping[str, Any] | None = None) -> list[Hit]:
        """The ``k`` nearest documents to ``query``, best first; ``where``: metadata values that must all equal."""
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}; use search_many() for a list")
        self._off_loop("search")
        return self.search_many([query], k=k, where=where)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[list[Hit]]:
        """:meth:`search` for several queries, embedded in one call and sent in one request where possible."""
        from vecembed.records import check_text

        self._off_loop("search_many")
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError(f"queries must be a list of str, got {type(queries).__name__}")
        for i, query in enumerate(queries):
            check_text(query, f"queries[{i}]")
        k = _check_k(k)
        flt = _check_where(where)
        if not queries:
            return []
        if self._verify() is None:
            return [[] for _ in queries]
        vectors = self.provider.embed_queries(list(queries))
        return self._caller(lambda: self.backend.query(vectors, k, flt))

    def count(self) -> int:
        """Documents in the collection (0 before the first ingest created it)."""
        self._off_loop("count")
        return int(self._caller(self.backend.count))

    def delete(self, ids: Iterable[str | int]) -> int:
        """Delete the documents with these ids (as given to :meth:`ingest`, or a :class:`Hit`'s ``id``).

        Returns how many ids were asked for; ids that are not stored are ignored.
        """
        from vecembed.records import normalize_id

        self._off_loop("delete")
        if isinstance(ids, str | bytes | Mapping):
            raise InvalidInputError(f"ids must be a list of str or int, got {type(ids).__name__}")
        wanted = [normalize_id(doc_id, f"ids[{i}]") for i, doc_id in enumerate(ids)]
        if wanted and self._verify() is not None:
            self._caller(lambda: self.backend.delete(wanted))
        return len(wanted)

    def health_check(self) -> HealthReport:
        """One report: the database answers, the collection fits the provider, the provider works. Never raises."""

        def collection() -> tuple[bool, str, dict[str, bool]]:
            checked = self._verify()
            if checked is None:
                missing = f"collection {self.collection!r} does not exist yet (ingest creates it)"
                return False, missing, {"exists": False}
            if checked[1] is Verdict.RECORD:
                return False, (
                    f"collection {self.collection!r} records no vecembed identity yet (the next ingest records it)"
                ), {"exists": True, "identity": False}
            count = self.count()
            return True, (
                f"{self.collection!r}: {count} records, dimension {self.identity.dimension}, "
                f"model {self.identity.model}"
            ), {"exists": True, "identity": True}

        def provider() -> tuple[bool, str, dict[str, bool]]:
            report = self.provider.health_check()
            return report.ok, report.detail, dict(report.checks)

        return HealthReport.combine(
            f"{self.db}-store",
            [self.backend.health(), timed_check("collection", collection), timed_check("provider", provider)],
        )

    def close(self) -> None:
        """Release the database client if the store opened it (not the provider: it is the caller's)."""
        if self._worker is not None:
            self._worker.shutdown()
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- async: the same calls on this store's worker threads, for asyncio apps (FastAPI, ...) ----

    #: Calls the async methods may run at once on this store; 1 (one database call at a time, off the event
    #: loop) suits every store, embedded ones included; 2 on a native async client. Set it before the first
    #: async call.
    async_concurrency: int = 1
    _worker: Worker | None = None

    def _async_worker(self) -> Worker:
        if self._worker is None:
            self._worker = Worker(self.async_concurrency, name=f"vecembed-store-{self.db}")
        return self._worker

    async def aingest(self, documents: Iterable[Any], **options: Any) -> IngestReport:
        """:meth:`ingest` on a worker thread (embedding and writes included): the event loop stays free."""
        return await self._async_worker().run(self.ingest, documents, **options)

    async def asearch(self, query: str, k: int = 10, where: Mapping[str, Any] | None = None) -> list[Hit]:
        """:meth:`search` on a worker thread."""
        return await self._async_worker().run(self.search, query, k, where)

    async def asearch_many(
        self, queries: Sequence[str], k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[list[Hit]]:
        """:meth:`search_many` on a worker thread."""
        return await self._async_worker().run(self.search_many, queries, k, where)

    async def acount(self) -> int:
        """:meth:`count` on a worker thread."""
        return await self._async_worker().run(self.count)

    async def adelete(self, ids: Iterable[str | int]) -> int:
        """:meth:`delete` on a worker thread."""
        return await self._async_worker().run(self.delete, ids)

    async def ahealth_check(self) -> HealthReport:
        """:meth:`health_check` on a worker thread. Never raises."""
        return await self._async_worker().run(self.health_check)

    async def aclose(self) -> None:
        """:meth:`close` on a worker thread, after the async calls already queued."""
        worker = self._async_worker()
        await worker.run(self.backend.close)
        worker.shutdown()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        ident = self.identity
        return f"<Store {self.db}:{self.collection!r} at {self.location} {ident.model} dim={ident.dimension}>"


async def aopen_store(db: str, collection: str, provider: EmbeddingProvider, **options: Any) -> Store:
    """:func:`open_store` on a worker thread (opening may reach a server): ``async with await aopen_store(...)``.

    The returned :class:`Store` has ``aingest``, ``asearch``, ``asearch_many``, ``acount``,
    ``adelete``, ``ahealth_check`` and ``aclose``, each running the sync call on the
    store's own worker threads (``store.async_concurrency`` at once, 1 by default).

    ``client=`` may be a native async client of this event loop (``qdrant_client.AsyncQdrantClient``,
    ``await chromadb.AsyncHttpClient(...)``): every database call then runs as a coroutine on this
    loop (:class:`vecembed.aio.LoopBridge`), under the same engine and checks as a sync client's.
    Use such a store through its async methods, or its sync ones from other threads while the loop
    runs; a sync call on the loop itself raises :class:`~vecembed.errors.EventLoopError`.
    """
    from vecembed.aio import run_on_thread

    return await run_on_thread(open_store, db, collection, provider, **options)


def open_store(
    db: str,
    collection: str,
    provider: EmbeddingProvider,
    *,
    path: str | None = None,
    url: str | None = None,
    client: Any = None,
    create: bool = True,
    adopt: bool = False,
    max_retries: int = 3,
    retry_backoff: float = 0.5,
    **options: Any,
) -> Store:
    """Open ``collection`` in database ``db`` for ``provider``; check its recorded identity before anything else.

    Where: ``path`` (an embedded database in that folder), ``url`` (a server) or
    ``client`` (a client you made; you close it) — none of them: in memory.
    ``create=False`` opens an existing collection only
    (:class:`~vecembed.errors.CollectionNotFoundError` otherwise); with ``create=True``
    the first ingest creates it. ``adopt=True`` records the provider's identity in a
    collection that holds vectors but no vecembed record. ``options`` go to the
    database's store (e.g. Qdrant's ``vector_name``).
    Raises :class:`~vecembed.errors.ModelMismatchError` /
    :class:`~vecembed.errors.DimensionMismatchError` for a collection of another model.
    """
    if not isinstance(collection, str) or not collection:
        raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
    given = [name for name, value in (("path", path), ("url", url), ("client", client)) if value is not None]
    if len(given) > 1:
        raise InvalidInputError(f"give one of path=, url= or client=, not {' and '.join(given)}")
    factory = store_factory(db)
    vector_name = options.get("vector_name")
    backend = factory(
        collection, provider=provider, path=None if path is None else str(path), url=url, client=client, **options
    )
    try:
        return Store(
            backend,
            provider,
            create=create,
            adopt=adopt,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            vector_name=vector_name,
        )
    except BaseException:
        backend.close()
        raise
