"""Async on providers (worker threads, bounded, never on the event loop) and the integration classes' contracts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.aio import Worker
from vecembed.providers.mock import MockProvider
from vecembed.types import Embeddings


class Gated(MockProvider):
    """Embeds only once ``gate`` is set, and records how many calls ran at once."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        self._count_lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        with self._count_lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if not self.gate.wait(timeout=30):
                raise TimeoutError("the event loop never opened the gate: it was blocked")
            time.sleep(0.01)
            return super().embed_documents(texts)
        finally:
            with self._count_lock:
                self.running -= 1


def test_provider_async_runs_off_the_loop_with_bounded_concurrency() -> None:
    provider = Gated(dimension=8)
    provider.async_concurrency = 2

    async def main() -> list[Embeddings]:
        calls = [asyncio.ensure_future(provider.aembed_documents([f"text {i}"])) for i in range(6)]
        await asyncio.sleep(0)
        # The loop is free while the embeds wait on the gate: it is the loop that opens it.
        provider.gate.set()
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert [r.tobytes() for r in results] == [provider.embed_documents([f"text {i}"]).tobytes() for i in range(6)]
    assert 1 <= provider.most <= 2
    assert all(name.startswith("vecembed-Gated") for name in provider.threads - {threading.current_thread().name})
    provider.close()


def test_provider_async_queries_and_errors() -> None:
    with MockProvider(dimension=8, query_prompt="q: ") as provider:
        texts = ["a", "b"]

        async def main() -> tuple[Embeddings, Embeddings]:
            many = await provider.aembed_queries(texts)
            texts.append("changed after the call")  # the call works on a copy
            return many, await provider.aembed_query("a")

        many, one = asyncio.run(main())
        assert many.shape == (2, 8) and many[0].tobytes() == one.tobytes()
        with pytest.raises(vecembed.InvalidInputError):
            asyncio.run(provider.aembed_documents(["ok", 3]))  # type: ignore[list-item]
    with pytest.raises(vecembed.ProviderUnavailableError):
        asyncio.run(provider.aembed_documents(["closed"]))


def test_worker_validates_and_restarts() -> None:
    with pytest.raises(vecembed.InvalidInputError):
        Worker(0)
    worker = Worker(1)
    assert asyncio.run(worker.run(sum, [1, 2])) == 3
    worker.shutdown()
    worker.shutdown()
    assert asyncio.run(worker.run(lambda: threading.current_thread().name)).startswith("vecembed-async")


def test_langchain_embeddings_contract() -> None:
    pytest.importorskip("langchain_core", reason="pip install 'vecembed[langchain]'")
    from langchain_core.embeddings import Embeddings

    from vecembed.integrations.langchain import VecembedEmbeddings

    with VecembedEmbeddings(backend="mock", dimension=8, query_prompt="q: ") as emb:
        assert isinstance(emb, Embeddings) and emb.info.backend == "mock"
        provider = emb.provider
        docs = emb.embed_documents(["a b", "c"])
        assert np.array_equal(np.asarray(docs, dtype=np.float32), provider.embed_documents(["a b", "c"]))
        assert emb.embed_query("a b") == provider.embed_query("a b").tolist() != docs[0]
        assert asyncio.run(emb.aembed_documents(["a b", "c"])) == docs
        assert asyncio.run(emb.aembed_query("a b")) == emb.embed_query("a b")
        assert emb.fingerprint in repr(emb)
    assert provider.closed  # built here, closed here
    mine = MockProvider(dimension=8)
    with pytest.raises(vecembed.InvalidInputError, match="not both"):
        VecembedEmbeddings(mine, model="x")
    with pytest.raises(vecembed.InvalidInputError, match="EmbeddingProvider"):
        VecembedEmbeddings(object())  # type: ignore[arg-type]


def test_langchain_embeddings_with_the_cache(tmp_path: Any) -> None:
    pytest.importorskip("langchain_core", reason="pip install 'vecembed[langchain]'")
    from vecembed.integrations.langchain import VecembedEmbeddings

    with VecembedEmbeddings(backend="mock", dimension=8, cache=tmp_path) as emb:
        first = emb.embed_documents(["cached text"])
        assert isinstance(emb.provider, vecembed.CachedProvider)
        assert emb.embed_documents(["cached text"]) == first and emb.provider.hits == 1


def test_llama_index_embedding_contract() -> None:
    pytest.importorskip("llama_index.core", reason="pip install 'vecembed[llama-index]'")
    from llama_index.core.base.embeddings.base import BaseEmbedding

    from vecembed.integrations.llama_index import VecembedEmbedding

    mine = MockProvider(dimension=8, query_prompt="q: ")
    emb = VecembedEmbedding(mine, embed_batch_size=4)
    assert isinstance(emb, BaseEmbedding) and emb.class_name() == "VecembedEmbedding"
    assert emb.model_name == "vecembed/mock" and emb.embed_batch_size == 4 and emb.info is mine.info
    texts = [f"text {i}" for i in range(10)]
    batch = emb.get_text_embedding_batch(texts)
    assert np.array_equal(np.asarray(batch, dtype=np.float32), mine.embed_documents(texts))
    assert emb.get_text_embedding("text 0") == batch[0]
    assert emb.get_query_embedding("text 0") == mine.embed_query("text 0").tolist() != batch[0]
    assert asyncio.run(emb.aget_text_embedding_batch(texts)) == batch
    assert asyncio.run(emb.aget_text_embedding("text 1")) == batch[1]
    assert asyncio.run(emb.aget_query_embedding("text 0")) == emb.get_query_embedding("text 0")
    assert emb.fingerprint == mine.info.fingerprint
    emb.close()
    assert not mine.closed
    built = VecembedEmbedding(backend="mock", dimension=8)
    built.close()
    assert built.provider.closed
    with pytest.raises(vecembed.InvalidInputError, match="not both"):
        VecembedEmbedding(mine, dimension=8)
