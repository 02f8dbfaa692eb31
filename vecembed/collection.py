"""What a user holds: :class:`Store`, one collection of one database bound to a provider, and :func:`open_store`.

::

    with vecembed.open_store("qdrant", "docs", provider, path="./vecembed-data") as store:
        report = store.ingest(docs)              # str | (id, text) | {"id", "text", "metadata"} | Document
        hits = store.search("query", k=10, where={"lang": "en"})   # [Hit(id, score, text, metadata)]

A :class:`Store` joins the parts below it: the database's
:class:`~vecembed.store.VectorStore` (the contract), the identity check
(:mod:`vecembed.identity`), the ingest engine (:mod:`vecembed.ingest`) and the retrying
caller (:class:`~vecembed.retry.StoreCaller`).

With a sparse provider (``open_store(..., sparse="bm25")``) the store also writes each
document's sparse vector and searches in three modes: ``"dense"`` (the default),
``"sparse"`` and ``"hybrid"`` — Reciprocal Rank Fusion of the two rankings, done by the
database where it can (:class:`~vecembed.store.NativeFusion`), else here from two candidate
lists of the same depth (:func:`vecembed.sparse.reciprocal_rank_fusion`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from vecembed.aio import Worker, refuse_on_loop, run_on_thread
from vecembed.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    ModelMismatchError,
    ProviderNotRecordedError,
    ProviderUnavailableError,
    UnsupportedError,
)
from vecembed.health import timed_check
from vecembed.identity import (
    REINGEST_ADVICE,
    CollectionIdentity,
    IdentitySource,
    Verdict,
    claiming,
    sparse_provider_name,
    verify_identity,
)
from vecembed.ingest import ingest, require_sparse_store
from vecembed.protocol import EmbeddingProvider
from vecembed.records import check_text, normalize_id
from vecembed.retry import StoreCaller
from vecembed.sparse import (
    Fusion,
    SparseEmbeddingProvider,
    SparseVector,
    check_sparse_argument,
    load_sparse_provider,
)
from vecembed.store import (
    AliasStore,
    AsyncClientStore,
    CollectionState,
    Hit,
    IngestReport,
    NativeFusion,
    SparseStore,
    VectorStore,
    fuse_hits,
    store_factory,
)
from vecembed.types import HealthReport

__all__ = [
    "ALIAS_RECHECK_SECONDS",
    "SEARCH_MODES",
    "Store",
    "aliases",
    "aopen_store",
    "drop_alias",
    "open_store",
    "set_alias",
]

#: What :meth:`Store.search` accepts as ``mode``.
SEARCH_MODES = ("dense", "sparse", "hybrid")


def _check_mode(mode: Any, fusion: Any) -> Fusion | None:
    if mode not in SEARCH_MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(map(repr, SEARCH_MODES))}, got {mode!r}")
    if fusion is not None and not isinstance(fusion, Fusion):
        raise InvalidInputError(f"fusion must be a vecembed.Fusion or None, got {type(fusion).__name__}")
    if fusion is not None and mode != "hybrid":
        raise InvalidInputError(f"fusion= applies to mode='hybrid' only, not mode={mode!r}")
    return fusion


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


#: How often a :class:`Store` reads its database's aliases again before a search or an ingest, in seconds
#: (``store.alias_recheck_seconds``). 0: before every call — one small read (a dict, a ``get_aliases``, a
#: one-row SELECT, a small JSON file, one collection's metadata); measured in benchmarks/alias_check.py.
ALIAS_RECHECK_SECONDS = 0.0


@dataclass(frozen=True)
class _Bound:
    """The collection one call works on and the provider that embeds for it, read once per call.

    When an alias moves, the whole binding is replaced, never half of it: a call that started on the old
    collection finishes there with the old provider.
    """

    backend: VectorStore
    provider: EmbeddingProvider
    identity: CollectionIdentity


def _recorded_provider(backend: VectorStore, state: CollectionState | None, name: str) -> EmbeddingProvider:
    """The provider ``backend``'s collection records (``open_store(db, name)`` without ``provider=``)."""
    where = f"{backend.db} collection {backend.collection!r} at {backend.location}"
    if state is None:
        raise CollectionNotFoundError(
            f"{backend.db} has no collection {name!r} at {backend.location} (nor an alias of that name), and "
            "no provider= was given: pass provider= (e.g. vecembed.load_provider('onnx')) to create it",
            db=backend.db,
            collection=name,
            location=backend.location,
        )
    identity = state.identity
    if identity is None or identity.provider is None:
        what = "records no vecembed identity" if identity is None else (
            f"records model {identity.describe()} but not how to load it (written before vecembed recorded "
            "providers)"
        )
        raise ProviderNotRecordedError(
            f"{where} {what}: pass provider= to open_store (the provider it was written with)"
        )
    return identity.provider.load(
        fingerprint=identity.fingerprint,
        dimension=identity.dimension,
        model=identity.model,
        where=where,
        advice="pass that model's provider as provider= to open_store",
    )


