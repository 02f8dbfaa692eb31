"""The one text pipeline every model-backed provider runs.

::

    texts ─► validate ─► prompt ─► tokenize (truncate, count) ─► batch plan (length-sorted,
    token budget) ─► backend forward ─► pool ─► L2 normalise ─► float32 (n, dim) in input order

A backend supplies only ``forward``: a function from a padded :class:`Batch`
to token vectors ``(batch, seq, dim)`` (or already pooled ``(batch, dim)``
with ``pooling="none"``). Tokenising chunk k+1 runs on a helper thread while
chunk k is in ``forward`` (the Rust tokenizer releases the GIL).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed.pipeline.batching import plan_batches
from vecembed.pipeline.pooling import l2_normalize, pool
from vecembed.pipeline.validate import validate_texts
from vecembed.types import Embeddings, EmbeddingStats, EmbedResult
from vecembed.vectors import check_embeddings

__all__ = ["Batch", "ForwardFn", "TextPipeline", "Tokenized", "truncation_reported_by_caller"]

log = logging.getLogger("vecembed")

#: True while a caller that reports one total embeds (the ingest engine, a Ray actor): per-call notes go to DEBUG.
_TOTAL_REPORTED: contextvars.ContextVar[bool] = contextvars.ContextVar("vecembed_truncation_reported", default=False)


@contextlib.contextmanager
def truncation_reported_by_caller() -> Iterator[None]:
    """Within the block, this thread's embed calls log their truncation counts at DEBUG, not WARNING.

    For callers that count truncation across many calls and report the total once (the ingest engine's
    :class:`~vecembed.store.IngestReport`, the Ray actors): one ingest is one line, not one per chunk.
    """
    token = _TOTAL_REPORTED.set(True)
    try:
        yield
    finally:
        _TOTAL_REPORTED.reset(token)


@dataclass(frozen=True)
class Batch:
    """One padded batch, right-padded with the pad id; all arrays int64 ``(batch, seq)``."""

    input_ids: NDArray[np.int64]
    attention_mask: NDArray[np.int64]
    token_type_ids: NDArray[np.int64]

    @property
    def shape(self) -> tuple[int, int]:
        b, s = self.input_ids.shape
        return int(b), int(s)


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a list of texts, unpadded, with their lengths and how many were truncated."""

    ids: list[list[int]]
    lengths: NDArray[np.int64]
    truncated: int

    def batch(self, index: NDArray[np.intp], pad_id: int = 0) -> Batch:
        """The padded :class:`Batch` for the texts at ``index``."""
        lens = self.lengths[index]
        width = max(int(lens.max()) if len(lens) else 0, 1)
        ids = np.full((len(index), width), pad_id, dtype=np.int64)
        for row, i in enumerate(index):
            seq = self.ids[int(i)]
            ids[row, : len(seq)] = seq
        mask = (np.arange(width)[None, :] < lens[:, None]).astype(np.int64)
        return Batch(ids, mask, np.zeros_like(ids))


ForwardFn = Callable[[Batch], NDArray[Any]]


