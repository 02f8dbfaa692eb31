"""Distributed embedding and ingest on Ray Data (extra ``vecembed[ray]``; imported only when used).

::

    import ray, vecembed.distributed as vd

    ds = ray.data.read_json("docs.jsonl")                        # columns "id", "text", "metadata"
    vectors = vd.embed_dataset(ds, model="sentence-transformers/all-MiniLM-L6-v2", concurrency=4)
    report = vd.ingest_dataset(ds, db="chroma", collection="docs", url="http://10.0.0.5:8000", concurrency=4)

Three pieces, each on the single-process building blocks (nothing is written a second way):

* :func:`embed_dataset` — a ``map_batches`` stage whose callable class (:class:`BatchEmbedder`) loads the
  provider once per actor, never per batch, and embeds each batch sorted by length.
* :class:`VecembedDatasink` — a ``ray.data.Datasink`` over the vecembed stores: on the driver it checks or
  creates the collection's identity once before any block is written (:meth:`VecembedDatasink.prepare`);
  its write tasks validate rows with :func:`vecembed.ingest.prepare_records` (the engine's ids and content
  hashes) and upsert through the store's :class:`~vecembed.retry.StoreCaller` (retries); at completion
  it leaves an :class:`~vecembed.store.IngestReport` in ``sink.report``.
* :func:`ingest_dataset` — the one call: validate + look up + embed on actors, then write. Server stores
  (a ``url=``: Chroma server, Qdrant server, PostgreSQL) are written in parallel from the workers; an
  embedded store that one process must own (a ``path=`` folder: Qdrant local, Chroma persistent, Qdrant
  Edge) is written from the driver by streaming the embedded dataset (``iter_batches``) — a local folder
  is never opened by two processes.

Ray's writes are at-least-once: a task whose worker dies is run again. Correctness rests on deterministic
ids and upserts (a rewritten record is the same record), and the report's ``written`` counts from the store
(its count after the job minus before, plus the records whose stored content changed), not from summing
task results. Ids must be unique across the dataset: a repeat inside one batch is collapsed (or refused when
its content differs) as in the single-process engine, but a repeat in another batch is not seen — the last
write wins.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vecembed._deps import require
from vecembed.collection import Store, open_store
from vecembed.errors import (
    DimensionMismatchError,
    IngestError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    ProviderUnavailableError,
    VecembedError,
)
from vecembed.identity import CollectionIdentity, verify_identity
from vecembed.ingest import DEFAULT_BATCH_SIZE
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record, check_text, normalize_id, prepare_records, text_id
from vecembed.registry import load_provider
from vecembed.retry import StoreCaller
from vecembed.store import IngestReport, VectorStore, store_factory
from vecembed.types import Embeddings

_PURPOSE = "distributed embedding and ingest (vecembed.distributed)"
require("ray", "ray", _PURPOSE)  # a missing ray names the extra to install
try:
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Datasink
    from ray.data.block import BlockAccessor
except ImportError as exc:  # pragma: no cover - ray without its "data" extra (pyarrow, pandas)
    if exc.name not in ("pyarrow", "pandas"):
        raise
    raise MissingDependencyError(exc.name, "ray", _PURPOSE) from None

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "DEFAULT_DATASET_BATCH_SIZE",
    "BatchEmbedder",
    "BlockCounts",
    "ProviderSpec",
    "RecordEmbedder",
    "StoreSpec",
    "VecembedDatasink",
    "embed_dataset",
    "embed_sorted",
    "ingest_dataset",
    "prepare_rows",
    "read_dataset",
    "write_records",
]

#: Rows per ``map_batches`` call: large enough that one provider call batches well and a store write costs
#: little per row, small enough that a retried task redoes little work.
DEFAULT_DATASET_BATCH_SIZE = 256

#: Columns of a prepared (validated, looked-up, embedded) dataset, as :func:`ingest_dataset` passes it on.
ID_COLUMN = "id"
TEXT_COLUMN = "text"
METADATA_COLUMN = "vecembed_metadata"  # the validated metadata as canonical JSON text
HASH_COLUMN = "vecembed_hash"
STATE_COLUMN = "vecembed_state"

#: What a prepared row is: not yet looked up / new / stored with other content / stored unchanged / a repeat.
PENDING, NEW, CHANGED, UNCHANGED, REPEAT = 0, 1, 2, 3, 4
_EMBED = (PENDING, NEW, CHANGED)

#: Environment forwarded to the actors (a ``ray start`` node does not inherit the driver's): the model cache,
#: the offline switches.
FORWARDED_ENV = ("VECEMBED_CACHE", "VECEMBED_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME",
                 "HF_HUB_CACHE")

#: Backends with a ``threads=`` option: ONNX Runtime ignores OMP_NUM_THREADS, so an actor passes its CPUs.
_THREADED_BACKENDS = ("onnx", "torch")


# -- what travels to the workers: descriptions, not objects ----------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """How a worker builds its provider: ``load_provider(backend, model=model, **options)``.

    A description travels to each actor (a loaded model does not pickle); the actor checks that what it
    loaded has ``fingerprint`` (the driver's), so a node with another copy of the model fails loudly.
    """

    backend: str = "onnx"
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    def load(self) -> EmbeddingProvider:
        options = dict(self.options)
        if self.model is not None:
            options["model"] = self.model
        provider = load_provider(self.backend, **options)
        if self.fingerprint is not None and provider.info.fingerprint != self.fingerprint:
            got = provider.info.fingerprint
            provider.close()
            raise ModelMismatchError(
                f"this worker loaded {self.backend} model {self.model!r} with fingerprint {got}, the driver "
                f"{self.fingerprint}: install the same model (and version) on every node",
                expected=self.fingerprint,
                got=got,
            )
        return provider

    def with_threads(self, cpus: float) -> ProviderSpec:
        """This spec with ``threads=`` set from an actor's CPUs, for backends that take it (unless given)."""
        if self.backend not in _THREADED_BACKENDS or "threads" in self.options:
            return self
        return ProviderSpec(backend=self.backend, model=self.model, fingerprint=self.fingerprint,
                            options={**self.options, "threads": max(1, int(cpus))})


@dataclass(frozen=True, kw_only=True)
class StoreSpec:
    """How a worker opens a server store: the registered ``db``, the ``collection`` and the server ``url``."""

    db: str
    collection: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_backoff: float = 0.5

    def open(self, provider: EmbeddingProvider | None = None) -> tuple[VectorStore, StoreCaller]:
        """A database-only store (no identity policy) and its caller; the collection is checked separately."""
        backend = store_factory(self.db)(
            self.collection, provider=cast(Any, provider), path=None, url=self.url, client=None, **self.options
        )
        return backend, StoreCaller(backend, max_retries=self.max_retries, retry_backoff=self.retry_backoff)


def _forwarded_env() -> dict[str, str]:
    return {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}


def _apply_env(env: Mapping[str, str] | None) -> None:
    for name, value in (env or {}).items():
        os.environ.setdefault(name, value)


# -- rows -> records: the engine's validation, ids and hashes ---------------------------------------


def _describe(row: Mapping[str, Any], id_column: str, text_column: str) -> str:
    doc_id = row.get(id_column)
    if doc_id is not None:
        return f"document id={doc_id!r}"
    text = row.get(text_column)
    if isinstance(text, str):
        return f"document {text[:60] + ('…' if len(text) > 60 else '')!r} (no id)"
    return f"a document without an id (text {text!r})"


def prepare_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    id_column: str = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    nested: bool = True,
) -> tuple[list[Record], list[int]]:
    """Validate one batch of rows into records (:func:`vecembed.ingest.prepare_records`), with each row's state.

    A row is a document: its ``id_column`` (missing or None: derived from the text), ``text_column``, and
    metadata — the ``metadata_columns`` (None values dropped) or, when that is None, a ``metadata`` column
    holding a dict. States are :data:`PENDING` (to look up) or :data:`REPEAT` (the same id and content as an
    earlier row of the batch). A bad row raises :class:`~vecembed.errors.InvalidInputError` naming it by
    its id (or its text when it has none).
    """
    records: list[Record] = []
    states: list[int] = []
    seen: dict[str, tuple[int, str]] = {}
    first: dict[str, Record] = {}
    for index, row in enumerate(rows):
        if metadata_columns is None:
            metadata = row.get("metadata")
        else:
            metadata = {column: row.get(column) for column in metadata_columns}
        doc = {"id": row.get(id_column), "text": row.get(text_column), "metadata": metadata}
        try:
            prepared, repeats = prepare_records([doc], start=index, nested=nested, seen=seen)
        except InvalidInputError as exc:

            def name(match: re.Match[str]) -> str:
                return _describe(rows[int(match.group(1))], id_column, text_column)

            raise InvalidInputError(re.sub(r"documents\[(\d+)\]", name, str(exc))) from None
        if repeats:
            records.append(first[_doc_id(doc)])
            states.append(REPEAT)
        else:
            records.append(prepared[0])
            first[prepared[0].id] = prepared[0]
            states.append(PENDING)
    return records, states


