"""The one ingest engine: every store, the CLI, the demo and the benchmarks write documents through it.

::

    docs (any iterable) ─► validate a chunk ─► ids (deterministic) ─► skip stored & unchanged
          ─► embed the chunk (one call) ─► write it in batches (while the next chunk embeds, if writes wait)
          ─► IngestReport(documents, written, skipped, duplicates, retries, truncated, seconds)

* **Streams.** Documents are read ``chunk_size`` at a time from any iterable (a
  generator of millions is never materialised): memory is bounded by one chunk
  and one batch in flight. A list (any ``Sequence``) is validated whole before
  anything is written and embedded sorted by length as a whole (least padding);
  an iterator chunk by chunk, each validated before any of it is written.
* **Idempotent, resumable.** A document's id is the caller's (``1`` and ``"1"``
  are one id) or, without one, derived from its text. Each record stores a hash
  of its text and metadata; documents already stored with the same hash are not
  embedded again, so a re-run after a failure embeds only what is missing.
* **Pipelined where it pays, retried.** When writes wait (a server, a disk),
  embedding chunk k+1 overlaps the writes of chunk k (one store call at a time);
  writes that are CPU work in this process (an in-memory index) run in turn,
  decided by timing the first write. A write that fails for
  a passing reason is retried with backoff (the store says which errors pass).
* **Honest on failure.** A failure that retries cannot absorb raises
  :class:`~vecembed.errors.IngestError` whose ``report`` counts what is committed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from vecembed.errors import (
    DimensionMismatchError,
    IngestError,
    InvalidInputError,
    VecembedError,
)
from vecembed.progress import Progress
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record, documents_iterable, prepare_records
from vecembed.retry import StoreCaller
from vecembed.store import IngestReport, VectorStore
from vecembed.types import Embeddings, EmbedResult

__all__ = ["DEFAULT_BATCH_SIZE", "ingest"]

T = TypeVar("T")

#: Documents per write: small enough that a progress bar moves and a failure loses little work, large enough
#: that a server round trip per write costs little.
DEFAULT_BATCH_SIZE = 128

#: Batches per chunk: documents validated, looked up and embedded in one provider call together.
CHUNK_BATCHES = 8

#: Writes overlap the next embedding when less than this share of their wall time is CPU time of this process
#: (they wait on a server or a disk). Measured on 2 cores with onnx: overlapping in-memory Qdrant's or Chroma's
#: CPU-bound writes made the ingest 1.5-3 % slower than writing in turn (contention with the embedding threads).
#: A write to a Chroma server spends ~5 % of its wall time on this process's CPU (at most 13 %); a CPU-bound
#: write keeps > 25 % even when the machine is 4x oversubscribed, so the line sits low, where load cannot
#: move a CPU-bound write across it.
OVERLAP_CPU_SHARE = 0.25

# -- the engine -------------------------------------------------------------------------------------


def _prepared_chunks(documents: Iterable[Any], size: int, nested: bool) -> Iterator[tuple[list[Record], int, int]]:
    """A stream as validated chunks: (records, repeats collapsed, documents read); repeats counted per chunk."""
    iterator = iter(documents)
    start = 0
    while chunk := list(itertools.islice(iterator, size)):
        records, duplicates = prepare_records(chunk, start=start, nested=nested)
        start += len(chunk)
        yield records, duplicates, len(chunk)


def _embed(provider: EmbeddingProvider, texts: list[str], dimension: int) -> EmbedResult:
    counted = getattr(provider, "embed_documents_counted", None)
    result = counted(texts) if callable(counted) else EmbedResult(provider.embed_documents(texts))
    if not isinstance(result, EmbedResult):  # a user's own provider with a method of that name
        result = EmbedResult(np.asarray(result, dtype=np.float32))
    vectors: Embeddings = np.ascontiguousarray(result.vectors, dtype=np.float32)
    if vectors.shape != (len(texts), dimension):
        raise DimensionMismatchError(
            f"the provider returned vectors of shape {vectors.shape} for {len(texts)} documents, but the collection "
            f"holds {dimension}-dimensional vectors; nothing of this batch was written",
            expected=dimension,
            got=int(vectors.shape[-1]) if vectors.ndim else None,
        )
    return EmbedResult(vectors, tokens=result.tokens, truncated=result.truncated)


def ingest(
    store: VectorStore,
    provider: EmbeddingProvider,
    documents: Iterable[Any],
    *,
    caller: StoreCaller | None = None,
    before_first_write: Callable[[], None] | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    show_progress: bool | None = False,
    skip_unchanged: bool = True,
) -> IngestReport:
    """Embed ``documents`` with ``provider`` and write them into ``store``; see the module docstring.

    ``documents``: any iterable of ``str``, ``(id, text)``, ``{"id", "text", "metadata"}`` or
    :class:`~vecembed.records.Document`. ``before_first_write`` runs once, after the first chunk
    validated and before anything is written (the store's identity is created or recorded
    there, so bad input leaves no empty collection behind). ``show_progress``: ``False``
    (default) never draws a bar, ``None`` draws one on a terminal, ``True`` always.
    Most callers use :meth:`vecembed.collection.Store.ingest`, which passes its store's caller and
    identity check.
    """
    start = time.perf_counter()
    preferred = getattr(store, "preferred_batch_size", None) if batch_size is None else None
    batch_size = preferred or DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    if chunk_size is None:  # a store's larger writes keep the usual chunk: one write a chunk
        chunk_size = max(batch_size, DEFAULT_BATCH_SIZE * CHUNK_BATCHES) if preferred else batch_size * CHUNK_BATCHES
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < batch_size:
        raise InvalidInputError(f"chunk_size must be an int >= batch_size ({batch_size}), got {chunk_size!r}")
    documents = documents_iterable(documents)
    nested = bool(getattr(store, "nested_metadata", True))
    call = caller or StoreCaller(store)
    dimension = provider.info.dimension
    total = len(documents) if isinstance(documents, Sequence) else None
    chunks: Iterable[tuple[list[Record], int, int]]
    if isinstance(documents, Sequence):
        # A list is in memory anyway: validate all of it before anything is written (bad input writes nothing
        # at all), with repeats counted across the whole list.
        seen: dict[str, tuple[int, str]] = {}
        chunks = [
            (*prepare_records(documents[lo : lo + chunk_size], start=lo, nested=nested, seen=seen),
             min(chunk_size, len(documents) - lo))
            for lo in range(0, len(documents), chunk_size)
        ]
        del seen
    else:
        chunks = _prepared_chunks(documents, chunk_size, nested)

    retries_before = call.retries
    counts = {"documents": 0, "written": 0, "skipped": 0, "duplicates": 0, "batches": 0}
    truncated: int | None = 0
    pending: list[Future[int]] = []
    claim = before_first_write
    overlap: bool | None = None  # decided by the first write
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecembed-write")

    def report() -> IngestReport:
        seconds = time.perf_counter() - start
        return IngestReport(
            db=store.db,
            collection=store.collection,
            documents=counts["documents"],
            written=counts["written"],
            skipped=counts["skipped"],
            duplicates=counts["duplicates"],
            batches=counts["batches"],
            retries=call.retries - retries_before,
            truncated=truncated,
            seconds=seconds,
        )

    def settle() -> int:
        """Wait for the writes in flight (in order); count what they wrote. After a failure, start no more."""
        nonlocal pending
        futures, pending = pending, []
        written, error = 0, None
        for future in futures:
            if error is not None and future.cancel():
                continue
            try:
                n = future.result()
            except Exception as exc:
                error = error or exc
                continue
            counts["written"] += n
            written += n
        if error is not None:
            raise error
        return written

    failed = threading.Event()  # after a failed write, queued writes do not start: "committed" stays exact

    def write(records: list[Record], vectors: Embeddings) -> int:
        def send() -> None:
            store.write(records, vectors)

        if failed.is_set():
            return 0
        try:
            call(send)
        except BaseException:
            failed.set()
            raise
        return len(records)

    def first_write(records: list[Record], vectors: Embeddings) -> bool:
        """Write inline and say whether later writes should overlap the embedding (they mostly wait)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        counts["written"] += write(records, vectors)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        bar.advance(len(records))
        # A write that waits (a server, a disk) hides behind the next embedding; one that is CPU work here (an
        # in-memory index, an HNSW insert) would only compete with an embedding that already uses every core.
        return cpu < OVERLAP_CPU_SHARE * wall

    def select(records: list[Record], duplicates: int, read: int) -> list[Record]:
        """The records of a chunk that need embedding: not stored with the same content hash."""
        nonlocal claim
        if claim is not None:
            claim()  # after the first chunk validated, before anything is looked up or written
            claim = None
        todo = records
        if skip_unchanged and records:
            stored = call(functools.partial(store.stored_hashes, [r.id for r in records]))
            todo = [r for r in records if stored.get(r.id) != r.content_hash]
        counts["documents"] += read
        counts["duplicates"] += duplicates
        counts["skipped"] += len(records) - len(todo)
        bar.advance(read - len(todo))
        return todo

    try:
        with Progress(f"{store.db}: {store.collection}", total, enabled=show_progress) as bar:
            # What is embedded together is sorted by length (batches of similar lengths pad little): a list
            # (in memory anyway) as a whole, a stream chunk by chunk so that memory stays bounded.
            groups: Iterable[list[Record]] = (
                [[r for chunk in chunks for r in select(*chunk)]]
                if total is not None
                else (select(*chunk) for chunk in chunks)
            )
            for todo in groups:
                todo.sort(key=lambda r: len(r.text))
                # One embed call per chunk: the provider orders its texts by token count, which batches far better
                # than any order by characters (per-batch calls sorted by characters measured 6 % slower).
                for lo in range(0, len(todo), chunk_size):
                    part = todo[lo : lo + chunk_size]
                    result = _embed(provider, [r.text for r in part], dimension)
                    if truncated is not None:
                        truncated = None if result.truncated is None else truncated + result.truncated
                    bar.advance(settle())  # the writes of the previous part overlapped this embedding
                    for b in range(0, len(part), batch_size):
                        batch, vectors = part[b : b + batch_size], result.vectors[b : b + batch_size]
                        if overlap is None:
                            overlap = first_write(batch, vectors)
                        elif overlap:
                            pending.append(executor.submit(write, batch, vectors))
                        else:
                            counts["written"] += write(batch, vectors)
                            bar.advance(len(batch))
                        counts["batches"] += 1
            bar.advance(settle())
    except Exception as exc:
        # Settle the batch in flight, so that what the report calls committed is exact, not a guess.
        with contextlib.suppress(Exception):  # the first failure is the one to report
            settle()
        done = report()
        committed = done.written + done.skipped
        if isinstance(exc, ValueError) and isinstance(exc, VecembedError) and committed == 0:
            raise  # bad input or a mismatch before anything was written: the error says it all
        raise IngestError(
            f"ingest into {store.db} collection {store.collection!r} stopped after {done.documents} documents: "
            f"{committed} are committed ({done.written} written by this call, {done.skipped} already stored) and "
            "stay written; nothing is duplicated — "
            + (
                "fix the input named below, then re-run the same ingest: it skips what is stored. "
                if isinstance(exc, InvalidInputError)
                else "re-run the same ingest once the cause is fixed: it skips what is stored. "
            )
            + f"Cause: {type(exc).__name__}: {exc}",
            report=done,
            total=total,
        ) from exc
    finally:
        executor.shutdown(wait=True)
    return report()
