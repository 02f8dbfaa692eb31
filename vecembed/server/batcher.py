"""Dynamic batching: one thread owns the provider; concurrent requests share its calls fairly.

::

    request ─► submit() ─► bounded queue ─► worker thread: fill one call's budget (max_batch_texts /
    max_batch_tokens) with waiting requests, or with the next chunk of a big one (turns, below)
    ─► provider.embed_documents_counted(those texts) ─► put each row in its request's place
    ─► resolve a request's Future once all its rows are in

The event loop only puts jobs in the queue and awaits their futures, so it never
waits on the model. A full queue refuses the job at once (:class:`QueueFullError`,
HTTP 429) instead of letting memory grow. The worker waits for more jobs only
when the last call merged several (the server is busy): an idle server answers
a lone request without adding the wait.

Fairness: a request larger than one call's budget is cut into budget-sized
chunks (its texts sorted by length first, so a chunk pads little). Requests not
started yet and requests under way take turns, one call each, while both wait;
a request is cut only at the head of a call, so small requests share a short
call of their own instead of riding in a big one's chunk; among big requests
the one with the fewest texts handed out goes first (least attained service).
A one-word request that arrives while a 2,048-text request runs therefore waits
for the chunk running now, not for the whole big request, and a stream of
small requests cannot starve the big one.

Neither merging nor chunking changes vectors: the pipeline pads each forward
batch and masks the padding, so a text's vector in a merged call equals its
vector alone (checked to 1e-6 with the real model in the tests), and each row
goes back to its own index.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecembed.errors import InvalidInputError, QueueFullError, ShuttingDownError
from vecembed.protocol import CountingProvider, EmbeddingProvider, PipelineProvider, TokenCountingProvider, Tokenizes
from vecembed.server.metrics import ServerMetrics
from vecembed.types import Embeddings

__all__ = ["BatchResult", "DynamicBatcher", "QueueFullError", "ShuttingDownError", "token_counter"]

log = logging.getLogger("vecembed.server")

KINDS = ("document", "query")


@dataclass(frozen=True)
class BatchResult:
    """One request's rows (in its input order), its token count and how long it queued before its first call."""

    vectors: Embeddings
    tokens: int
    queue_seconds: float


@dataclass(eq=False)
class _Job:
    """One request: its texts, the order its chunks take them in, and the rows gathered so far."""

    texts: list[str]
    kind: str
    future: Future[Any]
    enqueued: float
    seq: int
    costs: list[int]
    #: the positions in the order chunks take them: input order, or longest first for a request cut in chunks
    order: list[int]
    taken: int = 0  # positions handed to a call so far (a cursor into ``order``)
    done: int = 0  # rows gathered
    tokens: int = 0
    queue_seconds: float | None = None
    vectors: Embeddings | None = field(default=None, repr=False)

    @property
    def remaining(self) -> int:
        return len(self.order) - self.taken


@dataclass(eq=False)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


#: One call's share of a request: the job and the positions of its texts in this call.
_Chunk = tuple[_Job, list[int]]


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
    return sum(_estimate(t, max_tokens) for t in texts)


