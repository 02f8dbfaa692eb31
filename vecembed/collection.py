"""What a user holds: :class:`Store`, one collection of one database bound to a provider, and :func:`open_store`.

::

    with vecembed.open_store("qdrant", "docs", provider, path="./vecembed-data") as store:
        report = store.ingest(docs)              # str | (id, text) | {"id", "text", "metadata"} | Document
        hits = store.search("query", k=10, where={"lang": "en"})   # [Hit(id, score, text, metadata)]

A :class:`Store` joins the parts below it: the database's
:class:`~vecembed.store.VectorStore` (the contract), the identity check
(:mod:`vecembed.identity`), the ingest engine (:mod:`vecembed.ingest`) and the retrying
caller (:class:`~vecembed.retry.StoreCaller`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vecembed.aio import Worker, refuse_on_loop, run_on_thread
from vecembed.errors import CollectionNotFoundError, InvalidInputError, ProviderUnavailableError
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity, IdentitySource, Verdict, claiming, verify_identity
from vecembed.ingest import ingest
from vecembed.protocol import EmbeddingProvider
from vecembed.records import check_text, normalize_id
from vecembed.retry import StoreCaller
from vecembed.store import AsyncClientStore, CollectionState, Hit, IngestReport, VectorStore, store_factory
from vecembed.types import HealthReport

__all__ = ["Store", "aopen_store", "open_store"]


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
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(
                f"where[{key!r}] = {value!r}: no stored value equals NaN or inf (metadata refuses them); "
                "filter on a finite number"
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
        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"provider must be an EmbeddingProvider (e.g. vecembed.load_provider('onnx')), "
                f"got {type(provider).__name__}"
            )
        self.backend = backend
        self.provider = provider
        self.adopt = adopt
        self.identity = CollectionIdentity.of(provider.info, vector_name=vector_name)
        self.caller = StoreCaller(backend, max_retries=max_retries, retry_backoff=retry_backoff)
        self._loop = backend.loop if isinstance(backend, AsyncClientStore) else None
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
            refuse_on_loop(self._loop, f"store.{call}()", f"`await store.a{call}(...)`")

    def _verify(self) -> tuple[CollectionState, Verdict] | None:
        state = self.caller(self.backend.state)
        if state is None:
            return None
        verdict = verify_identity(
            self.collection,
            self.identity,
            recorded=state.identity,
            source=state.source if state.identity is not None else IdentitySource.NONE,
            stored_dimension=state.dimension,
            stored_distance=state.distance,
            count=state.count,
            normalized=self.provider.info.normalized,
            adopt=self.adopt,
        )
        return state, verdict

    def claim(self) -> None:
        """Make the collection this provider's: create it, or record the identity in it, and read it back.

        :meth:`ingest` calls it before its first write; a caller that writes another way (the Ray sink,
        a benchmark) calls it first. A no-op when the collection already records this identity;
        :class:`~vecembed.errors.ModelMismatchError` / :class:`~vecembed.errors.DimensionMismatchError`
        when it is another model's.
        """
        with claiming(self.db, self.location, self.collection):  # check, record, read back: one step here
            checked = self._verify()
            if checked is None:
                self.caller(lambda: self.backend.create(self.identity))
            elif checked[1] is Verdict.RECORD:
                self.caller(lambda: self.backend.record_identity(self.identity))
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
        self._off_loop("ingest")
        return ingest(
            self.backend,
            self.provider,
            documents,
            caller=self.caller,
            before_first_write=self.claim,
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
        return self.caller(lambda: self.backend.query(vectors, k, flt))

    def count(self) -> int:
        """Documents in the collection (0 before the first ingest created it)."""
        self._off_loop("count")
        return int(self.caller(self.backend.count))

    def delete(self, ids: Iterable[str | int]) -> int:
        """Delete the documents with these ids (as given to :meth:`ingest`, or a :class:`Hit`'s ``id``).

        Returns how many ids were asked for; ids that are not stored are ignored.
        """
        self._off_loop("delete")
        if isinstance(ids, str | bytes | Mapping):
            raise InvalidInputError(f"ids must be a list of str or int, got {type(ids).__name__}")
        wanted = [normalize_id(doc_id, f"ids[{i}]") for i, doc_id in enumerate(ids)]
        if wanted and self._verify() is not None:
            self.caller(lambda: self.backend.delete(wanted))
        return len(wanted)

    def health_check(self) -> HealthReport:
        """One report: the database answers, the collection fits the provider, the provider works. Never raises."""

        def collection() -> tuple[bool, str, dict[str, bool]]:
            checked = self._verify()
            if checked is None:
                missing = f"collection {self.collection!r} does not exist yet (ingest creates it)"
                return False, missing, {"exists": False}
            if checked[1] is Verdict.RECORD and checked[0].identity is None:
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