class Store:
    """One collection of one database, bound to a provider. Open it with :func:`open_store`.

    Every write goes through :func:`vecembed.ingest.ingest`; every read and write is
    checked against the identity the collection records, at open and again before each
    ingest and each search (so a collection replaced by another model's is noticed).

    Opened by an alias (``name``), it follows the alias: before each search and ingest
    (at most every :attr:`alias_recheck_seconds`) it reads where the alias points, and
    when it moved, works on the new collection — with the same provider when the new
    collection records the same vector space; with the provider the new collection
    records when the store was opened without ``provider=``; otherwise every call raises
    :class:`~vecembed.errors.ModelMismatchError` saying where the alias moved and to which
    model (never vectors of one model searched against another's).
    """

    #: Seconds between two reads of the aliases (0: before every search and ingest); see ALIAS_RECHECK_SECONDS.
    alias_recheck_seconds: float = ALIAS_RECHECK_SECONDS

    def __init__(
        self,
        backend: VectorStore,
        provider: EmbeddingProvider | None = None,
        *,
        create: bool = True,
        adopt: bool = False,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        vector_name: str | None = None,
        name: str | None = None,
        root: VectorStore | None = None,
        sparse: SparseEmbeddingProvider | None = None,
        owns_sparse: bool = False,
    ) -> None:
        if provider is not None and not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"provider must be an EmbeddingProvider (e.g. vecembed.load_provider('onnx')) or None (the "
                f"provider the collection records), got {type(provider).__name__}"
            )
        if sparse is not None:
            if not isinstance(sparse, SparseEmbeddingProvider):
                raise InvalidInputError(
                    f"sparse must be a SparseEmbeddingProvider (e.g. vecembed.load_sparse_provider('bm25')) or its "
                    f"name, got {type(sparse).__name__}"
                )
            require_sparse_store(backend)
        #: The sparse provider whose vectors are written beside the dense ones (None: dense only).
        self.sparse = sparse
        self._owns_sparse = owns_sparse and sparse is not None
        #: The store that owns the client and reads the aliases (the one opened by ``name``).
        self.root = root if root is not None else backend
        #: The name the store was opened by: an alias, or the collection's own name.
        self.name = name if name is not None else backend.collection
        self.adopt = adopt
        self._vector_name = vector_name
        # One caller for every collection the store works on: they share one client (and its lock).
        self.caller = StoreCaller(self.root, max_retries=max_retries, retry_backoff=retry_backoff)
        self._loop = backend.loop if isinstance(backend, AsyncClientStore) else None
        if self._loop is not None:
            # A native async client: a worker thread waits while its call runs on the loop, so a second one can
            # embed the next query meanwhile (providers serve several threads; the database calls still go
            # one at a time through the caller).
            self.async_concurrency = 2
        #: Whether the provider is the one the collection records, loaded here (then closed by close()).
        self.owns_provider = provider is None
        self._retired: list[EmbeddingProvider] = []
        if provider is None:
            provider = _recorded_provider(backend, self.caller(backend.state), self.name)
        self._bound = _Bound(backend, provider, CollectionIdentity.of(
            provider.info, vector_name=vector_name, sparse=None if sparse is None else sparse.info
        ))
        self._aliased = isinstance(self.root, AliasStore)
        self._alias_lock = threading.Lock()
        self._alias_checked = time.monotonic()
        self._moved: ModelMismatchError | None = None
        try:
            if self._verify(self._bound) is None and not create:
                raise CollectionNotFoundError(
                    f"{backend.db} has no collection {backend.collection!r} at {backend.location}",
                    db=backend.db,
                    collection=backend.collection,
                    location=backend.location,
                )
        except BaseException:
            if self.owns_provider:
                provider.close()
            raise

    # -- identity -----------------------------------------------------------------------------

    @property
    def backend(self) -> VectorStore:
        """The database's store of the collection this store works on now."""
        return self._bound.backend

    @property
    def provider(self) -> EmbeddingProvider:
        """The provider that embeds for it now."""
        return self._bound.provider

    @property
    def identity(self) -> CollectionIdentity:
        """The identity the provider gives a collection (what is compared with the recorded one)."""
        return self._bound.identity

    @property
    def db(self) -> str:
        return self._bound.backend.db

    @property
    def collection(self) -> str:
        """The collection it works on now (where its alias points, when it was opened by one)."""
        return self._bound.backend.collection

    @property
    def location(self) -> str:
        return self._bound.backend.location

    @property
    def alias(self) -> str | None:
        """The alias the store follows (its ``name``, when that names another collection); None otherwise."""
        return self.name if self.name != self.collection else None

    def _off_loop(self, call: str) -> None:
        """Refuse a sync call on the event loop of the store's async client (it would wait for itself)."""
        if self._loop is not None:
            refuse_on_loop(self._loop, f"store.{call}()", f"`await store.a{call}(...)`")

    def _verify(self, bound: _Bound, *, writing: bool = False) -> tuple[CollectionState, Verdict] | None:
        state = self.caller(bound.backend.state)
        if state is None:
            return None
        verdict = verify_identity(
            bound.backend.collection,
            bound.identity,
            recorded=state.identity,
            source=state.source if state.identity is not None else IdentitySource.NONE,
            stored_dimension=state.dimension,
            stored_distance=state.distance,
            count=state.count,
            normalized=bound.provider.info.normalized,
            adopt=self.adopt,
            stored_sparse=state.sparse_field,
            writing=writing,
        )
        return state, verdict

    # -- the alias ----------------------------------------------------------------------------

    def _current(self, *, force: bool = False) -> _Bound:
        """The binding to use for one call, after following the alias when it is time to read it again."""
        if not self._aliased:
            return self._bound
        if force or self._moved is not None or (
            time.monotonic() - self._alias_checked >= self.alias_recheck_seconds
        ):
            with self._alias_lock:
                self._follow()
        if self._moved is not None:
            moved = self._moved
            # A fresh exception each call (one raised again and again would grow its traceback).
            raise ModelMismatchError(str(moved), expected=moved.expected, got=moved.got)
        return self._bound

    def _follow(self) -> None:
        """Read where the alias points; when it moved, bind the new collection (or record why it cannot be)."""
        root = self.root
        assert isinstance(root, AliasStore)
        target = self.caller(root.aliases).get(self.name)
        self._alias_checked = time.monotonic()
        bound = self._bound
        if target is None or target == bound.backend.collection:
            # Not an alias (any more): a dropped alias leaves the store on the collection it last named.
            self._moved = None
            return
        backend = root.for_collection(target)
        state = self.caller(backend.state)
        if state is None:
            return  # a dangling alias (its collection dropped): keep serving the last one rather than nothing
        recorded = state.identity
        old = bound.backend.collection
        if recorded is not None and recorded.fingerprint == bound.identity.fingerprint:
            self._bound = _Bound(backend, bound.provider, bound.identity)
        elif self.owns_provider:
            provider = _recorded_provider(backend, state, target)
            # The old provider may still serve a call in flight: closed with the store, not now.
            self._retired.append(bound.provider)
            self._bound = _Bound(
                backend, provider, CollectionIdentity.of(
                    provider.info,
                    vector_name=self._vector_name,
                    sparse=None if self.sparse is None else self.sparse.info,
                )
            )
        else:
            model = recorded.describe() if recorded is not None else "no recorded model"
            self._moved = ModelMismatchError(
                f"alias {self.name!r} moved from collection {old!r} to {target!r}, written with model {model}, "
                f"but this store's provider is {bound.identity.describe()}: its vectors cannot be searched there. "
                f"Reopen it with that model's provider, or without provider= (open_store({self.db!r}, "
                f"{self.name!r}) loads the provider the collection records)",
                expected=recorded.fingerprint if recorded is not None else None,
                got=bound.identity.fingerprint,
            )
            return
        self._moved = None

    def claim(self) -> None:
        """Make the collection this provider's: create it, or record the identity in it, and read it back.

        :meth:`ingest` calls it before its first write; a caller that writes another way (the Ray sink,
        a benchmark) calls it first. A no-op when the collection already records this identity;
        :class:`~vecembed.errors.ModelMismatchError` / :class:`~vecembed.errors.DimensionMismatchError`
        when it is another model's.
        """
        self._claim(self._current())

    def _claim(self, bound: _Bound) -> None:
        backend = bound.backend
        with claiming(backend.db, backend.location, backend.collection):  # check, record, read back: one step
            checked = self._verify(bound, writing=True)
            if checked is None:
                self.caller(lambda: backend.create(bound.identity))
            elif checked[1] is Verdict.RECORD:
                self.caller(lambda: backend.record_identity(bound.identity))
            else:
                return
            # Read back rather than trusted: another process may have claimed it meanwhile (then its identity
            # must match ours), and Qdrant servers before 1.16 accept collection metadata and drop it.
            checked = self._verify(bound, writing=True)
        if checked is None or checked[0].identity is None:
            raise ProviderUnavailableError(
                f"{backend.db} did not keep the identity recorded in collection {backend.collection!r} at "
                f"{backend.location}; a server too old to store collection metadata (Qdrant < 1.16)? Upgrade it"
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
        before = self.caller.retries
        bound = self._current()
        # A transient failure absorbed while reading the alias is this ingest's too: counted in its report.
        absorbed = self.caller.retries - before
        report = ingest(
            bound.backend,
            bound.provider,
            documents,
            caller=self.caller,
            before_first_write=lambda: self._claim(bound),
            batch_size=batch_size,
            show_progress=show_progress,
            skip_unchanged=skip_unchanged,
            sparse=self.sparse,
        )
        return replace(report, retries=report.retries + absorbed) if absorbed else report

    def search(
        self,
        query: str,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        *,
        mode: str = "dense",
        fusion: Fusion | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first; ``where``: metadata values that must all equal.

        ``mode``: ``"dense"`` (nearest vectors), ``"sparse"`` (the sparse provider's terms, e.g. BM25) or
        ``"hybrid"`` (Reciprocal Rank Fusion of both; ``fusion`` sets its k, weights and depth). ``where``
        applies to both legs of a hybrid search. A hybrid query without sparse terms (only stop words)
        returns the dense hits.
        """
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}; use search_many() for a list")
        self._off_loop("search")
        return self.search_many([query], k=k, where=where, mode=mode, fusion=fusion)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        *,
        mode: str = "dense",
        fusion: Fusion | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search` for several queries, embedded in one call and sent in one request where possible."""
        self._off_loop("search_many")
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError(f"queries must be a list of str, got {type(queries).__name__}")
        for i, query in enumerate(queries):
            check_text(query, f"queries[{i}]")
        k = _check_k(k)
        flt = _check_where(where)
        fusion = _check_mode(mode, fusion)
        # A store without sparse vectors refuses before anything else: no collection of it could answer.
        if mode != "dense":
            require_sparse_store(self.backend)
        if not queries:
            return []
        bound = self._current()
        checked = self._verify(bound)
        if checked is None:
            if not self._aliased:
                return [[] for _ in queries]
            # Its collection is gone: the alias may have moved (and the old collection dropped) since it was read.
            bound = self._current(force=True)
            checked = self._verify(bound)
            if checked is None:
                return [[] for _ in queries]
        backend = bound.backend
        if mode == "dense":
            vectors = bound.provider.embed_queries(list(queries))
            return self.caller(lambda: backend.query(vectors, k, flt))
        sparse_store = require_sparse_store(backend)
        sparse_provider = self._sparse_provider_for(backend, checked[0], mode)
        terms = [sparse_provider.embed_query(q) for q in queries]
        if mode == "sparse":
            return self.caller(lambda: sparse_store.query_sparse(terms, k, flt))
        vectors = bound.provider.embed_queries(list(queries))
        return self._hybrid(backend, sparse_store, vectors, terms, k, flt, fusion or Fusion())

    def _sparse_provider_for(
        self, backend: VectorStore, state: CollectionState, mode: str
    ) -> SparseEmbeddingProvider:
        """The sparse provider for a ``mode`` search of the collection in ``state``; else the error that says the fix.

        A collection that records no sparse provider (made dense-only, or by other code) cannot be searched so;
        one that does needs its sparse provider to encode the query.
        """
        recorded = state.identity
        collection = backend.collection
        if recorded is None or not recorded.has_sparse:
            raise UnsupportedError(
                f"collection {collection!r} holds no sparse vectors (it was written without sparse=), so "
                f"mode={mode!r} cannot search it: {REINGEST_ADVICE}; mode='dense' works as it is"
            )
        if self.sparse is None:
            name = sparse_provider_name(recorded)
            raise InvalidInputError(
                f"mode={mode!r} needs the sparse provider collection {collection!r} was written with, "
                f"{recorded.describe_sparse()}: open the store with it (open_store({self.db!r}, "
                f"{self.name!r}, provider, sparse={name!r}), or --sparse {name} on the command line)"
            )
        return self.sparse

    def _hybrid(
        self,
        dense_store: VectorStore,
        backend: SparseStore,
        vectors: Any,
        terms: list[SparseVector],
        k: int,
        flt: dict[str, Any] | None,
        fusion: Fusion,
    ) -> list[list[Hit]]:
        """Reciprocal Rank Fusion of the dense and the sparse ranking: in the database where it can, else here."""
        if isinstance(backend, NativeFusion):
            return self.caller(lambda: backend.query_hybrid(vectors, terms, k, flt, fusion))
        depth = fusion.depth_for(k)
        dense = self.caller(lambda: dense_store.query(vectors, depth, flt))
        sparse = self.caller(lambda: backend.query_sparse(terms, depth, flt))
        return [fuse_hits(d, s, k, fusion) for d, s in zip(dense, sparse, strict=True)]

    def count(self) -> int:
        """Documents in the collection (0 before the first ingest created it)."""
        self._off_loop("count")
        return int(self.caller(self._current().backend.count))

    def delete(self, ids: Iterable[str | int]) -> int:
        """Delete the documents with these ids (as given to :meth:`ingest`, or a :class:`Hit`'s ``id``).

        Returns how many ids were asked for; ids that are not stored are ignored.
        """
        self._off_loop("delete")
        if isinstance(ids, str | bytes | Mapping):
            raise InvalidInputError(f"ids must be a list of str or int, got {type(ids).__name__}")
        wanted = [normalize_id(doc_id, f"ids[{i}]") for i, doc_id in enumerate(ids)]
        bound = self._current()
        if wanted and self._verify(bound) is not None:
            self.caller(lambda: bound.backend.delete(wanted))
        return len(wanted)

    def health_check(self) -> HealthReport:
        """One report: the database answers, the collection fits the provider, the provider works. Never raises."""

        def collection() -> tuple[bool, str, dict[str, bool]]:
            checked = self._verify(self._current())
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

        checks = [self.backend.health(), timed_check("collection", collection), timed_check("provider", provider)]
        if self.sparse is not None:
            sparse = self.sparse

            def sparse_provider() -> tuple[bool, str, dict[str, bool]]:
                report = sparse.health_check()
                return report.ok, report.detail, dict(report.checks)

            checks.append(timed_check("sparse-provider", sparse_provider))
        return HealthReport.combine(f"{self.db}-store", checks)

    def close(self) -> None:
        """Release the database client if the store opened it (not the provider: it is the caller's)."""
        if self._worker is not None:
            self._worker.shutdown()
        self._release()

    def _release(self) -> None:
        """Close the database client (the root store owns it) and the providers this store loaded itself."""
        bound = self._bound
        if bound.backend is not self.root:
            bound.backend.close()  # on the root's client: releases nothing of it
        self.root.close()
        if self.owns_provider:
            for provider in [*self._retired, bound.provider]:
                provider.close()
            self._retired.clear()
        if self._owns_sparse and self.sparse is not None:
            self.sparse.close()

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

    async def asearch(
        self,
        query: str,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        *,
        mode: str = "dense",
        fusion: Fusion | None = None,
    ) -> list[Hit]:
        """:meth:`search` on a worker thread."""
        return await self._async_worker().run(self.search, query, k, where, mode=mode, fusion=fusion)

    async def asearch_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        where: Mapping[str, Any] | None = None,
        *,
        mode: str = "dense",
        fusion: Fusion | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search_many` on a worker thread."""
        return await self._async_worker().run(self.search_many, queries, k, where, mode=mode, fusion=fusion)

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
        await worker.run(self._release)
        worker.shutdown()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        ident = self.identity
        sparse = f" sparse={ident.sparse_model}" if ident.has_sparse else ""
        return f"<Store {self.db}:{self.collection!r} at {self.location} {ident.model} dim={ident.dimension}{sparse}>"


async def aopen_store(db: str, collection: str, provider: EmbeddingProvider | None = None, **options: Any) -> Store:
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


def _where(path: str | None, url: str | None, client: Any) -> None:
    given = [name for name, value in (("path", path), ("url", url), ("client", client)) if value is not None]
    if len(given) > 1:
        raise InvalidInputError(f"give one of path=, url= or client=, not {' and '.join(given)}")


def open_store(
    db: str,
    collection: str,
    provider: EmbeddingProvider | None = None,
    *,
    path: str | None = None,
    url: str | None = None,
    client: Any = None,
    create: bool = True,
    adopt: bool = False,
    max_retries: int = 3,
    retry_backoff: float = 0.5,
    sparse: str | SparseEmbeddingProvider | None = None,
    **options: Any,
) -> Store:
    """Open ``collection`` in database ``db`` for ``provider``; check its recorded identity before anything else.

    Where: ``path`` (an embedded database in that folder), ``url`` (a server) or
    ``client`` (a client you made; you close it) — none of them: in memory.
    ``collection`` is looked up as an alias first (:func:`set_alias`), then as a collection;
    a store opened by an alias follows it when it moves (see :class:`Store`).
    ``provider`` None: the provider the collection records (its backend and options,
    loaded with :func:`vecembed.load_provider`); a collection that records none needs ``provider=``.
    ``create=False`` opens an existing collection only
    (:class:`~vecembed.errors.CollectionNotFoundError` otherwise); with ``create=True``
    the first ingest creates it. ``adopt=True`` records the provider's identity in a
    collection that holds vectors but no vecembed record. ``options`` go to the
    database's store (e.g. Qdrant's ``vector_name``).
    ``sparse``: a sparse provider (or its name for :func:`vecembed.load_sparse_provider`, e.g. ``"bm25"``)
    whose vectors are written beside the dense ones and recorded in the collection's identity; it enables
    ``search(..., mode="sparse" | "hybrid")`` on stores that keep sparse vectors
    (:class:`~vecembed.errors.UnsupportedError` elsewhere). A collection made without it cannot gain it later
    (re-ingest into a new collection); one made with it refuses an ingest without it.
    Raises :class:`~vecembed.errors.ModelMismatchError` /
    :class:`~vecembed.errors.DimensionMismatchError` for a collection of another model.
    """
    if not isinstance(collection, str) or not collection:
        raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
    _where(path, url, client)
    factory = store_factory(db)
    vector_name = options.get("vector_name")
    sparse = check_sparse_argument(sparse)
    root = factory(
        collection, provider=provider, path=None if path is None else str(path), url=url, client=client, **options
    )
    sparse_provider: SparseEmbeddingProvider | None = None
    try:
        if isinstance(sparse, str):
            require_sparse_store(root)  # before loading anything
            sparse_provider = load_sparse_provider(sparse)
        else:
            sparse_provider = sparse
        backend = root
        if isinstance(root, AliasStore):
            target = StoreCaller(root, max_retries=max_retries, retry_backoff=retry_backoff)(root.aliases).get(
                collection
            )
            if target is not None:
                backend = root.for_collection(target)
                if backend.state() is None:
                    raise CollectionNotFoundError(
                        f"{db} alias {collection!r} at {root.location} names collection {target!r}, which does not "
                        f"exist (dropped?); point it at another one (vecembed.set_alias) or drop it",
                        db=db,
                        collection=target,
                        location=root.location,
                    )
        return Store(
            backend,
            provider,
            create=create,
            adopt=adopt,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            vector_name=vector_name,
            name=collection,
            root=root,
            sparse=sparse_provider,
            owns_sparse=isinstance(sparse, str),
        )
    except BaseException:
        root.close()
        if isinstance(sparse, str) and sparse_provider is not None:
            sparse_provider.close()
        raise


# -- aliases: the database's names for collections ------------------------------------------------------


def _alias_store(db: str, name: str, path: str | None, url: str | None, client: Any, options: Any) -> AliasStore:
    """A store of ``db`` opened on ``name`` (so the name passes the database's own name check) that keeps aliases."""
    _where(path, url, client)
    factory = store_factory(db)
    store = factory(name, provider=None, path=None if path is None else str(path), url=url, client=client, **options)
    if not isinstance(store, AliasStore):
        store.close()
        raise UnsupportedError(f"the {db} store keeps no aliases (it does not implement vecembed.store.AliasStore)")
    return store


def aliases(
    db: str, *, path: str | None = None, url: str | None = None, client: Any = None, **options: Any
) -> dict[str, str]:
    """``{alias: collection}`` for every alias of database ``db`` (where: as :func:`open_store`)."""
    store = _alias_store(db, "vecembed-aliases", path, url, client, options)
    try:
        return dict(sorted(store.aliases().items()))
    finally:
        cast(VectorStore, store).close()


def set_alias(
    db: str,
    alias: str,
    collection: str,
    *,
    path: str | None = None,
    url: str | None = None,
    client: Any = None,
    **options: Any,
) -> None:
    """Point ``alias`` at ``collection`` in database ``db``, creating the alias or moving it in one atomic step.

    ``alias`` must be a valid collection name of the database (the same check) and not a collection's
    name; ``collection`` must exist. Stores opened by the alias follow it on their next search or ingest.
    Raises :class:`~vecembed.errors.InvalidInputError` or
    :class:`~vecembed.errors.CollectionNotFoundError`; nothing changes then.
    """
    for what, value in (("alias", alias), ("collection", collection)):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"{what} must be a non-empty str, got {value!r}")
    if alias == collection:
        raise InvalidInputError(f"alias {alias!r} cannot point at itself: name another collection")
    store = _alias_store(db, alias, path, url, client, options)
    try:
        target = store.for_collection(collection)  # the database's name check on the collection too
        current = store.aliases()
        if target.state() is None or collection in current:
            why = "it is an alias itself (an alias names a collection)" if collection in current else "not found"
            raise CollectionNotFoundError(
                f"alias {alias!r} cannot point at {db} collection {collection!r} at "
                f"{cast(VectorStore, store).location}: {why}; nothing changed",
                db=db,
                collection=collection,
                location=cast(VectorStore, store).location,
            )
        # A store opened on the alias's name sees the aliased collection in Qdrant (it resolves aliases itself).
        if alias not in current and cast(VectorStore, store).state() is not None:
            raise InvalidInputError(
                f"{alias!r} is a {db} collection at {cast(VectorStore, store).location}: an alias may not shadow "
                "a collection; choose another alias name; nothing changed"
            )
        store.set_alias(alias, collection)
    finally:
        cast(VectorStore, store).close()


def drop_alias(
    db: str, alias: str, *, path: str | None = None, url: str | None = None, client: Any = None, **options: Any
) -> bool:
    """Remove ``alias`` from database ``db`` (its collection stays); whether there was one."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInputError(f"alias must be a non-empty str, got {alias!r}")
    store = _alias_store(db, alias, path, url, client, options)
    try:
        return store.drop_alias(alias)
    finally:
        cast(VectorStore, store).close()
