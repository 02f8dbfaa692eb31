"""What every provider shares beyond the text pipeline: the one-query helper, health, stats, closing.

This is a thin mixin, not a framework: a backend implements ``info``,
``embed_documents`` and ``embed_queries`` (usually by delegating to a
:class:`~vecembed.pipeline.TextPipeline`) and gets the rest from here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vecembed.aio import Worker
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.health import probe_provider
from vecembed.types import Embeddings, EmbeddingStats, EmbedResult, HealthReport, ModelInfo

if TYPE_CHECKING:
    from vecembed.pipeline import TextPipeline

__all__ = ["PipelineProvider", "ProviderBase"]


class ProviderBase:
    """Mixin giving :class:`~vecembed.protocol.EmbeddingProvider` its convenience members."""

    _closed: bool = False
    #: How many async calls (``aembed_*``) may embed at once on this provider's worker threads.
    async_concurrency: int = 2
    _worker: Worker | None = None
    _worker_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: a closed provider refuses to embed and reports itself unhealthy."""
        return self._closed

    @property
    def stats(self) -> EmbeddingStats:
        """Cumulative counters: texts, tokens, truncated texts, batches."""
        stats: EmbeddingStats | None = getattr(self, "_stats", None)
        if stats is None:
            stats = EmbeddingStats()
            self._stats = stats
        return stats

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:  # pragma: no cover
        raise NotImplementedError

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:  # pragma: no cover
        raise NotImplementedError

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with this call's own counts (what the ingest engine reports as truncated)."""
        return EmbedResult(self.embed_documents(texts))  # pragma: no cover - every backend counts

    def embed_query(self, text: str) -> Embeddings:
        """One query vector, shape ``(dimension,)``: the same row ``embed_queries([text])`` gives."""
        if not isinstance(text, str):
            raise InvalidInputError(
                f"embed_query expects one str, got {type(text).__name__}; "
                "use embed_queries() for a list of queries"
            )
        vector: Embeddings = self.embed_queries([text])[0]
        return vector

    # -- async: the same calls on a bounded pool of worker threads, never on the event loop ----

    def _async_worker(self) -> Worker:
        with ProviderBase._worker_lock:
            if self._worker is None:
                self._worker = Worker(self.async_concurrency, name=f"vecembed-{type(self).__name__}")
            return self._worker

    async def aembed_documents(self, texts: Sequence[str]) -> Embeddings:
        """:meth:`embed_documents` on a worker thread (at most ``async_concurrency`` at once)."""
        return await self._async_worker().run(self.embed_documents, _snapshot(texts))

    async def aembed_queries(self, texts: Sequence[str]) -> Embeddings:
        """:meth:`embed_queries` on a worker thread (at most ``async_concurrency`` at once)."""
        return await self._async_worker().run(self.embed_queries, _snapshot(texts))

    async def aembed_query(self, text: str) -> Embeddings:
        """:meth:`embed_query` on a worker thread (at most ``async_concurrency`` at once)."""
        return await self._async_worker().run(self.embed_query, text)

    def health_check(self) -> HealthReport:
        """Embed a probe and check shape, dtype, finiteness and norm. Never raises."""
        if self._closed:
            return HealthReport(ok=False, latency_ms=0.0, detail="provider is closed", component="provider")
        return probe_provider(self)

    def _check_open(self) -> None:
        if self._closed:
            raise ProviderUnavailableError(f"{type(self).__name__} is closed; load a new provider")

    def close(self) -> None:
        """Release resources. Safe to call more than once."""
        self._closed = True
        if self._worker is not None:
            self._worker.shutdown()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            info = self.info
        except Exception:
            return f"<{type(self).__name__}>"
        return f"<{type(self).__name__} {info.name} dim={info.dimension} {info.device}>"



class PipelineProvider(ProviderBase):
    """A backend whose vectors come from the shared :class:`~vecembed.pipeline.TextPipeline`.

    It sets ``pipeline`` and ``_info`` and says its prompts; the protocol's calls are these, the same for
    every such backend (torch, onnx, openvino, gguf).
    """

    pipeline: TextPipeline
    _info: ModelInfo

    @property
    def document_prompt(self) -> str:
        """Prepended to every document (the model's own, or the caller's override); "" for none."""
        return ""

    @property
    def query_prompt(self) -> str:
        """Prepended to every query; "" for none."""
        return ""

    @property
    def info(self) -> ModelInfo:
        return self._info

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Document vectors (with the model's document prompt, if any)."""
        return self.embed_documents_counted(texts).vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with this call's token and truncation counts."""
        self._check_open()
        return self.pipeline.embed_counted(texts, prompt=self.document_prompt, what="documents")

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """Query vectors (with the model's query prompt, if any)."""
        self._check_open()
        return self.pipeline.embed(texts, prompt=self.query_prompt, what="queries")

    def close(self) -> None:
        if not self._closed:
            self.pipeline.close()
        super().close()

def _snapshot(texts: Any) -> Any:
    """A copy of a list of texts taken before the worker thread runs (the caller may change theirs meanwhile).

    Anything that is not a list or tuple goes to the sync call as it is, to be refused there with its index.
    """
    return list(texts) if isinstance(texts, list | tuple) else texts