def _doc_id(doc: Mapping[str, Any]) -> str:
    """The id of a validated document: its own, normalised, or the one its text derives."""
    return text_id(doc["text"]) if doc["id"] is None else normalize_id(doc["id"], "id")


def classify(records: Sequence[Record], states: Sequence[int], stored: Mapping[str, str]) -> list[int]:
    """Resolve :data:`PENDING` states against ``stored`` (``{id: content_hash}``): NEW, CHANGED or UNCHANGED."""
    out = list(states)
    for i, (record, state) in enumerate(zip(records, states, strict=True)):
        if state == PENDING:
            known = stored.get(record.id)
            out[i] = NEW if known is None else UNCHANGED if known == record.content_hash else CHANGED
    return out


def embed_sorted(provider: EmbeddingProvider, texts: Sequence[str]) -> Embeddings:
    """``provider.embed_documents(texts)`` in input order, computed sorted by length (batches pad little)."""
    dimension = provider.info.dimension
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.asarray(provider.embed_documents([texts[i] for i in order]), dtype=np.float32)
    if vectors.shape != (len(texts), dimension):
        raise DimensionMismatchError(
            f"the provider returned vectors of shape {vectors.shape} for {len(texts)} texts, expected "
            f"({len(texts)}, {dimension})",
            expected=dimension,
            got=int(vectors.shape[-1]) if vectors.ndim else None,
        )
    out = np.empty_like(vectors)
    out[order] = vectors
    return out


