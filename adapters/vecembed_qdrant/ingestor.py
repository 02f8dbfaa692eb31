"""QdrantIngestor: create/check a collection for a provider, ingest documents in pipelined batches, search by text.

The ingest pipeline overlaps the two slow halves of the job: while a worker
thread upserts batch *k* into Qdrant, the calling thread embeds batch *k+1*.
At most one batch is in flight, so memory stays bounded by two batches.

Where the time goes depends on the client: with ``QdrantClient(":memory:")``
an upsert is cheap (~0.1 ms a point) and the ingest runs at nearly the
embedding's speed; a server answers over the network, which the pipeline hides;
``QdrantClient(path=...)`` commits every point to sqlite on its own (about
10–20 ms a point on the disks measured), so there the writes set the pace and
the embedding hides behind them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    ProviderUnavailableError,
)
from vecembed.health import timed_check
from vecembed.pipeline import validate_texts
from vecembed.protocol import EmbeddingProvider
from vecembed.types import Embeddings, EmbeddingStats, HealthReport, ModelInfo
from vecembed_qdrant._progress import IngestProgress, want_progress
from vecembed_qdrant._retry import call_with_retry, is_transient
from vecembed_qdrant.collection import (
    CollectionState,
    accepted_distances,
    collection_metadata,
    default_distance,
    inspect_collection,
)
from vecembed_qdrant.points import PreparedDocs, point_id, prepare_documents, validate_ids
from vecembed_qdrant.records import Hit, IngestError, IngestReport

__all__ = ["DEFAULT_BATCH_SIZE", "QdrantIngestor", "to_filter"]

#: Documents per upsert. Small enough that the pipeline overlaps well and a progress bar moves; large enough
#: that a server round trip per batch costs little, and that embedding batch by batch is as fast as one
#: embed call over everything (measured with onnx: 64-text calls cost ~11 % more, 128 and 256 none).
DEFAULT_BATCH_SIZE = 128

FilterLike = models.Filter | Mapping[str, Any] | None

_RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})

#: Point ids per lookup when checking which documents are already stored unchanged.
_LOOKUP_CHUNK = 256


def _distance(value: models.Distance | str | None) -> models.Distance | None:
    if value is None or isinstance(value, models.Distance):
        return value
    if isinstance(value, str):
        for d in models.Distance:
            if value.lower() in (d.value.lower(), d.name.lower()):
                return d
    raise InvalidInputError(
        f"distance must be a qdrant_client.models.Distance or one of "
        f"{[d.value for d in models.Distance]}, got {value!r}"
    )


def _is_match_any(value: Any) -> bool:
    # Qdrant's MatchAny takes a list of str or a list of int, not a mixture (and bools are not ints to it).
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        return False
    return all(isinstance(v, str) for v in value) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def to_filter(query_filter: FilterLike) -> models.Filter | None:
    """A ``models.Filter`` as it is, or a plain dict turned into one (every condition must hold).

    ``{"lang": "en"}`` matches a value, ``{"lang": ["en", "de"]}`` any of several,
    ``{"year": {"gte": 2020, "lt": 2024}}`` a range. Keys are metadata keys
    (nested ones with dots, as Qdrant spells them).
    """
    if query_filter is None or isinstance(query_filter, models.Filter):
        return query_filter
    if not isinstance(query_filter, Mapping):
        raise InvalidInputError(
            f"query_filter must be a qdrant_client.models.Filter or a dict, got {type(query_filter).__name__}"
        )
    conditions: list[models.Condition] = []
    for key, value in query_filter.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"query_filter keys must be str, got {key!r}")
        if isinstance(value, Mapping) and value and set(value) <= _RANGE_KEYS:
            conditions.append(models.FieldCondition(key=key, range=models.Range(**dict(value))))
        elif isinstance(value, bool | int | str):
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        elif _is_match_any(value):
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        else:
            raise InvalidInputError(
                f"query_filter[{key!r}] = {value!r} is not a value, a non-empty list of str or of int, or a range "
                "dict with gt/gte/lt/lte; build a qdrant_client.models.Filter for anything else"
            )
    return models.Filter(must=conditions)


class QdrantIngestor:
    """Puts documents embedded by ``provider`` into the Qdrant collection ``collection``, and searches it by text.

    ``client`` is any ``QdrantClient``: ``QdrantClient(":memory:")``,
    ``QdrantClient(path=...)`` or a server (``QdrantClient(url=...)``); the
    ingestor does not close it. ``vector_name``: use a named vector instead of
    the collection's unnamed one. ``distance``: the distance of a collection this
    creates (default cosine); an existing collection must use it — or, when
    ``distance`` is not given, cosine or (for a normalised model) dot.
    ``text_key`` / ``id_key``: the payload keys holding the text and the caller's
    id; the metadata's own keys sit beside them, so filters name them directly.

    A collection that exists but records no vecembed fingerprint (made by other
    code) is adopted — its fingerprint recorded — when it is empty, or when
    ``adopt=True`` says its vectors do come from this provider's model;
    otherwise it is refused with :class:`~vecembed.errors.ModelMismatchError`,
    because nothing tells which model wrote its vectors.

    Qdrant calls that fail for a passing reason (connection refused or reset,
    timeout, 5xx, 429) are retried ``max_retries`` times with exponential
    backoff starting at ``retry_backoff`` seconds.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        provider: EmbeddingProvider,
        *,
        vector_name: str | None = None,
        distance: models.Distance | str | None = None,
        text_key: str = "document",
        id_key: str = "id",
        adopt: bool = False,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        if not isinstance(collection, str) or not collection:
            raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"provider must be an EmbeddingProvider (e.g. vecembed.load_provider('onnx')), "
                f"got {type(provider).__name__}"
            )
        if not text_key or not id_key or text_key == id_key:
            raise InvalidInputError(f"text_key and id_key must be two different non-empty str, got {text_key!r}, "
                                    f"{id_key!r}")
        if vector_name is not None and not (isinstance(vector_name, str) and vector_name):
            raise InvalidInputError(f"vector_name must be a non-empty str or None, got {vector_name!r}")
        if max_retries < 0 or retry_backoff < 0:
            raise InvalidInputError("max_retries and retry_backoff must not be negative")
        self.client = client
        self.collection = collection
        self.provider = provider
        self.vector_name = vector_name
        self.distance = _distance(distance)
        self.text_key = text_key
        self.id_key = id_key
        self.adopt = adopt
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        # The collection's vector size once it has been checked against the provider; None: not checked yet.
        self._verified_size: int | None = None
        self._retries = 0
        self._retries_lock = threading.Lock()
        self._client_lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """The provider's model info (what the collection is checked against)."""
        return self.provider.info

    def _count_retry(self, exc: BaseException) -> None:
        with self._retries_lock:
            self._retries += 1

    def _call(self, fn: Any) -> Any:
        try:
            # One Qdrant call at a time: local mode is plain Python state without locks, and the ingest's
            # worker thread upserts while the calling thread looks up unchanged points. What overlaps is
            # embedding with writing, never two client calls.
            with self._client_lock:
                return call_with_retry(
                    fn, retries=self.max_retries, backoff=self.retry_backoff, on_retry=self._count_retry
                )
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Retries are spent: say it in vecembed's words (a database that cannot serve), keeping the cause.
            raise ProviderUnavailableError(
                f"Qdrant did not answer for collection {self.collection!r} after {self.max_retries} retries "
                f"({type(exc).__name__}: {exc}); check that the server is up and reachable"
            ) from exc

    def _exists(self) -> bool:
        return bool(self._call(lambda: self.client.collection_exists(self.collection)))

    def _inspect(self) -> CollectionState:
        collection = self._call(lambda: self.client.get_collection(self.collection))
        return inspect_collection(
            self.collection, collection, self.info, vector_name=self.vector_name, distance=self.distance
        )

    def _vectors_config(self) -> models.VectorParams | dict[str, models.VectorParams]:
        params = models.VectorParams(size=self.info.dimension, distance=self.distance or default_distance(self.info))
        return {self.vector_name: params} if self.vector_name else params

    def _raw_count(self) -> int:
        return int(self._call(lambda: self.client.count(self.collection, exact=True)).count)

    def _verify(self, *, create: bool) -> None:
        """Check (and with ``create`` make, or adopt) the collection; raise before anything is written."""
        info = self.info
        created = False
        if create and not self._exists():
            try:
                self._call(
                    lambda: self.client.create_collection(
                        self.collection,
                        vectors_config=self._vectors_config(),
                        metadata=collection_metadata(info, self.vector_name),
                    )
                )
                created = True
            except Exception:
                # Someone else may have created it in the meantime: then check theirs like any existing one.
                if not self._exists():
                    raise
        if not create and not self._exists():
            raise InvalidInputError(
                f"collection {self.collection!r} does not exist; ingest() (or ensure_collection()) creates it"
            )
        state = self._inspect()
        if state.problems:
            raise state.problems[0]
        if state.fingerprint is None and created:
            # Read back rather than trusted: servers before 1.16 accept metadata= and drop it, which would
            # leave every later ingest unable to tell which model wrote the collection.
            self._call(lambda: self.client.delete_collection(self.collection))
            raise ProviderUnavailableError(
                f"Qdrant did not keep the metadata of collection {self.collection!r}, where vecembed records "
                "the model; servers before 1.16 drop it — upgrade the server to Qdrant >= 1.16 "
                "(the empty collection was removed again)"
            )
        if state.fingerprint is None:
            points = self._raw_count()
            if points and not self.adopt:
                raise ModelMismatchError(
                    f"collection {self.collection!r} holds {points} points but records no vecembed fingerprint, so "
                    f"nothing says they were embedded with {info.name!r}; pass adopt=True if they were, or use "
                    "another collection",
                    expected=None,
                    got=info.fingerprint,
                )
            if not create:
                # A search writes nothing; the fingerprint is recorded by the first ingest.
                self._verified_size = state.size
                return
            self._call(
                lambda: self.client.update_collection(
                    self.collection, metadata=collection_metadata(info, self.vector_name)
                )
            )
        self._verified_size = state.size

    def ensure_collection(self) -> None:
        """Create the collection for the provider, or check that the existing one fits it.

        Raises :class:`~vecembed.errors.DimensionMismatchError` (vector size),
        :class:`~vecembed.errors.ModelMismatchError` (distance, recorded
        fingerprint, or unrecorded points without ``adopt=True``) or
        :class:`~vecembed.errors.InvalidInputError` (named/unnamed vector
        layout) — before anything is written.
        """
        self._verify(create=True)

    def _check_vectors(self, vectors: Embeddings, n: int, what: str) -> Embeddings:
        vectors = np.asarray(vectors, dtype=np.float32)
        expected = self._verified_size or self.info.dimension
        if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] != expected:
            raise DimensionMismatchError(
                f"the provider returned {what} vectors of shape {vectors.shape}, but collection "
                f"{self.collection!r} needs ({n}, {expected})",
                expected=expected,
                got=int(vectors.shape[-1]) if vectors.ndim else None,
            )
        return vectors

    # -- ingest ------------------------------------------------------------------------------------

    def _unchanged(self, docs: PreparedDocs) -> set[int]:
        """Documents whose point is already stored with exactly this payload (and so this vector)."""
        same: set[int] = set()
        for lo in range(0, len(docs.point_ids), _LOOKUP_CHUNK):
            wanted = {pid: lo + k for k, pid in enumerate(docs.point_ids[lo : lo + _LOOKUP_CHUNK])}
            stored = self._call(
                lambda wanted=wanted: self.client.retrieve(
                    self.collection, ids=list(wanted), with_payload=True, with_vectors=False
                )
            )
            for record in stored:
                i = wanted.get(str(record.id))
                if i is not None and record.payload == docs.payloads[i]:
                    same.add(i)
        return same

    def _upsert(self, docs: PreparedDocs, index: list[int], vectors: Embeddings) -> int:
        points = [
            models.PointStruct(
                id=docs.point_ids[i],
                vector={self.vector_name: row.tolist()} if self.vector_name else row.tolist(),
                payload=docs.payloads[i],
            )
            for i, row in zip(index, vectors, strict=True)
        ]
        # Retrying an upsert is safe: the ids are deterministic, so a repeat overwrites what a lost answer wrote.
        self._call(lambda: self.client.upsert(self.collection, points=points, wait=True))
        return len(points)

    def ingest(
        self,
        documents: Sequence[str],
        ids: Iterable[str | int] | None = None,
        metadata: Iterable[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
        skip_unchanged: bool = True,
    ) -> IngestReport:
        """Embed ``documents`` and upsert them, ``batch_size`` at a time; return an :class:`IngestReport`.

        Everything is validated first (texts, ids, metadata, lengths): bad input
        raises :class:`~vecembed.errors.InvalidInputError` naming the index, and
        nothing is written. ``ids`` are the caller's own (str or int); without
        them a document is addressed by its text. ``metadata`` is one JSON-able
        dict (or None) per document, stored in the payload beside the text and id.

        Re-running an ingest is safe: point ids are deterministic, and with
        ``skip_unchanged`` (default) documents already stored with the same text
        and metadata are not embedded again — so a re-run after a failure only
        does the rest. ``show_progress``: None shows a bar when stderr is a
        terminal; False never does.

        A failure that retries cannot absorb raises :class:`IngestError`, whose
        ``committed`` says how many points were written and stay written.
        """
        start = time.perf_counter()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
        docs = prepare_documents(documents, ids, metadata, text_key=self.text_key, id_key=self.id_key)
        self.ensure_collection()

        stats: EmbeddingStats | None = getattr(self.provider, "stats", None)
        truncated_before = stats.snapshot().truncated if isinstance(stats, EmbeddingStats) else None
        with self._retries_lock:
            retries_before = self._retries
        total = len(docs.texts)
        written = skipped = batches = 0
        pending: tuple[Future[int], int] | None = None
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecembed-qdrant-upsert")
        progress = IngestProgress(want_progress(show_progress), total, f"qdrant:{self.collection}")
        try:
            with progress:
                # Looked up once, before the pipeline starts: a lookup per batch would queue behind the
                # upsert in flight and stall the embedding that should overlap it.
                same = self._unchanged(docs) if skip_unchanged else set()
                skipped = len(same)
                progress.advance(skipped)
                # Batches of similar lengths pad little: one embed call sorts all its texts by length, and
                # ingesting batch by batch in input order would be slower than embedding alone for no reason.
                order = sorted((i for i in range(total) if i not in same), key=lambda i: len(docs.texts[i]))
                for lo in range(0, len(order), batch_size):
                    index = order[lo : lo + batch_size]
                    # This is the overlap: the previous batch is being upserted by the worker meanwhile.
                    raw = self.provider.embed_documents([docs.texts[i] for i in index])
                    vectors = self._check_vectors(raw, len(index), "document")
                    if pending is not None:
                        future, n = pending
                        pending = None  # consumed: a failure below must not wait on it again
                        written += future.result()
                        progress.advance(n)
                    pending = (executor.submit(self._upsert, docs, index, vectors), len(index))
                    batches += 1
                if pending is not None:
                    future, n = pending
                    pending = None
                    written += future.result()
                    progress.advance(n)
        except Exception as exc:
            if pending is not None:
                # Settle the batch in flight so that "committed" is exact, not a guess.
                with contextlib.suppress(Exception):
                    written += pending[0].result()
            committed = written + skipped
            raise IngestError(
                f"ingest into {self.collection!r} stopped: {committed} of {total} points are committed "
                f"({written} written by this call, {skipped} already stored); nothing is lost and nothing will "
                f"be duplicated — re-run the same ingest (with a working client) to finish the remaining "
                f"{total - committed}. Cause: {type(exc).__name__}: {exc}",
                committed=committed,
                total=total,
                collection=self.collection,
            ) from exc
        finally:
            executor.shutdown(wait=True)

        seconds = time.perf_counter() - start
        truncated = None
        if truncated_before is not None and isinstance(stats, EmbeddingStats):
            truncated = stats.snapshot().truncated - truncated_before
        with self._retries_lock:
            retries = self._retries - retries_before
        n_docs = total + docs.duplicates
        return IngestReport(
            collection=self.collection,
            documents=n_docs,
            points=written,
            skipped=skipped,
            duplicates=docs.duplicates,
            batches=batches,
            retries=retries,
            truncated=truncated,
            seconds=seconds,
            texts_per_second=n_docs / seconds if seconds > 0 else float("inf"),
        )

    # -- search ------------------------------------------------------------------------------------

    def _require_collection(self) -> None:
        if self._verified_size is None:
            self._verify(create=False)

    def _hit(self, point: models.ScoredPoint) -> Hit:
        payload = dict(point.payload or {})
        doc_id = payload.pop(self.id_key, None)
        text = payload.pop(self.text_key, "")
        return Hit(
            # A point some other code wrote has no caller id: its Qdrant id stands in.
            id=doc_id if isinstance(doc_id, str | int) else str(point.id),
            score=float(point.score),
            text=str(text),
            metadata=payload,
            point_id=str(point.id),
        )

    @staticmethod
    def _check_limit(limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive int, got {limit!r}")

    def search(
        self,
        query: str,
        limit: int = 10,
        query_filter: FilterLike = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """The ``limit`` documents nearest to ``query`` (embedded with the provider's query prompt), best first.

        ``query_filter``: a ``models.Filter`` or a dict (see :func:`to_filter`).
        ``score_threshold``: drop hits scoring below it.
        """
        if not isinstance(query, str):
            raise InvalidInputError(
                f"query must be one str, got {type(query).__name__}; use search_many() for several"
            )
        # one code path for one query and many: the batch request with a single query
        return self.search_many([query], limit, query_filter, score_threshold)[0]

    def search_many(
        self,
        queries: Sequence[str],
        limit: int = 10,
        query_filter: FilterLike = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search` for several queries: one embedding call and one batched Qdrant request."""
        texts = validate_texts(queries, what="queries")
        self._check_limit(limit)
        flt = to_filter(query_filter)
        self._require_collection()
        if not texts:
            return []
        vectors = self._check_vectors(self.provider.embed_queries(texts), len(texts), "query")
        requests = [
            models.QueryRequest(
                query=row.tolist(),
                using=self.vector_name,
                filter=flt,
                limit=limit,
                score_threshold=score_threshold,
                with_payload=True,
            )
            for row in vectors
        ]
        responses = self._call(lambda: self.client.query_batch_points(self.collection, requests=requests))
        return [[self._hit(p) for p in r.points] for r in responses]

    # -- maintenance -------------------------------------------------------------------------------

    def delete(self, ids: Sequence[str | int]) -> int:
        """Delete the documents with these caller ids (as given to :meth:`ingest`, or a :class:`Hit`'s ``id``).

        Returns how many ids were asked for; ids that are not stored are ignored.
        """
        doc_ids = validate_ids(ids)
        if not doc_ids:
            return 0
        self._require_collection()
        selector = models.PointIdsList(points=[point_id(d) for d in doc_ids])
        self._call(lambda: self.client.delete(self.collection, points_selector=selector, wait=True))
        return len(doc_ids)

    def count(self) -> int:
        """Points in the collection (exact); 0 when it does not exist yet."""
        if not self._exists():
            return 0
        return self._raw_count()

    def health_check(self) -> HealthReport:
        """One report: Qdrant reachable, the collection present and fitting the provider, the provider healthy.

        Never raises.
        """
        info = self.info

        def reachable() -> tuple[bool, str, dict[str, bool]]:
            collections = self.client.get_collections().collections
            return True, f"reachable, {len(collections)} collections", {"reachable": True}

        def collection() -> tuple[bool, str, dict[str, bool]]:
            if not self.client.collection_exists(self.collection):
                return False, f"collection {self.collection!r} does not exist (ingest() creates it)", {"exists": False}
            state = inspect_collection(
                self.collection,
                self.client.get_collection(self.collection),
                info,
                vector_name=self.vector_name,
                distance=self.distance,
            )
            checks = {
                "exists": True,
                "size": state.size == info.dimension,
                "distance": state.distance in accepted_distances(info, self.distance),
                "fingerprint": state.fingerprint == info.fingerprint,
            }
            if state.problems:
                return False, " | ".join(str(p) for p in state.problems), checks
            if state.fingerprint is None:
                return False, (
                    f"collection {self.collection!r} records no vecembed fingerprint; ingest() records it "
                    "(adopting the collection when it is empty or adopt=True)"
                ), checks
            points = self.client.count(self.collection, exact=True).count
            distance = state.distance.value if state.distance else "?"
            return True, (
                f"{self.collection!r}: {points} points, size {state.size}, {distance}, model {state.recorded_model}"
            ), checks

        def provider() -> tuple[bool, str, dict[str, bool]]:
            report = self.provider.health_check()
            return report.ok, report.detail, dict(report.checks)

        return HealthReport.combine(
            "qdrant-ingestor",
            [
                timed_check("qdrant", reachable),
                timed_check("collection", collection),
                timed_check("provider", provider),
            ],
        )

    def __repr__(self) -> str:
        return f"<QdrantIngestor {self.collection!r} {self.info.name} dim={self.info.dimension}>"