def _estimate(text: str, max_tokens: int) -> int:
    return min(len(text) // 3 + 2, max_tokens)


class DynamicBatcher:
    """Merges concurrent embedding requests into calls on a thread that owns ``provider``, fairly.

    ``max_batch_texts`` / ``max_batch_tokens``: the most one call takes; a larger
    request is cut into calls of that size, interleaved with the requests that
    arrive meanwhile (see the module docstring); ``max_wait``: seconds the worker
    may wait for more jobs once it is busy; ``max_queue_texts``: texts waiting at
    most, beyond which :meth:`submit` raises :class:`QueueFullError`.
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
        self._jobs: list[_Job] = []  # requests with texts not yet handed to a call, in arrival order
        self._calls: deque[_Call] = deque()
        self._seq = itertools.count()
        self._queued_texts = 0
        self._busy = False
        self._closing = False
        self._last_merged = 1
        self._last_fresh = False
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
            return not self._jobs and not self._calls and not self._busy

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (no new work is taken)."""
        return self._closing

    def submit(self, texts: Sequence[str], *, kind: str = "document") -> Future[BatchResult]:
        """Queue ``texts`` (already validated) for embedding; the future resolves to a :class:`BatchResult`."""
        if kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {KINDS}, got {kind!r}")
        items = list(texts)
        future: Future[BatchResult] = Future()
        costs = [_estimate(t, self._max_tokens) for t in items]
        order = list(range(len(items)))
        if len(items) > self.max_batch_texts or sum(costs) > self.max_batch_tokens:
            # cut in chunks: longest first, so that each chunk holds texts of about one length (little padding)
            order.sort(key=lambda i: -len(items[i]))
        with self._cond:
            if self._closing:
                raise ShuttingDownError("the server is shutting down; send the request to another instance")
            # One request larger than the whole queue is still taken when the queue is empty,
            # else it could never run; the size limit per request bounds it.
            if self._jobs and self._queued_texts + len(items) > self.max_queue_texts:
                raise QueueFullError(
                    f"the embedding queue is full ({self._queued_texts} texts waiting, limit "
                    f"{self.max_queue_texts}); retry later",
                    retry_after=self.retry_after(),
                )
            if not items:  # nothing to embed: answered here, no call made
                future.set_result(BatchResult(np.zeros((0, self.provider.info.dimension), np.float32), 0, 0.0))
                return future
            self._jobs.append(_Job(items, kind, future, time.perf_counter(), next(self._seq), costs, order))
            self._queued_texts += len(items)
            self._cond.notify()
        return future

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the provider's thread before any queued batch (health checks): the provider keeps one owner."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closing:
                raise ShuttingDownError("the server is shutting down")
            self._calls.append(_Call(fn, future))
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

    def _take(self) -> _Call | list[_Chunk] | None:
        with self._cond:
            while not self._jobs and not self._calls:
                if self._closing:
                    return None
                self._cond.wait()
            self._busy = True
            if self._calls:
                return self._calls.popleft()
            # Two kinds of work: requests not started yet (usually small), and big ones under way. While both
            # wait they take turns, one call each: a small request waits about one chunk at most (the one
            # running, or the next when a call of small ones runs now), and a stream of small requests
            # cannot starve a big one.
            fresh = any(job.taken == 0 for job in self._jobs)
            under_way = any(job.taken > 0 for job in self._jobs)
            serve_fresh = fresh and not (under_way and self._last_fresh)
            chunks: dict[int, _Chunk] = {}
            kind: str | None = None
            texts = cost = 0
            # waiting for more requests to merge helps a call of new ones only, when the server is busy
            busy = serve_fresh and self._last_merged > 1
            deadline = time.perf_counter() + (self.max_wait if busy else 0.0)
            while True:
                if serve_fresh:
                    candidates = [job for job in self._jobs if job.taken == 0]  # in arrival order
                else:  # least attained service: the big request with the fewest texts handed out goes first
                    candidates = sorted((job for job in self._jobs if job.taken > 0), key=lambda j: (j.taken, j.seq))
                for job in candidates:
                    if texts >= self.max_batch_texts or (texts and cost >= self.max_batch_tokens):
                        break
                    if kind is not None and job.kind != kind:
                        continue
                    if texts and (texts + job.remaining > self.max_batch_texts
                                  or cost + sum(job.costs[at] for at in job.order[job.taken:]) > self.max_batch_tokens):
                        # a request is cut only at the head of a call: cutting it into a call that already
                        # holds small requests would make them wait for a whole chunk
                        continue
                    if job.taken == 0 and not job.future.set_running_or_notify_cancel():
                        self._drop(job)  # its client went away before any of it ran
                        continue
                    kind = job.kind
                    positions = []
                    while job.remaining and texts < self.max_batch_texts:
                        at = job.order[job.taken]
                        # one text is always taken, else a text over the whole token budget never runs
                        if texts and cost + job.costs[at] > self.max_batch_tokens:
                            break
                        positions.append(at)
                        job.taken += 1
                        texts += 1
                        cost += job.costs[at]
                    held = chunks.setdefault(id(job), (job, []))
                    held[1].extend(positions)
                    self._queued_texts -= len(positions)
                    if not job.remaining:
                        self._jobs.remove(job)
                remaining = deadline - time.perf_counter()
                if (self._jobs or self._calls or texts >= self.max_batch_texts or remaining <= 0
                        or self._closing):
                    break
                self._cond.wait(remaining)
            # a call that left part of a request for later counts as the big requests' turn
            self._last_fresh = serve_fresh and all(not job.remaining for job, _ in chunks.values())
            return list(chunks.values())

    def _drop(self, job: _Job) -> None:
        """Take ``job`` out of the queue with whatever of it was not handed out (under the lock)."""
        if job in self._jobs:
            self._jobs.remove(job)
            self._queued_texts -= job.remaining
            job.taken = len(job.order)

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            merged = 1
            try:
                if isinstance(taken, _Call):
                    self._run_call(taken.fn, taken.future)
                elif taken:
                    merged = len(taken)
                    self._run_batch(taken)
            finally:
                with self._cond:
                    self._busy = False
                    self._last_merged = merged

    @staticmethod
    def _run_call(call: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as exc:
            future.set_exception(exc)

    def _run_batch(self, chunks: list[_Chunk]) -> None:
        start = time.perf_counter()
        kind = chunks[0][0].kind
        texts = [job.texts[at] for job, positions in chunks for at in positions]
        try:
            vectors, truncated, total_tokens = self._embed(texts, kind)
            counter = self._counters[kind]
            counts = counter(texts) if counter is not None else None
        except BaseException as exc:
            with self._cond:
                for job, _ in chunks:
                    self._drop(job)  # the rest of a failed request is not run
            for job, _ in chunks:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - start
        # a smoothed cost per text: what the next 429's Retry-After is estimated from
        self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * elapsed / len(texts)
        offset = 0
        for job, positions in chunks:
            n = len(positions)
            if counts is not None:
                tokens = sum(counts[offset:offset + n])
            else:
                # no per-text tokenizer: the call's own count when it served one request, else words
                tokens = total_tokens if len(chunks) == 1 and total_tokens is not None else sum(
                    len(job.texts[at].split()) for at in positions)
            if job.queue_seconds is None:  # its first call: how long it waited for one
                job.queue_seconds = start - job.enqueued
                if self.metrics is not None:
                    self.metrics.queue_seconds.observe(job.queue_seconds)
            if self.metrics is not None:
                self.metrics.tokens.inc(tokens)
            rows = vectors[offset:offset + n]
            offset += n
            job.tokens += tokens
            if job.future.done():  # an earlier chunk of it failed
                continue
            if n == len(job.texts) and positions == list(range(n)):
                job.vectors = np.ascontiguousarray(rows)  # the whole request in one call, in input order
            else:
                if job.vectors is None:
                    job.vectors = np.empty((len(job.texts), rows.shape[1]), dtype=rows.dtype)
                job.vectors[positions] = rows
            job.done += n
            if job.done == len(job.texts):
                job.future.set_result(BatchResult(job.vectors, job.tokens, job.queue_seconds or 0.0))
        if self.metrics is not None:
            self.metrics.batch_texts.observe(len(texts))
            self.metrics.batch_requests.observe(len(chunks))
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