# -- the actors ----------------------------------------------------------------------------------


class BatchEmbedder:
    """The ``map_batches`` callable class of :func:`embed_dataset`: one provider per actor, every batch on it.

    Ray builds it once per actor (``fn_constructor_kwargs``), so the model loads once per actor, not per
    batch. ``__call__`` adds ``output_column`` (float32 ``(n, dim)``) to a numpy batch.
    """

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        env: Mapping[str, str] | None = None,
    ) -> None:
        _apply_env(env)
        self.provider = spec.load()
        self.text_column = text_column
        self.output_column = output_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise InvalidInputError(
                f"the dataset has no column {self.text_column!r} (columns: {', '.join(batch)}); "
                "pass text_column="
            )
        texts = [str(t) if isinstance(t, np.str_) else t for t in batch[self.text_column]]
        for i, text in enumerate(texts):
            check_text(text, f"the row with text {text!r} (row {i} of its batch)")
        batch[self.output_column] = embed_sorted(self.provider, texts)
        return batch


class RecordEmbedder(BatchEmbedder):
    """The ``map_batches`` class of :func:`ingest_dataset`: validate, look up what is stored, embed the rest.

    Rows become prepared records (:func:`prepare_rows`); with ``store`` (a server) the stored hashes of the
    batch are looked up first, so documents stored unchanged are not embedded again (a re-run embeds
    nothing). Returns the prepared columns (id, text, metadata JSON, hash, state) and the vectors (zero rows
    for what is not written).
    """

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        id_column: str = "id",
        text_column: str = "text",
        output_column: str = "embedding",
        metadata_columns: Sequence[str] | None = None,
        nested: bool = True,
        store: StoreSpec | None = None,
        skip_unchanged: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(spec, text_column=text_column, output_column=output_column, env=env)
        self.id_column = id_column
        self.metadata_columns = None if metadata_columns is None else list(metadata_columns)
        self.nested = nested
        self.skip_unchanged = skip_unchanged
        self.store = None if store is None else store.open(self.provider)

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        rows = BlockAccessor.for_block(batch).to_arrow().to_pylist()
        records, states = prepare_rows(rows, id_column=self.id_column, text_column=self.text_column,
                                       metadata_columns=self.metadata_columns, nested=self.nested)
        if self.store is not None:
            backend, call = self.store
            pending = [r.id for r, s in zip(records, states, strict=True) if s == PENDING]
            stored = call(functools.partial(backend.stored_hashes, pending)) if self.skip_unchanged and pending else {}
            states = classify(records, states, stored)
        todo = [i for i, s in enumerate(states) if s in _EMBED]
        vectors = np.zeros((len(records), self.provider.info.dimension), dtype=np.float32)
        if todo:
            vectors[todo] = embed_sorted(self.provider, [records[i].text for i in todo])
        return record_columns(records, states, vectors, self.output_column)


