"""The :class:`EmbeddingProvider` protocol: the contract every backend, and any user's own provider, fits.

Beside it, the optional abilities a provider may have, each a small runtime-checkable
protocol that the engine, the cache and the server test with ``isinstance`` (never a
``getattr`` probe): :class:`CountingProvider`, :class:`TokenCountingProvider`,
:class:`PipelineProvider`, :class:`TokenizerProvider`. A provider of your own gains an
ability by having the member; it inherits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from vecembed.types import Embeddings, EmbedResult, HealthReport, ModelInfo

__all__ = [
    "CountingProvider",
    "EmbeddingProvider",
    "PipelineProvider",
    "TokenCountingProvider",
    "TokenizerProvider",
    "Tokenizes",
]


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


# -- optional abilities ----------------------------------------------------------------------------


@runtime_checkable
class CountingProvider(Protocol):
    """Document vectors with this call's counts: tokens embedded and texts truncated to ``max_tokens``.

    The ingest engine's report and the server's metrics take ``truncated`` from it; without it
    they say the count is unknown.
    """

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`EmbeddingProvider.embed_documents` as an :class:`~vecembed.types.EmbedResult` with counts."""
        ...


@runtime_checkable
class TokenCountingProvider(Protocol):
    """Counts tokens as its own embedding does (prompt included): the server's ``usage`` numbers."""

    def count_tokens(self, texts: Sequence[str], *, kind: str = "document") -> list[int]:
        """Tokens of each text; ``kind``: ``"document"`` or ``"query"`` (with the query prompt)."""
        ...


@runtime_checkable
class Tokenizes(Protocol):
    """A text pipeline's tokenizer step (:class:`vecembed.pipeline.TextPipeline`): its result has ``lengths``."""

    def tokenize(self, texts: Sequence[str]) -> Any:
        """Token ids and per-text ``lengths`` for ``texts``."""
        ...


@runtime_checkable
class PipelineProvider(Protocol):
    """A provider built on the shared text pipeline: its ``pipeline`` tokenizes (see :class:`Tokenizes`)."""

    @property
    def pipeline(self) -> Any:
        """The provider's :class:`~vecembed.pipeline.TextPipeline`."""
        ...


@runtime_checkable
class TokenizerProvider(Protocol):
    """A provider exposing its Hugging Face ``tokenizers.Tokenizer`` (the server decodes token-id input with it)."""

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (``decode_batch``, ``get_vocab_size``), or None."""
        ...
