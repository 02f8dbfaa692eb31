"""The :class:`EmbeddingProvider` protocol: the contract every backend, and any user's own provider, fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vecembed.types import Embeddings, HealthReport, ModelInfo

__all__ = ["EmbeddingProvider"]


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into vectors of one fixed vector space.

    The adapters accept any object with these members; a provider of your own
    does not need to inherit from anything vecembed ships.
    """

    @property
    def info(self) -> ModelInfo:
        """Model name, dimension, pooling, fingerprint and the rest."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Vectors for documents: float32, shape ``(len(texts), dimension)``, in input order."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """Vectors for queries, with the model's query prompt when it has one."""
        ...

    def embed_query(self, text: str) -> Embeddings:
        """One query vector, shape ``(dimension,)``."""
        ...

    def health_check(self) -> HealthReport:
        """Embed a probe and check it; never raises."""
        ...

    def close(self) -> None:
        """Release models, sessions and threads. Safe to call twice."""
        ...

    def __enter__(self) -> EmbeddingProvider: ...

    def __exit__(self, *exc_info: object) -> None: ...