def record_columns(records: Sequence[Record], states: Sequence[int], vectors: Embeddings,
                   output_column: str = "embedding") -> dict[str, np.ndarray]:
    """Prepared records as the columns :class:`VecembedDatasink` reads back without validating again."""
    def strings(values: Iterable[str]) -> np.ndarray:
        return np.array(list(values), dtype=object)

    return {
        ID_COLUMN: strings(r.id for r in records),
        TEXT_COLUMN: strings(r.text for r in records),
        METADATA_COLUMN: strings(json.dumps(dict(r.metadata), sort_keys=True, ensure_ascii=False) for r in records),
        HASH_COLUMN: strings(r.content_hash for r in records),
        STATE_COLUMN: np.asarray(states, dtype=np.int8),
        output_column: vectors,
    }


# -- writing: the sink's work, also run by the driver for an embedded store --------------------------


@dataclass
class BlockCounts:
    """What writes saw: rows read, repeats, stored unchanged, new, changed, write batches, retries."""

    rows: int = 0
    repeats: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    batches: int = 0
    retries: int = 0

    def __add__(self, other: BlockCounts) -> BlockCounts:
        return BlockCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def table_records(
    table: Any,  # a pyarrow.Table
    *,
    embedding_column: str = "embedding",
    id_column: str = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    nested: bool = True,
) -> tuple[list[Record], list[int], Embeddings]:
    """A block's records, states and vectors: read back when prepared by :func:`ingest_dataset`, else validated."""
    if embedding_column not in table.column_names:
        raise InvalidInputError(
            f"the dataset has no column {embedding_column!r} (columns: {', '.join(table.column_names)}); "
            "embed it first with embed_dataset(), or use ingest_dataset()"
        )
    raw: Any = BlockAccessor.for_block(table).to_numpy(embedding_column)
    if raw.dtype == object:  # a list column (vectors computed elsewhere) rather than Ray's tensor column
        raw = np.stack([np.asarray(v, dtype=np.float32) for v in raw]) if len(raw) else np.zeros((0, 0))
    vectors = np.ascontiguousarray(raw, dtype=np.float32)
    if STATE_COLUMN in table.column_names:
        ids, texts, metas, hashes = (table.column(c).to_pylist()
                                     for c in (ID_COLUMN, TEXT_COLUMN, METADATA_COLUMN, HASH_COLUMN))
        records = [Record(id=i, text=t, metadata=json.loads(m), content_hash=h)
                   for i, t, m, h in zip(ids, texts, metas, hashes, strict=True)]
        return records, [int(s) for s in table.column(STATE_COLUMN).to_pylist()], vectors
    rows = table.drop_columns([embedding_column]).to_pylist()
    records, states = prepare_rows(rows, id_column=id_column, text_column=text_column,
                                   metadata_columns=metadata_columns, nested=nested)
    return records, states, vectors


def write_records(
    backend: VectorStore,
    call: StoreCaller,
    records: Sequence[Record],
    states: Sequence[int],
    vectors: Embeddings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_unchanged: bool = True,
) -> BlockCounts:
    """Upsert the NEW and CHANGED records (PENDING ones looked up first) in batches; count what happened."""
    if vectors.shape[0] != len(records):
        raise DimensionMismatchError(f"{len(records)} records but {vectors.shape[0]} vectors in one block")
    retries = call.retries
    pending = [r.id for r, s in zip(records, states, strict=True) if s == PENDING]
    stored = call(functools.partial(backend.stored_hashes, pending)) if pending and skip_unchanged else {}
    states = classify(records, states, stored)
    todo = [i for i, s in enumerate(states) if s in (NEW, CHANGED)]
    counts = BlockCounts(rows=len(records), repeats=states.count(REPEAT), unchanged=states.count(UNCHANGED),
                         new=states.count(NEW), changed=states.count(CHANGED))
    for lo in range(0, len(todo), batch_size):
        part = todo[lo : lo + batch_size]
        call(functools.partial(backend.write, [records[i] for i in part], vectors[part]))
        counts.batches += 1
    counts.retries = call.retries - retries
    return counts


