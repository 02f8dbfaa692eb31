"""Dynamic batching: one thread owns the provider; concurrent requests are merged into one embedding call.

::

    request ─► submit() ─► bounded queue ─► worker thread: take the first job, merge the jobs queued
    behind it (same kind, up to max_batch_texts / max_batch_tokens, waiting at most max_wait) ─►
    provider.embed_documents_counted(all texts) ─► split the rows ─► resolve each job's Future

The event loop only puts jobs in the queue and awaits their futures, so it never
waits on the model. A full queue refuses the job at once (:class:`QueueFullError`,
HTTP 429) instead of letting memory grow. The worker waits for more jobs only
when the last call merged several (the server is busy): an idle server answers
a lone request without adding the wait.

Merging does not change vectors: the pipeline pads each forward batch and masks
the padding, so a text's vector in a merged call equals its vector alone
(checked to 1e-6 with the real model in the tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.protocol import CountingProvider, EmbeddingProvider, PipelineProvider, TokenCountingProvider, Tokenizes
from vecembed.server.metrics import ServerMetrics
from vecembed.types import Embeddings

__all__ = ["BatchResult", "DynamicBatcher", "QueueFullError", "ShuttingDownError", "token_counter"]

log = logging.getLogger("vecembed.server")

KINDS = ("document", "query")


class QueueFullError(ProviderUnavailableError):
    """The batching queue holds as many texts as it may; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ShuttingDownError(ProviderUnavailableError):
    """The batcher was closed: no new work is taken."""


@dataclass(frozen=True)
class BatchResult:
    """One request's share of a merged call: its rows, its token count and how long it queued."""

    vectors: Embeddings
    tokens: int
    queue_seconds: float


@dataclass
class _Job:
    texts: list[str]
    kind: str
    future: Future[Any]
    enqueued: float
    cost: int
    call: Callable[[], Any] | None = None
    started: float = field(default=0.0)


def token_counter(provider: EmbeddingProvider, kind: str) -> Callable[[Sequence[str]], list[int]] | None:
    """Per-text token counts as the provider's own tokenizer makes them (prompt included), or None.

    Providers built on the shared :class:`~vecembed.pipeline.TextPipeline` count with its
    tokenizer; a provider with a ``count_tokens(texts)`` method is asked directly.
    """
    if isinstance(provider, TokenCountingProvider):
        own = provider.count_tokens
        return lambda texts: [int(n) for n in own(list(texts), kind=kind)]
    pipeline = provider.pipeline if isinstance(provider, PipelineProvider) else None
    if not isinstance(pipeline, Tokenizes):
        return None
    tokenize = pipeline.tokenize
    info = provider.info
    prompt = info.query_prompt if kind == "query" else info.document_prompt
    return lambda texts: [int(n) for n in tokenize([prompt + t for t in texts]).lengths]


