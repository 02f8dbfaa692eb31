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
  its write tasks validate rows with :func:`vecembed.records.prepare_records` (the engine's ids and content
  hashes) and write through the engine's :class:`~vecembed.ingest.BatchWriter` (batches, retries, counts);
  at completion it leaves an :class:`~vecembed.store.IngestReport` in ``sink.report``.
* :func:`ingest_dataset` — the one call: validate + look up + embed on actors, then write. Server stores
  (a ``url=``: Chroma server, Qdrant server, PostgreSQL) are written in parallel from the workers; an
  embedded store that one process must own (a ``path=`` folder: Qdrant local, Chroma persistent, Qdrant
  Edge) is written from the driver by streaming the embedded dataset (``iter_batches``) — a local folder
  is never opened by two processes.

With ``sparse="bm25"`` (as ``open_store(..., sparse=...)`` takes it) each document written also gets its sparse
vector, in the same write, from the engine's :func:`~vecembed.ingest.embed_sparse`: the writers (write tasks, or
the driver for a folder) load the sparse provider by name (:class:`SparseSpec`, checked against the driver's
fingerprint) and encode only the new and changed documents; the collection's identity records it as an
in-process ingest does.

Ray's writes are at-least-once: a task whose worker dies is run again. Correctness rests on deterministic
ids and upserts (a rewritten record is the same record), and the report's ``written`` counts from the store
(its count after the job minus before, plus the records whose stored content changed), not from summing
task results. Ids must be unique across the dataset: a repeat inside one batch is collapsed (or refused when
its content differs) as in the single-process engine, but a repeat in another batch is not seen — the last
write wins.

The package, by what each module holds: :mod:`~vecembed.distributed.specs` (what travels to the
workers), :mod:`~vecembed.distributed.rows` (rows -> records and back), :mod:`~vecembed.distributed.actors`
(the ``map_batches`` classes), :mod:`~vecembed.distributed.sink` (the writes),
:mod:`~vecembed.distributed.readers` (files) and :mod:`~vecembed.distributed.jobs` (the two calls).
"""


from __future__ import annotations

from vecembed._deps import require
from vecembed.errors import MissingDependencyError

_PURPOSE = "distributed embedding and ingest (vecembed.distributed)"
require("ray", "ray", _PURPOSE)  # a missing ray names the extra to install, before any module imports it
try:
    import ray.data  # noqa: F401  (checked here: the modules below import it)
except ImportError as exc:  # pragma: no cover - ray without its "data" extra (pyarrow, pandas)
    if exc.name not in ("pyarrow", "pandas"):
        raise
    raise MissingDependencyError(exc.name, "ray", _PURPOSE) from None

from vecembed.distributed.actors import DEFAULT_DATASET_BATCH_SIZE, BatchEmbedder, RecordEmbedder  # noqa: E402
from vecembed.distributed.jobs import embed_dataset, ingest_dataset, job_cause  # noqa: E402
from vecembed.distributed.readers import read_dataset  # noqa: E402
from vecembed.distributed.rows import (  # noqa: E402
    CHANGED,
    NEW,
    PENDING,
    REPEAT,
    TRUNCATED_COLUMN,
    UNCHANGED,
    classify,
    prepare_rows,
    record_columns,
    table_records,
)
from vecembed.distributed.sink import (  # noqa: E402
    BlockCounts,
    VecembedDatasink,
    check_collection,
    truncation_counts,
    write_records,
)
from vecembed.distributed.specs import ProviderSpec, SparseSpec, StoreSpec  # noqa: E402

__all__ = [
    "CHANGED",
    "DEFAULT_DATASET_BATCH_SIZE",
    "NEW",
    "PENDING",
    "REPEAT",
    "TRUNCATED_COLUMN",
    "UNCHANGED",
    "BatchEmbedder",
    "BlockCounts",
    "ProviderSpec",
    "RecordEmbedder",
    "SparseSpec",
    "StoreSpec",
    "VecembedDatasink",
    "check_collection",
    "classify",
    "embed_dataset",
    "ingest_dataset",
    "job_cause",
    "prepare_rows",
    "read_dataset",
    "record_columns",
    "table_records",
    "truncation_counts",
    "write_records",
]
