"""Writing embedded rows: the ``ray.data.Datasink`` over the stores, on the engine's batch writer and accounting.

Write tasks (and, for a store in a local folder, the driver) write through
:class:`vecembed.ingest.BatchWriter` — the same lookup of stored hashes, batches, retries and
counts as :func:`vecembed.ingest.ingest`; with a sparse provider, the records written (new or
changed) get their sparse vectors from :func:`vecembed.ingest.embed_sparse` in the same write —
and the report is made by the engine's
:class:`~vecembed.ingest.IngestCounts`, with ``written`` counted from the store (Ray's writes
are at-least-once: a re-run task rewrites the same records).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ray.data import Datasink
from ray.data.block import BlockAccessor

from vecembed.collection import open_store
from vecembed.distributed.rows import (
    CHANGED,
    NEW,
    PENDING,
    REPEAT,
    TRUNCATED_COLUMN,
    UNCHANGED,
    classify,
    table_records,
)
from vecembed.distributed.specs import ProviderSpec, SparseSpec, StoreSpec, load_sparse_on_driver
from vecembed.errors import DimensionMismatchError, InvalidInputError, ModelMismatchError, ProviderUnavailableError
from vecembed.identity import CollectionIdentity, verify_identity
from vecembed.ingest import DEFAULT_BATCH_SIZE, BatchWriter, IngestCounts, embed_sparse
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record
from vecembed.retry import StoreCaller
from vecembed.sparse import SparseEmbeddingProvider, check_sparse_argument
from vecembed.store import IngestReport, VectorStore
from vecembed.types import Embeddings
from vecembed.vectors import check_embeddings

__all__ = ["BlockCounts", "VecembedDatasink", "check_collection", "summarise", "truncation_counts", "write_records"]


@dataclass
class BlockCounts:
    """What writes saw: rows read, repeats, stored unchanged, new, changed, write batches, retries, truncations.

    ``truncated``: texts the actors truncated to the model's ``max_tokens``; ``uncounted``: rows whose
    truncation nobody counted (then the report's ``truncated`` is None: n/a).
    """

    rows: int = 0
    repeats: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    batches: int = 0
    retries: int = 0
    truncated: int = 0
    uncounted: int = 0

    def __add__(self, other: BlockCounts) -> BlockCounts:
        return BlockCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def truncation_counts(table: Any) -> BlockCounts:
    """The truncation counts a block carries (:data:`TRUNCATED_COLUMN`); a block without it is uncounted."""
    if TRUNCATED_COLUMN not in table.column_names:
        return BlockCounts(uncounted=table.num_rows)
    values = [int(v) for v in table.column(TRUNCATED_COLUMN).to_pylist()]
    return BlockCounts(truncated=sum(v for v in values if v > 0), uncounted=sum(1 for v in values if v < 0))


def write_records(
    backend: VectorStore,
    call: StoreCaller,
    records: Sequence[Record],
    states: Sequence[int],
    vectors: Embeddings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_unchanged: bool = True,
    dimension: int | None = None,
    normalized: bool = False,
    sparse: SparseEmbeddingProvider | None = None,
) -> BlockCounts:
    """Upsert the NEW and CHANGED records (PENDING ones looked up first) through the engine's batch writer.

    The vectors of the records to write are checked first (:func:`~vecembed.vectors.check_embeddings`:
    ``dimension`` when given, finite, unit norm when ``normalized``): a bad one writes nothing of the block.
    ``sparse``: the records written get its vectors (:func:`~vecembed.ingest.embed_sparse`), written with
    the dense ones in the same write (the store must be a :class:`~vecembed.store.SparseStore`); records
    skipped as stored unchanged are not encoded.
    """
    writer = BatchWriter(backend, call, batch_size=batch_size, skip_unchanged=skip_unchanged)
    if len(vectors) != len(records):
        raise DimensionMismatchError(f"{len(records)} records but {len(vectors)} vectors in one block")
    stored = writer.stored([r.id for r, s in zip(records, states, strict=True) if s == PENDING])
    states = classify(records, states, stored)
    todo = [i for i, s in enumerate(states) if s in (NEW, CHANGED)]
    if todo:  # the other rows are placeholders (zeros) for records that are not written
        width = dimension if dimension is not None else int(vectors.shape[1]) if vectors.ndim == 2 else 0

        def row_name(i: int) -> str:
            return f"document {records[todo[i]].id!r}"

        outcome = "nothing of this block was written"
        checked = check_embeddings(vectors[todo], expected_rows=len(todo), dimension=width, normalized=normalized,
                                   where="the embedding column", outcome=outcome, row_name=row_name)
        sparse_vectors = None if sparse is None else embed_sparse(
            sparse, [records[i].text for i in todo], row_name=row_name, outcome=outcome)
        writer.write([records[i] for i in todo], checked, sparse_vectors)
    tally = writer.tally()
    return BlockCounts(rows=len(records), repeats=states.count(REPEAT), unchanged=states.count(UNCHANGED),
                       new=states.count(NEW), changed=states.count(CHANGED), batches=tally.batches,
                       retries=tally.retries)


def check_collection(backend: VectorStore, call: StoreCaller, identity: CollectionIdentity, normalized: bool) -> None:
    """The collection exists and records ``identity`` (a write task checks once per process, before writing).

    The check before a write, as :meth:`vecembed.collection.Store.claim` makes it: the sparse provider too
    (a collection written with one refuses a write without it, and the other way round).
    """
    state = call(backend.state)
    if state is None:
        raise ProviderUnavailableError(
            f"{backend.db} collection {backend.collection!r} at {backend.location} does not exist (deleted while "
            "the job ran?); nothing of this block was written"
        )
    verify_identity(backend.collection, identity, recorded=state.identity, stored_dimension=state.dimension,
                    stored_distance=state.distance, count=state.count, normalized=normalized,
                    stored_sparse=state.sparse_field, writing=True)
    if state.identity is None:
        raise ModelMismatchError(
            f"{backend.db} collection {backend.collection!r} records no vecembed identity; the job records it "
            "before writing (VecembedDatasink.prepare) — was it replaced meanwhile?"
        )


#: Per worker process: the stores its write tasks opened (one connection per process, not per task).
_WORKER_STORES: dict[tuple[str, ...], tuple[VectorStore, StoreCaller]] = {}
#: Per worker process: the sparse providers its write tasks loaded (once per process, not per task).
_WORKER_SPARSE: dict[tuple[str, ...], SparseEmbeddingProvider] = {}


def _options_key(options: Mapping[str, Any]) -> str:
    return json.dumps(dict(options), sort_keys=True, default=str)


def _worker_store(spec: StoreSpec, identity: CollectionIdentity, normalized: bool) -> tuple[VectorStore, StoreCaller]:
    key = (spec.db, spec.collection, spec.url, _options_key(spec.options), identity.fingerprint,
           identity.sparse_fingerprint)
    opened = _WORKER_STORES.get(key)
    if opened is None:
        opened = spec.open()
        check_collection(*opened, identity, normalized)
        _WORKER_STORES[key] = opened
    return opened


def _worker_sparse(spec: SparseSpec) -> SparseEmbeddingProvider:
    """The sparse provider of ``spec`` in this worker, loaded (and its fingerprint checked) once per process."""
    key = (spec.name, _options_key(spec.options), spec.fingerprint or "")
    provider = _WORKER_SPARSE.get(key)
    if provider is None:
        provider = _WORKER_SPARSE[key] = spec.load()
    return provider


def summarise(db: str, collection: str, counts: BlockCounts, before: int, after: int, seconds: float) -> IngestReport:
    """The job's report, in the engine's accounting, with ``written`` counted from the store.

    Ray may run a write task twice, so the tasks' own counts of new records may add up to more than were
    written: ``written`` is the store's count after minus before, plus the records whose content changed.
    ``truncated`` is the actors' total, None (n/a) when some rows were not counted.
    """
    written = max(0, after - before) + counts.changed
    truncated = None if counts.uncounted else counts.truncated
    return IngestCounts(documents=counts.rows, written=written, skipped=max(0, counts.rows - counts.repeats - written),
                        duplicates=counts.repeats, batches=counts.batches, retries=counts.retries,
                        truncated=truncated).report(db, collection, seconds)


class VecembedDatasink(Datasink[BlockCounts]):
    """A ``ray.data.Datasink`` writing embedded rows into a vecembed store on a server: ``ds.write_datasink(sink)``.

    ``db``: a registered store ("chroma", "qdrant", "pgvector"); ``url``: its server (write tasks run on any
    node, so a local ``path=`` folder is refused: use :func:`ingest_dataset`, which writes a folder from the
    driver). The identity (fingerprint, dimension) comes from ``provider`` or from loading
    ``backend``/``model`` on the driver once. ``sparse``: a sparse provider's name (loaded with
    ``sparse_options``) or a registered provider, whose vectors are written beside the dense ones and recorded
    in the collection's identity as ``open_store(..., sparse=...)`` records them; the write tasks load it by
    name (:class:`~vecembed.distributed.specs.SparseSpec`, its fingerprint checked) and encode only the
    records they write. The rows need ``embedding_column`` plus ``id_column``,
    ``text_column`` and metadata (``metadata_columns``, or a ``metadata`` dict column); each block is
    validated with the engine's rules, documents stored unchanged are skipped, the rest upserted with
    deterministic ids (a retried task rewrites the same records). ``sink.report`` holds the
    :class:`~vecembed.store.IngestReport` after the write.
    """

    def __init__(
        self,
        db: str,
        collection: str,
        *,
        url: str | None = None,
        path: str | None = None,
        provider: EmbeddingProvider | None = None,
        backend: str = "onnx",
        model: str | None = None,
        provider_options: Mapping[str, Any] | None = None,
        id_column: str = "id",
        text_column: str = "text",
        embedding_column: str = "embedding",
        metadata_columns: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        skip_unchanged: bool = True,
        adopt: bool = False,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        store_options: Mapping[str, Any] | None = None,
        sparse: str | SparseEmbeddingProvider | None = None,
        sparse_options: Mapping[str, Any] | None = None,
    ) -> None:
        if path is not None:
            raise InvalidInputError(
                f"VecembedDatasink writes from Ray's workers, on any node, and a local folder ({path}) must be "
                "opened by one process only: give a server url=, or call ingest_dataset(..., path=...), which "
                "writes a folder from the driver"
            )
        if not url:
            raise InvalidInputError("VecembedDatasink needs url= (a database server the workers can reach)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
        self.store = StoreSpec(db=db, collection=collection, url=url, options=dict(store_options or {}),
                               max_retries=max_retries, retry_backoff=retry_backoff)
        self.provider_spec = ProviderSpec(backend=backend, model=model, options=dict(provider_options or {}))
        self.embedding_column = embedding_column
        self.id_column = id_column
        self.text_column = text_column
        self.metadata_columns = None if metadata_columns is None else list(metadata_columns)
        self.batch_size = batch_size
        self.skip_unchanged = skip_unchanged
        self.adopt = adopt
        self.report: IngestReport | None = None
        self.identity: CollectionIdentity | None = None
        self.normalized = True
        self.nested = True
        self.truncated: int | None = None
        self._provider = provider  # the driver's only: never pickled to a task
        self._sparse = check_sparse_argument(sparse)  # the driver's too: the tasks get sparse_spec
        self._sparse_options = dict(sparse_options or {})
        #: What the write tasks load the sparse provider from (set by :meth:`prepare`; None: dense only).
        self.sparse_spec: SparseSpec | None = None
        self._count_before: int | None = None
        self._started = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_provider"] = None
        state["_sparse"] = None
        return state

    def get_name(self) -> str:
        return f"Vecembed({self.store.db})"

    @property
    def min_rows_per_write(self) -> int:
        return self.batch_size

    # -- on the driver ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check or create the collection's identity and note its count: once, before any block is written.

        :meth:`on_write_start` calls it; :func:`ingest_dataset` calls it before the job starts (its actors
        look up stored hashes). Raises :class:`~vecembed.errors.ModelMismatchError` /
        :class:`~vecembed.errors.DimensionMismatchError` for a collection of another model (or sparse provider),
        :class:`~vecembed.errors.UnsupportedError` for ``sparse=`` on a store that keeps no sparse vectors.
        """
        if self._count_before is not None:
            return
        self._started = time.perf_counter()
        sparse = load_sparse_on_driver(self.store.db, self._sparse, self._sparse_options)
        provider = self._provider
        own = provider is None
        try:
            if provider is None:
                provider = self.provider_spec.load()
            with open_store(self.store.db, self.store.collection, provider, url=self.store.url, adopt=self.adopt,
                            max_retries=self.store.max_retries, retry_backoff=self.store.retry_backoff,
                            sparse=None if sparse is None else sparse[1], **self.store.options) as store:
                store.claim()
                self.identity = store.identity
                self.normalized = provider.info.normalized
                self.nested = store.backend.nested_metadata
                self.sparse_spec = None if sparse is None else sparse[0]
                self._count_before = store.count()
        finally:
            if own and provider is not None:
                provider.close()
            if sparse is not None and sparse[2]:
                sparse[1].close()

    def on_write_start(self, schema: Any = None) -> None:
        self.prepare()

    def on_write_complete(self, write_result: Any) -> None:
        counts = sum(write_result.write_returns, BlockCounts())
        backend, call = self.store.open()
        try:
            after = int(call(backend.count))
        finally:
            backend.close()
        self.truncated = None if counts.uncounted else counts.truncated
        self.report = summarise(self.store.db, self.store.collection, counts, self._count_before or 0, after,
                                time.perf_counter() - self._started)

    # -- in the write tasks -------------------------------------------------------------------------

    def write(self, blocks: Iterable[Any], ctx: Any) -> BlockCounts:
        if self.identity is None:
            raise ProviderUnavailableError("VecembedDatasink.prepare() did not run on the driver")
        backend, call = _worker_store(self.store, self.identity, self.normalized)
        sparse = None if self.sparse_spec is None else _worker_sparse(self.sparse_spec)
        counts = BlockCounts()
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            records, states, vectors = table_records(
                table, embedding_column=self.embedding_column, id_column=self.id_column,
                text_column=self.text_column, metadata_columns=self.metadata_columns, nested=self.nested)
            counts += write_records(backend, call, records, states, vectors, batch_size=self.batch_size,
                                    skip_unchanged=self.skip_unchanged, dimension=self.identity.dimension,
                                    normalized=self.normalized, sparse=sparse)
            counts += truncation_counts(table)
        return counts
