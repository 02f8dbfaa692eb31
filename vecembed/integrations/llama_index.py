"""LlamaIndex: :class:`VecembedEmbedding`, a ``llama_index.core`` ``BaseEmbedding`` backed by any vecembed provider.

::

    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from vecembed.integrations.llama_index import VecembedEmbedding

    embed_model = VecembedEmbedding(model="sentence-transformers/all-MiniLM-L6-v2", cache="./embeddings")
    index = VectorStoreIndex([TextNode(text="a plane is taking off")], embed_model=embed_model)
    index.as_retriever(similarity_top_k=1).retrieve("airplane")
    embed_model.fingerprint       # record it beside the vectors

Needs ``pip install 'vecembed[llama-index]'``.
"""

from __future__ import annotations

from typing import Any

from vecembed.aio import Worker
from vecembed.errors import MissingDependencyError
from vecembed.integrations import provider_for
from vecembed.protocol import EmbeddingProvider
from vecembed.types import ModelInfo

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.callbacks import CallbackManager
except ImportError:  # pragma: no cover - the extra is installed wherever the tests run
    raise MissingDependencyError("llama_index.core", "llama-index", "vecembed.integrations.llama_index") from None

__all__ = ["VecembedEmbedding"]


class VecembedEmbedding(BaseEmbedding):
    """LlamaIndex embeddings from a vecembed provider: nodes as documents, queries with the query prompt.

    ``provider``: an :class:`~vecembed.protocol.EmbeddingProvider` you made (you close
    it); or none, and one is built with :func:`vecembed.load_provider` from
    ``backend``, ``model`` and ``options`` (``cache=DIR``, ``quantize="int8"``,
    ``device=...``) — closed by :meth:`close`. ``model_name`` is the provider's model;
    the async methods run on at most ``async_concurrency`` worker threads.
    """

    # A pydantic model: what is not a declared field lives in private attributes.
    _provider: Any = PrivateAttr()
    _owns_provider: bool = PrivateAttr(default=False)
    _worker: Any = PrivateAttr()

    def __init__(
        self,
        provider: EmbeddingProvider | None = None,
        *,
        backend: str = "onnx",
        model: str | None = None,
        embed_batch_size: int = 64,
        callback_manager: CallbackManager | None = None,
        async_concurrency: int = 2,
        **options: Any,
    ) -> None:
        built, owns = provider_for(provider, backend, model, options)
        fields: dict[str, Any] = {"model_name": built.info.name, "embed_batch_size": embed_batch_size}
        if callback_manager is not None:
            fields["callback_manager"] = callback_manager
        try:
            super().__init__(**fields)
        except BaseException:
            if owns:
                built.close()
            raise
        self._provider = built
        self._owns_provider = owns
        self._worker = Worker(async_concurrency, name="vecembed-llama-index")

    @classmethod
    def class_name(cls) -> str:
        return "VecembedEmbedding"

    @property
    def provider(self) -> EmbeddingProvider:
        """The vecembed provider."""
        provider: EmbeddingProvider = self._provider
        return provider

    @property
    def info(self) -> ModelInfo:
        """The provider's :class:`~vecembed.types.ModelInfo`."""
        return self.provider.info

    @property
    def fingerprint(self) -> str:
        """The vector space's fingerprint: record it with the vectors, compare it before mixing them."""
        return self.provider.info.fingerprint

    def _get_query_embedding(self, query: str) -> list[float]:
        vector: list[float] = self.provider.embed_query(query).tolist()
        return vector

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.provider.embed_documents(list(texts)).tolist()
        return vectors

    async def _aget_query_embedding(self, query: str) -> list[float]:
        result: list[float] = await self._worker.run(self._get_query_embedding, query)
        return result

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        result: list[list[float]] = await self._worker.run(self._get_text_embeddings, list(texts))
        return result

    def close(self) -> None:
        """Stop the worker threads; close the provider if it was built here. Safe to call twice."""
        self._worker.shutdown()
        if self._owns_provider:
            self.provider.close()