def check_collection(backend: VectorStore, call: StoreCaller, identity: CollectionIdentity, normalized: bool) -> None:
    """The collection exists and records ``identity`` (a write task checks once per process, before writing)."""
    state = call(backend.state)
    if state is None:
        raise ProviderUnavailableError(
            f"{backend.db} collection {backend.collection!r} at {backend.location} does not exist (deleted while "
            "the job ran?); nothing of this block was written"
        )
    verify_identity(backend.collection, identity, recorded=state.identity, stored_dimension=state.dimension,
                    stored_distance=state.distance, count=state.count, normalized=normalized)
    if state.identity is None:
        raise ModelMismatchError(
            f"{backend.db} collection {backend.collection!r} records no vecembed identity; the job records it "
            "before writing (VecembedDatasink.prepare) — was it replaced meanwhile?"
        )


#: Per worker process: the stores its write tasks opened (one connection per process, not per task).
_WORKER_STORES: dict[tuple[str, ...], tuple[VectorStore, StoreCaller]] = {}


def _worker_store(spec: StoreSpec, identity: CollectionIdentity, normalized: bool) -> tuple[VectorStore, StoreCaller]:
    key = (spec.db, spec.collection, spec.url, json.dumps(dict(spec.options), sort_keys=True, default=str),
           identity.fingerprint)
    opened = _WORKER_STORES.get(key)
    if opened is None:
        opened = spec.open()
        check_collection(*opened, identity, normalized)
        _WORKER_STORES[key] = opened
    return opened


def _summarise(db: str, collection: str, counts: BlockCounts, before: int, after: int, seconds: float,
               truncated: int | None = None) -> IngestReport:
    written = max(0, after - before) + counts.changed
    return IngestReport(
        db=db,
        collection=collection,
        documents=counts.rows,
        written=written,
        skipped=max(0, counts.rows - counts.repeats - written),
        duplicates=counts.repeats,
        batches=counts.batches,
        retries=counts.retries,
        truncated=truncated,
        seconds=seconds,
    )


class VecembedDatasink(Datasink[BlockCounts]):
    """A ``ray.data.Datasink`` writing embedded rows into a vecembed store on a server: ``ds.write_datasink(sink)``.

    ``db``: a registered store ("chroma", "qdrant", "pgvector"); ``url``: its server (write tasks run on any
    node, so a local ``path=`` folder is refused: use :func:`ingest_dataset`, which writes a folder from the
    driver). The identity (fingerprint, dimension) comes from ``provider`` or from loading
    ``backend``/``model`` on the driver once. The rows need ``embedding_column`` plus ``id_column``,
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
        self._count_before: int | None = None
        self._started = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_provider"] = None
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
        :class:`~vecembed.errors.DimensionMismatchError` for a collection of another model.
        """
        if self._count_before is not None:
            return
        self._started = time.perf_counter()
        provider = self._provider
        own = provider is None
        if provider is None:
            provider = self.provider_spec.load()
        try:
            with open_store(self.store.db, self.store.collection, provider, url=self.store.url, adopt=self.adopt,
                            max_retries=self.store.max_retries, retry_backoff=self.store.retry_backoff,
                            **self.store.options) as store:
                store.claim()
                self.identity = store.identity
                self.normalized = provider.info.normalized
                self.nested = bool(getattr(store.backend, "nested_metadata", True))
                self._count_before = store.count()
        finally:
            if own:
                provider.close()

    def on_write_start(self, schema: Any = None) -> None:
        self.prepare()

    def on_write_complete(self, write_result: Any) -> None:
        counts = sum(write_result.write_returns, BlockCounts())
        backend, call = self.store.open()
        try:
            after = int(call(backend.count))
        finally:
            backend.close()
        self.report = _summarise(self.store.db, self.store.collection, counts, self._count_before or 0, after,
                                 time.perf_counter() - self._started, self.truncated)

    # -- in the write tasks -------------------------------------------------------------------------

    def write(self, blocks: Iterable[Any], ctx: Any) -> BlockCounts:
        if self.identity is None:
            raise ProviderUnavailableError("VecembedDatasink.prepare() did not run on the driver")
        backend, call = _worker_store(self.store, self.identity, self.normalized)
        counts = BlockCounts()
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            records, states, vectors = table_records(
                table, embedding_column=self.embedding_column, id_column=self.id_column,
                text_column=self.text_column, metadata_columns=self.metadata_columns, nested=self.nested)
            counts += write_records(backend, call, records, states, vectors, batch_size=self.batch_size,
                                    skip_unchanged=self.skip_unchanged)
        return counts


