"""LangChain: :class:`VecembedEmbeddings`, a ``langchain_core.embeddings.Embeddings`` backed by any vecembed provider.

::

    from vecembed.integrations.langchain import VecembedEmbeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = VecembedEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2", cache="./embeddings")
    store = InMemoryVectorStore(embeddings)
    store.add_texts(["a plane is taking off", "a man plays the flute"])
    store.similarity_search("airplane", k=1)
    embeddings.fingerprint        # record it beside the vectors

Needs ``pip install 'vecembed[langchain]'``.
"""

from __future__ import annotations

from typing import Any

from vecembed.aio import Worker
from vecembed.errors import MissingDependencyError
from vecembed.integrations import provider_for
from vecembed.protocol import EmbeddingProvider
from vecembed.types import ModelInfo

try:
    from langchain_core.embeddings import Embeddings
except ImportError:  # pragma: no cover - the extra is installed wherever the tests run
    raise MissingDependencyError("langchain_core", "langchain", "vecembed.integrations.langchain") from None

__all__ = ["VecembedEmbeddings"]


class VecembedEmbeddings(Embeddings):
    """LangChain embeddings from a vecembed provider: documents with ``embed_documents``, queries with the query prompt.

    ``provider``: an :class:`~vecembed.protocol.EmbeddingProvider` you made (you close
    it); or none, and one is built with :func:`vecembed.load_provider` from
    ``backend``, ``model`` and ``options`` (``cache=DIR``, ``quantize="int8"``,
    ``device=...``) — closed by :meth:`close`. The async methods run on at most
    ``async_concurrency`` worker threads, never on the event loop.
    """

    def __init__(
        self,
        provider: EmbeddingProvider | None = None,
        *,
        backend: str = "onnx",
        model: str | None = None,
        async_concurrency: int = 2,
        **options: Any,
    ) -> None:
        self.provider, self._owns_provider = provider_for(provider, backend, model, options)
        self._worker = Worker(async_concurrency, name="vecembed-langchain")

    @property
    def info(self) -> ModelInfo:
        """The provider's :class:`~vecembed.types.ModelInfo`."""
        return self.provider.info

    @property
    def fingerprint(self) -> str:
        """The vector space's fingerprint: record it with the vectors, compare it before mixing them."""
        return self.provider.info.fingerprint

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Document vectors, one list of floats per text, in input order."""
        vectors: list[list[float]] = self.provider.embed_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """One query vector (with the model's query prompt, when it has one)."""
        vector: list[float] = self.provider.embed_query(text).tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` on a worker thread."""
        return await self._worker.run(self.embed_documents, list(texts))

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` on a worker thread."""
        return await self._worker.run(self.embed_query, text)

    def close(self) -> None:
        """Stop the worker threads; close the provider if it was built here. Safe to call twice."""
        self._worker.shutdown()
        if self._owns_provider:
            self.provider.close()

    def __enter__(self) -> VecembedEmbeddings:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.provider.info
        return f"VecembedEmbeddings({info.name!r}, backend={info.backend!r}, fingerprint={info.fingerprint!r})"
