"""The two public calls, :func:`embed_dataset` and :func:`ingest_dataset`, and what a failed job reports."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vecembed import errors
from vecembed.collection import Store, open_store
from vecembed.distributed.actors import DEFAULT_DATASET_BATCH_SIZE, BatchEmbedder, RecordEmbedder, actor_pool
from vecembed.distributed.rows import table_records
from vecembed.distributed.sink import BlockCounts, VecembedDatasink, summarise, truncation_counts, write_records
from vecembed.distributed.specs import ProviderSpec, StoreSpec, forwarded_env, load_sparse_on_driver
from vecembed.errors import IngestError, InvalidInputError, ProviderUnavailableError, VecembedError
from vecembed.ingest import DEFAULT_BATCH_SIZE, warn_truncated
from vecembed.protocol import EmbeddingProvider
from vecembed.sparse import SparseEmbeddingProvider
from vecembed.store import IngestReport

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["embed_dataset", "ingest_dataset", "job_cause"]


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
    env = forwarded_env()
    return ds.map_batches(
        BatchEmbedder,
        batch_size=batch_size,
        batch_format="numpy",
        compute=actor_pool(concurrency, num_cpus),
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
    sparse: str | SparseEmbeddingProvider | None = None,
    sparse_options: Mapping[str, Any] | None = None,
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

    ``sparse``: a sparse provider's name (``"bm25"``, loaded with ``sparse_options``) or a registered sparse
    provider, as ``open_store(..., sparse=...)`` takes it: each document written (new or changed; unchanged ones
    are not encoded) gets its sparse vector (:func:`~vecembed.ingest.embed_sparse`) in the same write as its
    dense one, and the collection's identity records the sparse provider exactly as an in-process ingest does,
    so both engines write one collection alike. The write tasks load it by name
    (:class:`~vecembed.distributed.specs.SparseSpec`) and check its fingerprint against the driver's. A store
    that keeps no sparse vectors (Chroma) raises :class:`~vecembed.errors.UnsupportedError`; a collection
    written with another sparse provider, or with one when this job has none (or the other way round),
    :class:`~vecembed.errors.ModelMismatchError` — before anything runs.

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
    loaded = load_sparse_on_driver(db, sparse, sparse_options)  # a bad sparse= refused before the model loads
    sparse_provider = None if loaded is None else loaded[1]
    try:
        spec, provider = _load_on_driver(backend, model, provider_options)
        spec = spec.with_threads(num_cpus)
        env = forwarded_env()
        store_spec = None if url is None else StoreSpec(db=db, collection=collection, url=url,
                                                        options=dict(store_options or {}), max_retries=max_retries,
                                                        retry_backoff=retry_backoff)
        with provider, open_store(db, collection, provider, url=url, path=path, adopt=adopt,
                                  max_retries=max_retries, retry_backoff=retry_backoff, sparse=sparse_provider,
                                  **dict(store_options or {})) as store:
            store.claim()  # before the actors look anything up: bad input may leave an empty collection
            before = store.count()
            nested = store.backend.nested_metadata
            prepared = ds.map_batches(
                RecordEmbedder,
                batch_size=batch_size,
                batch_format="pyarrow",
                compute=actor_pool(concurrency, num_cpus),
                num_cpus=num_cpus,
                fn_constructor_kwargs={"spec": spec, "id_column": id_column, "text_column": text_column,
                                       "metadata_columns": metadata_columns, "nested": nested, "store": store_spec,
                                       "skip_unchanged": skip_unchanged, "env": env},
            )
            try:
                if store_spec is not None:
                    sink = VecembedDatasink(db, collection, url=url, provider=provider,
                                            batch_size=DEFAULT_BATCH_SIZE, skip_unchanged=skip_unchanged,
                                            adopt=adopt, max_retries=max_retries, retry_backoff=retry_backoff,
                                            store_options=store_options, sparse=sparse,
                                            sparse_options=sparse_options)
                    sink.prepare()  # the collection is claimed already: this notes the identity and the count
                    sink._started = started
                    prepared.write_datasink(sink, ray_remote_args={"num_cpus": write_num_cpus},
                                            concurrency=write_concurrency)
                    if sink.report is None:  # pragma: no cover - Ray calls on_write_complete before returning
                        raise ProviderUnavailableError("Ray finished the write without reporting it")
                    report = sink.report
                else:
                    counts = BlockCounts()
                    for batch in prepared.iter_batches(batch_size=None, batch_format="pyarrow"):
                        records, states, vectors = table_records(batch, nested=nested)
                        counts += write_records(store.backend, store.caller, records, states, vectors,
                                                skip_unchanged=skip_unchanged, dimension=provider.info.dimension,
                                                normalized=provider.info.normalized, sparse=sparse_provider)
                        counts += truncation_counts(batch)
                    report = summarise(db, collection, counts, before, store.count(),
                                       time.perf_counter() - started)
            except Exception as exc:
                raise _job_failed(exc, store, before, started) from exc
            warn_truncated(report, None, provider.info.max_tokens)  # the actors said nothing: one line for the job
            return report
    finally:
        if loaded is not None and loaded[2]:  # loaded here by name: closed here
            loaded[1].close()


def _job_failed(exc: Exception, store: Store, before: int, started: float) -> IngestError:
    name, message = job_cause(exc)
    try:
        now = store.count()
    except Exception:  # pragma: no cover - the database itself went away
        now = before
    rows = max(0, now - before)
    done = summarise(store.db, store.collection, BlockCounts(rows=rows, uncounted=rows), before, now,
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