# -- the public calls ----------------------------------------------------------------------------


def _actor_pool(concurrency: int | tuple[int, int] | None, num_cpus: float) -> ActorPoolStrategy:
    if concurrency is None:
        cpus = (ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
                if ray.is_initialized() else os.cpu_count() or 1)
        return ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus // max(num_cpus, 1e-9))))
    if isinstance(concurrency, tuple):
        low, high = concurrency
        return ActorPoolStrategy(min_size=low, max_size=high)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInputError(f"concurrency must be a positive int or a (min, max) pair, got {concurrency!r}")
    return ActorPoolStrategy(size=concurrency)


def _load_on_driver(
    backend: str, model: str | None, options: Mapping[str, Any] | None
) -> tuple[ProviderSpec, EmbeddingProvider]:
    """Load the provider once on the driver: it exports the ONNX graph before the actors could race to, and
    gives the fingerprint each actor must match. Returns the actors' spec and the driver's provider."""
    provider = ProviderSpec(backend=backend, model=model, options=dict(options or {})).load()
    return ProviderSpec(backend=backend, model=model, options=dict(options or {}),
                        fingerprint=provider.info.fingerprint), provider


def embed_dataset(
    ds: Dataset,
    *,
    backend: str = "onnx",
    model: str | None = None,
    text_column: str = "text",
    output_column: str = "embedding",
    batch_size: int = DEFAULT_DATASET_BATCH_SIZE,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float = 1,
    provider_options: Mapping[str, Any] | None = None,
) -> Dataset:
    """``ds`` with ``output_column`` added: float32 vectors of ``text_column`` by ``load_provider(backend, ...)``.

    A ``map_batches`` stage on an actor pool (``concurrency`` actors, or a ``(min, max)`` pair; default up to
    the cluster's CPUs / ``num_cpus``), each actor holding one provider with ``num_cpus`` threads, loaded
    once. The provider is loaded once on the driver first: it exports the ONNX graph before the actors start
    and gives the fingerprint every actor must match. Lazy, like every Ray Data transform.
    """
    spec, provider = _load_on_driver(backend, model, provider_options)
    provider.close()
    spec = spec.with_threads(num_cpus)
    env = _forwarded_env()
    return ds.map_batches(
        BatchEmbedder,
        batch_size=batch_size,
        batch_format="numpy",
        compute=_actor_pool(concurrency, num_cpus),
        num_cpus=num_cpus,
        fn_constructor_kwargs={"spec": spec, "text_column": text_column, "output_column": output_column,
                               "env": env},
    )


def job_cause(exc: BaseException) -> tuple[str, str]:
    """The error behind a failed Ray job, as (class name, message).

    Ray re-raises a task's exception on the driver as ``RayTaskError(UserCodeException)`` whose chain no
    longer holds the original; its text ends with the original's traceback, so the last line naming a
    vecembed error (``vecembed.errors.InvalidInputError: document id=17: ...``) is the cause.
    """
    for current in (exc, exc.__cause__):
        if isinstance(current, VecembedError) and type(current).__module__.startswith("vecembed"):
            return type(current).__name__, str(current)
    names = "|".join(sorted(_vecembed_error_names(), key=len, reverse=True))
    found = re.findall(rf"^(?:[\w.]+\.)?({names}): (.*)$", str(exc), flags=re.MULTILINE)
    if found:
        name, message = found[-1]
        return str(name), str(message)
    return type(exc).__name__, str(exc)