class TextPipeline:
    """Validate, tokenize, batch, run a backend's forward, pool, normalise, restore order.

    Thread-safe: ``embed`` keeps no per-call state on the instance (statistics
    are updated under a lock), so many threads may embed through one pipeline.
    """

    def __init__(
        self,
        tokenizer: Any,
        forward: ForwardFn,
        *,
        dimension: int,
        max_tokens: int,
        pooling: str = "mean",
        normalize: bool = True,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        chunk_size: int = 2048,
        add_special_tokens: bool = True,
        pad_id: int | None = None,
        stats: EmbeddingStats | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.tokenizer = tokenizer
        self.forward = forward
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        self.max_batch_tokens = max(max_batch_tokens, max_tokens)
        self.chunk_size = max(chunk_size, batch_size)
        self.add_special_tokens = add_special_tokens
        self.stats = stats if stats is not None else EmbeddingStats()
        # The pipeline owns truncation and padding: a tokenizer.json may carry its own
        # settings (fixed padding to 128, another max length) that would change the vectors.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        if pad_id is None:
            padding = getattr(tokenizer, "padding", None)
            pad_id = int(padding["pad_id"]) if padding else 0
            for token in ("[PAD]", "<pad>"):
                tid = tokenizer.token_to_id(token)
                if tid is not None:
                    pad_id = int(tid)
                    break
        self.pad_id = pad_id
        # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which nothing here reads: ~20% less
        # tokenising time. Every backend that tokenises goes through this one choice.
        self.encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._truncation_warned = False

    # -- tokenisation -------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        """Token ids of ``texts`` (already validated), truncated to ``max_tokens``, with the count truncated."""
        if not texts:
            return Tokenized([], np.zeros(0, dtype=np.int64), 0)
        encodings = self.encode_batch(list(texts), add_special_tokens=self.add_special_tokens)
        ids = [e.ids for e in encodings]
        truncated = sum(1 for e in encodings if e.overflowing)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        return Tokenized(ids, lengths, truncated)

    def _chunks(self, texts: list[str]) -> Iterator[Tokenized]:
        """Tokenized chunks of ``texts``; the next chunk is tokenized while the caller works on this one."""
        starts = range(0, len(texts), self.chunk_size)
        if len(starts) <= 1:
            yield self.tokenize(texts)
            return
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecembed-tokenize")
            executor = self._executor
        pending: Future[Tokenized] = executor.submit(self.tokenize, texts[: self.chunk_size])
        for start in starts:
            current = pending.result()
            nxt = start + self.chunk_size
            if nxt < len(texts):
                pending = executor.submit(self.tokenize, texts[nxt : nxt + self.chunk_size])
            yield current

    # -- embedding ----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, prompt: str = "", what: str = "texts") -> Embeddings:
        """Vectors for ``texts`` (``prompt`` prepended to each), float32 ``(n, dimension)`` in input order."""
        return self.embed_counted(texts, prompt=prompt, what=what).vectors

    def embed_counted(self, texts: Sequence[str], *, prompt: str = "", what: str = "texts") -> EmbedResult:
        """As :meth:`embed`, with this call's own token and truncation counts."""
        items = validate_texts(texts, what=what)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        if not items:
            return EmbedResult(out, tokens=0, truncated=0)
        if prompt:
            items = [prompt + t for t in items]
        offset = 0
        total_tokens = truncated = n_batches = 0
        for tok in self._chunks(items):
            plan = plan_batches(tok.lengths, max_batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens)
            for index in plan:
                batch = tok.batch(index, self.pad_id)
                hidden = self.forward(batch)
                vectors = pool(hidden, batch.attention_mask, self.pooling)
                if self.normalize:
                    vectors = l2_normalize(vectors)
                rows = offset + index
                vectors = check_embeddings(
                    vectors, expected_rows=len(index), dimension=self.dimension, normalized=self.normalize,
                    where="the backend's forward pass", outcome="nothing was returned",
                    row_name=functools.partial(_text_at, rows),
                )
                out[rows] = vectors
            offset += len(tok.lengths)
            total_tokens += int(tok.lengths.sum())
            truncated += tok.truncated
            n_batches += len(plan)
        self.stats.add(texts=len(items), tokens=total_tokens, truncated=truncated, batches=n_batches)
        if truncated:
            self._note_truncation(truncated, len(items))
        return EmbedResult(out, tokens=total_tokens, truncated=truncated)

    def _note_truncation(self, truncated: int, n: int) -> None:
        # A warning the first time only: a loop of embed calls (the CLI's chunks, an app's batches) would
        # otherwise repeat it on every call; the counts stay exact in stats and in each call's EmbedResult.
        first = not self._truncation_warned and not _TOTAL_REPORTED.get()
        if first:
            self._truncation_warned = True
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%d of %d texts were longer than %d tokens and were truncated%s",
            truncated, n, self.max_tokens,
            " (said once; later calls count them in the provider's stats.truncated)" if first else "",
        )

    def close(self) -> None:
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def _text_at(rows: NDArray[np.intp], i: int) -> str:
    """How a check names row ``i`` of a batch: by the text's position in the call."""
    return f"text {int(rows[i])}"