def estimate_tokens(texts: Sequence[str], max_tokens: int) -> int:
    """A cheap upper-bound guess of the tokens in ``texts`` (for the batch budget only, never reported)."""
    return sum(min(len(t) // 3 + 2, max_tokens) for t in texts)


class DynamicBatcher:
    """Merges concurrent embedding requests into one call on a thread that owns ``provider``.

    ``max_batch_texts`` / ``max_batch_tokens``: the most one merged call takes (a single
    larger request runs alone, and the provider's pipeline splits it into forward passes);
    ``max_wait``: seconds the worker may wait for more jobs once it is busy;
    ``max_queue_texts``: texts waiting at most, beyond which :meth:`submit` raises
    :class:`QueueFullError`.
    """

    def __init__(
        self,
        provider: EmbeddingProvider,
        *,
        max_batch_texts: int = 64,
        max_batch_tokens: int = 8192,
        max_wait: float = 0.002,
        max_queue_texts: int = 4096,
        metrics: ServerMetrics | None = None,
    ) -> None:
        for name, value in (("max_batch_texts", max_batch_texts), ("max_batch_tokens", max_batch_tokens),
                            ("max_queue_texts", max_queue_texts)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
        if max_wait < 0:
            raise InvalidInputError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
        self.provider = provider
        self.max_batch_texts = max_batch_texts
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_queue_texts = max_queue_texts
        self.metrics = metrics
        self._max_tokens = provider.info.max_tokens
        self._counters = {kind: token_counter(provider, kind) for kind in KINDS}
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._busy = False
        self._closing = False
        self._last_merged = 1
        # seconds per text of the last calls: what Retry-After is estimated from
        self._seconds_per_text = 0.005
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="vecembed-batcher", daemon=True)
        self._thread.start()

    # -- what the server calls -------------------------------------------------------------------

    @property
    def queued_texts(self) -> int:
        """Texts waiting in the queue (not counting the call running now)."""
        return self._queued_texts

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        with self._cond:
            return not self._queue and not self._busy

    @property
    def closed(self) -> bool:
        return self._closing

    def submit(self, texts: Sequence[str], *, kind: str = "document") -> Future[BatchResult]:
        """Queue ``texts`` (already validated) for embedding; the future resolves to a :class:`BatchResult`."""
        if kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {KINDS}, got {kind!r}")
        items = list(texts)
        future: Future[BatchResult] = Future()
        job = _Job(items, kind, future, time.perf_counter(), estimate_tokens(items, self._max_tokens))
        with self._cond:
            if self._closing:
                raise ShuttingDownError("the server is shutting down; send the request to another instance")
            # One request larger than the whole queue is still taken when the queue is empty,
            # else it could never run; the size limit per request bounds it.
            if self._queue and self._queued_texts + len(items) > self.max_queue_texts:
                raise QueueFullError(
                    f"the embedding queue is full ({self._queued_texts} texts waiting, limit "
                    f"{self.max_queue_texts}); retry later",
                    retry_after=self.retry_after(),
                )
            self._queue.append(job)
            self._queued_texts += len(items)
            self._cond.notify()
        return future

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the provider's thread before any queued batch (health checks): the provider keeps one owner."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closing:
                raise ShuttingDownError("the server is shutting down")
            self._queue.appendleft(_Job([], "call", future, time.perf_counter(), 0, call=fn))
            self._cond.notify()
        return future

    def retry_after(self) -> float:
        """Seconds until the queue has likely drained (at least one): the Retry-After of a 429."""
        return max(1.0, round(self._queued_texts * self._seconds_per_text, 1))

    def close(self, *, timeout: float | None = None) -> None:
        """Take no new jobs, finish the queued ones, stop the thread (waits up to ``timeout`` seconds)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            jobs = [first]
            if first.call is None:
                texts, cost = len(first.texts), first.cost
                deadline = time.perf_counter() + (self.max_wait if self._last_merged > 1 else 0.0)
                while True:
                    while self._queue:
                        nxt = self._queue[0]
                        if (nxt.kind != first.kind or texts + len(nxt.texts) > self.max_batch_texts
                                or cost + nxt.cost > self.max_batch_tokens):
                            break
                        jobs.append(self._queue.popleft())
                        texts += len(nxt.texts)
                        cost += nxt.cost
                    remaining = deadline - time.perf_counter()
                    if self._queue or texts >= self.max_batch_texts or remaining <= 0 or self._closing:
                        break
                    self._cond.wait(remaining)
                self._queued_texts -= texts
            self._busy = True
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            try:
                call = jobs[0].call
                if call is not None:
                    self._run_call(call, jobs[0].future)
                else:
                    self._run_batch(jobs)
            finally:
                with self._cond:
                    self._busy = False
                    self._last_merged = len(jobs)

    @staticmethod
    def _run_call(call: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as exc:
            future.set_exception(exc)

    def _run_batch(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        start = time.perf_counter()
        kind = jobs[0].kind
        texts = [t for job in jobs for t in job.texts]
        try:
            vectors, truncated, total_tokens = self._embed(texts, kind)
            counter = self._counters[kind]
            counts = counter(texts) if counter is not None else None
        except BaseException as exc:
            for job in jobs:
                job.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - start
        if texts:
            # a smoothed cost per text: what the next 429's Retry-After is estimated from
            self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * elapsed / len(texts)
        offset = 0
        for job in jobs:
            n = len(job.texts)
            if counts is not None:
                tokens = sum(counts[offset:offset + n])
            else:
                # no per-text tokenizer: the call's own count when it served one request, else words
                tokens = total_tokens if len(jobs) == 1 and total_tokens is not None else sum(
                    len(t.split()) for t in job.texts)
            if self.metrics is not None:
                self.metrics.queue_seconds.observe(start - job.enqueued)
                self.metrics.tokens.inc(tokens)
            job.future.set_result(BatchResult(np.ascontiguousarray(vectors[offset:offset + n]), tokens,
                                              start - job.enqueued))
            offset += n
        if self.metrics is not None:
            self.metrics.batch_texts.observe(len(texts))
            self.metrics.batch_requests.observe(len(jobs))
            self.metrics.batch_seconds.observe(elapsed)
            self.metrics.texts.inc(len(texts))
            if truncated:
                self.metrics.truncated.inc(truncated)

    def _embed(self, texts: list[str], kind: str) -> tuple[Embeddings, int, int | None]:
        provider = self.provider
        if kind == "query":
            return provider.embed_queries(texts), 0, None
        if isinstance(provider, CountingProvider):
            result = provider.embed_documents_counted(texts)
            return result.vectors, int(result.truncated or 0), result.tokens
        return provider.embed_documents(texts), 0, None