def _vecembed_error_names() -> list[str]:
    from vecembed import errors

    return [name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, VecembedError)]


def ingest_dataset(
    ds: Dataset,
    *,
    db: str,
    collection: str,
    url: str | None = None,
    path: str | None = None,
    backend: str = "onnx",
    model: str | None = None,
    provider_options: Mapping[str, Any] | None = None,
    id_column: str = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_DATASET_BATCH_SIZE,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float = 1,
    write_num_cpus: float = 0,
    write_concurrency: int | None = 4,
    skip_unchanged: bool = True,
    adopt: bool = False,
    max_retries: int = 3,
    retry_backoff: float = 0.5,
    store_options: Mapping[str, Any] | None = None,
) -> IngestReport:
    """Embed the documents of ``ds`` on Ray and write them into ``collection`` of ``db``; return the report.

    Rows: ``id_column`` (missing or None: derived from the text, as the single-process engine does),
    ``text_column``, metadata from ``metadata_columns`` (or a ``metadata`` dict column). The actors validate
    each batch with the engine's rules, look up what a server store already holds (unchanged documents are
    not embedded again) and embed the rest; then:

    * ``url=`` (a server): up to ``write_concurrency`` write tasks upsert in parallel
      (:class:`VecembedDatasink`). They take ``write_num_cpus`` (default 0: a write mostly waits on the
      server, and a CPU slot would make it wait for the actors, which may hold every CPU, and pile the
      embedded blocks up in the object store meanwhile);
    * ``path=`` (an embedded database in a folder): the driver streams the embedded dataset
      (``iter_batches``) and is the only process that opens the folder.

    The collection's identity is checked, or the collection created, on the driver before anything runs.
    A bad document fails the job with :class:`~vecembed.errors.IngestError` naming it; nothing of its batch
    is written (batches already written stay: re-run once it is fixed, stored documents are skipped).
    ``written`` in the report is the store's count after minus before, plus documents whose content changed.
    """
    if url is not None and path is not None:
        raise InvalidInputError("give url= (a server, written from the workers) or path= (a local folder, "
                                "written from the driver), not both")
    if url is None and path is None:
        raise InvalidInputError(
            "ingest_dataset needs url= (a database server) or path= (a local folder written from the driver); "
            "an in-memory store would vanish with the call"
        )
    started = time.perf_counter()
    spec, provider = _load_on_driver(backend, model, provider_options)
    spec = spec.with_threads(num_cpus)
    env = _forwarded_env()
    store_spec = None if url is None else StoreSpec(db=db, collection=collection, url=url,
                                                    options=dict(store_options or {}), max_retries=max_retries,
                                                    retry_backoff=retry_backoff)
    with provider, open_store(db, collection, provider, url=url, path=path, adopt=adopt,
                                            max_retries=max_retries, retry_backoff=retry_backoff,
                                            **dict(store_options or {})) as store:
        store.claim()  # before the actors look anything up: bad input may leave an empty collection
        before = store.count()
        nested = bool(getattr(store.backend, "nested_metadata", True))
        prepared = ds.map_batches(
            RecordEmbedder,
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=_actor_pool(concurrency, num_cpus),
            num_cpus=num_cpus,
            fn_constructor_kwargs={"spec": spec, "id_column": id_column, "text_column": text_column,
                                   "metadata_columns": metadata_columns, "nested": nested, "store": store_spec,
                                   "skip_unchanged": skip_unchanged, "env": env},
        )
        try:
            if store_spec is not None:
                sink = VecembedDatasink(db, collection, url=url, provider=provider, batch_size=DEFAULT_BATCH_SIZE,
                                        skip_unchanged=skip_unchanged, adopt=adopt, max_retries=max_retries,
                                        retry_backoff=retry_backoff, store_options=store_options)
                sink.prepare()  # the collection is claimed already: this notes the identity and the count
                sink._started = started
                prepared.write_datasink(sink, ray_remote_args={"num_cpus": write_num_cpus},
                                        concurrency=write_concurrency)
                if sink.report is None:  # pragma: no cover - Ray calls on_write_complete before returning
                    raise ProviderUnavailableError("Ray finished the write without reporting it")
                return sink.report
            counts = BlockCounts()
            for batch in prepared.iter_batches(batch_size=None, batch_format="pyarrow"):
                records, states, vectors = table_records(batch, nested=nested)
                counts += write_records(store.backend, store.caller, records, states, vectors,
                                        skip_unchanged=skip_unchanged)
            return _summarise(db, collection, counts, before, store.count(), time.perf_counter() - started)
        except Exception as exc:
            raise _job_failed(exc, store, before, started) from exc


