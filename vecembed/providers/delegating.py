"""DelegatingProvider: the base of every provider that wraps another one and changes a part of what it does.

A cache, a recorder, a counter, a timer: each is the wrapped provider with one
call changed. The base forwards the whole protocol (``info``, the embed calls,
``health_check``, ``close``), so a subclass writes only the call it changes::

    class Counting(vecembed.DelegatingProvider):
        def embed_documents_counted(self, texts):
            self.seen += len(texts)
            return super().embed_documents_counted(texts)

Documents reach a provider by two calls — ``embed_documents`` and ``embed_documents_counted`` (the
one the ingest engine prefers: it also counts tokens and truncations). A subclass that overrides only
one of them still sees every document: the other one goes through it (so call ``super()`` of the
same method in it). Override both when both need their own code; then each ``super()`` call forwards
to the wrapped provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vecembed.errors import InvalidInputError
from vecembed.protocol import CountingProvider, EmbeddingProvider
from vecembed.providers.base import ProviderBase
from vecembed.types import Embeddings, EmbedResult, HealthReport, ModelInfo

__all__ = ["DelegatingProvider"]


class DelegatingProvider(ProviderBase):
    """Forwards :class:`~vecembed.protocol.EmbeddingProvider` to ``provider``; subclass it to change one call.

    ``info`` and ``health_check()`` are the wrapped provider's (the vectors are its
    vectors, the same vector space); ``close()`` closes it too unless
    ``close_provider=False`` (a provider you still use elsewhere). The async calls,
    ``embed_query`` and ``stats`` come from :class:`~vecembed.providers.base.ProviderBase`
    and go through this object's own calls, so an override is seen there as well.
    """

    def __init__(self, provider: EmbeddingProvider, *, close_provider: bool = True) -> None:
        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"{type(self).__name__} wraps an EmbeddingProvider (e.g. vecembed.load_provider('onnx')), "
                f"got {type(provider).__name__}"
            )
        self._provider = provider
        self._close_provider = close_provider

    @property
    def provider(self) -> EmbeddingProvider:
        """The wrapped provider."""
        return self._provider

    @property
    def info(self) -> ModelInfo:
        """The wrapped provider's: a wrapper returns its vectors, so it is the same vector space."""
        return self._provider.info

    # -- documents: two calls, one path (see the module docstring) -----------------------------

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(DelegatingProvider, name)

    def forward_documents(self, texts: Sequence[str]) -> EmbedResult:
        """The wrapped provider's document vectors with its counts (``None`` where it does not count)."""
        if isinstance(self._provider, CountingProvider):
            result: Any = self._provider.embed_documents_counted(texts)
            if isinstance(result, EmbedResult):
                return result
            return EmbedResult(result)  # a user's own method of that name that returns bare vectors
        return EmbedResult(self._provider.embed_documents(texts))

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """The wrapped provider's document vectors (through this class's ``embed_documents_counted`` if overridden)."""
        if self._overrides("embed_documents_counted") and not self._overrides("embed_documents"):
            return self.embed_documents_counted(texts).vectors
        return self.forward_documents(texts).vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """Document vectors with the wrapped provider's counts (via ``embed_documents`` if only it is overridden)."""
        if self._overrides("embed_documents") and not self._overrides("embed_documents_counted"):
            return EmbedResult(self.embed_documents(texts))  # the override's own vectors; counts unknown
        return self.forward_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """The wrapped provider's query vectors."""
        return self._provider.embed_queries(texts)

    # -- health and lifetime ------------------------------------------------------------------

    def health_check(self) -> HealthReport:
        """The wrapped provider's health; a closed wrapper reports itself closed. Never raises."""
        if self._closed:
            return HealthReport(ok=False, latency_ms=0.0, detail="provider is closed", component="provider")
        return self._provider.health_check()

    def close(self) -> None:
        """Close this wrapper and (unless ``close_provider=False``) the wrapped provider. Safe to call twice."""
        if not self._closed and self._close_provider:
            self._provider.close()
        super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} around {self._provider!r}>"