def _job_failed(exc: Exception, store: Store, before: int, started: float) -> IngestError:
    name, message = job_cause(exc)
    try:
        now = store.count()
    except Exception:  # pragma: no cover - the database itself went away
        now = before
    done = _summarise(store.db, store.collection, BlockCounts(rows=max(0, now - before)), before, now,
                      time.perf_counter() - started)
    hint = ("fix the document named below, then re-run the same job: it skips what is stored. "
            if name == InvalidInputError.__name__
            else "re-run the same job once the cause is fixed: it skips what is stored. ")
    return IngestError(
        f"distributed ingest into {store.db} collection {store.collection!r} stopped: {done.written} documents "
        f"were written by this job and stay written (nothing is duplicated); {hint}"
        f"Cause: {name}: {message}",
        report=done,
        total=None,
    )


# -- reading files through Ray's own readers -----------------------------------------------------

_READERS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
            ".txt": "text", ".md": "text"}


def read_dataset(paths: Sequence[str | os.PathLike[str]], *, num_cpus: float = 0) -> Dataset:
    """Files as one dataset through Ray's readers: JSONL/JSON, CSV, Parquet, text (one document a line).

    JSONL/CSV/Parquet rows keep their columns (``id``, ``text``, ``metadata``...); a text file gives a
    ``text`` column (ids derived from the text, blank lines dropped). Read tasks take ``num_cpus``
    (default 0): reading is light next to embedding, and embedding actors that hold every CPU would
    otherwise leave the reads, and so the whole job, waiting forever.
    """
    if isinstance(paths, str | os.PathLike) or not paths:
        raise InvalidInputError("read_dataset takes a non-empty list of files")
    groups: dict[str, list[str]] = {}
    for p in paths:
        suffix = os.path.splitext(str(p))[1].lower()
        if suffix not in _READERS:
            raise InvalidInputError(f"{p}: unknown file type {suffix or '(none)'}; known: {', '.join(_READERS)}")
        if not os.path.exists(p):
            raise InvalidInputError(f"{p}: no such file")
        groups.setdefault(_READERS[suffix], []).append(os.path.abspath(p))
    parts: list[Dataset] = []
    for kind, files in groups.items():
        if kind == "json":
            parts.append(ray.data.read_json(files, lines=True, num_cpus=num_cpus))
        elif kind == "csv":
            parts.append(ray.data.read_csv(files, num_cpus=num_cpus))
        elif kind == "parquet":
            parts.append(_read_parquet(files, num_cpus))
        else:
            parts.append(ray.data.read_text(files, drop_empty_lines=True, num_cpus=num_cpus))
    if len(parts) == 1:
        return parts[0]
    # Files of several kinds: one block format (Ray's readers give Arrow or pandas blocks, and a batch cannot
    # mix them) and one type for ids (``7`` in JSON, ``"a7"`` in CSV: both are str ids, as the engine has it).
    first, *rest = (part.map_batches(_arrow_with_str_ids, batch_format="pyarrow", num_cpus=num_cpus)
                    for part in parts)
    return first.union(*rest)


def _read_parquet(files: list[str], num_cpus: float) -> Dataset:
    # Ray 2.60's datasource v2 lists Parquet files in a task of its own that takes one CPU whatever num_cpus
    # says: with actors on every CPU it never runs. The v1 reader honours num_cpus.
    context = ray.data.DataContext.get_current()
    saved = getattr(context, "use_datasource_v2", None)
    if saved is not None:
        context.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(files, num_cpus=num_cpus)
    finally:
        if saved is not None:
            context.use_datasource_v2 = saved


def _arrow_with_str_ids(table: Any) -> Any:
    import pyarrow as pa

    if ID_COLUMN in table.column_names and not pa.types.is_string(table.schema.field(ID_COLUMN).type):
        index = table.column_names.index(ID_COLUMN)
        table = table.set_column(index, ID_COLUMN, table.column(ID_COLUMN).cast(pa.string()))
    return table

