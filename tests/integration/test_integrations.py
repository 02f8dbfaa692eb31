"""LangChain and LlamaIndex with the real model: the same top-k as vecembed's own store path.

Forty STS-B sentences go into vecembed's Qdrant store (in memory), LangChain's
``InMemoryVectorStore``, ``langchain-chroma`` and ``langchain-qdrant`` (when installed) and
a LlamaIndex ``VectorStoreIndex``; five held-out queries must bring back the same
documents in the same order from each. Nothing here loads an LLM or downloads anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import vecembed

pytest_plugins = ["backend_fixtures"]

pytestmark = pytest.mark.integration

K = 5


@pytest.fixture(scope="module")
def corpus(sts_sentences: list[str]) -> tuple[list[str], list[str]]:
    return sts_sentences[:40], sts_sentences[100:105]


@pytest.fixture(scope="module")
def expected(onnx_provider: Any, corpus: tuple[list[str], list[str]]) -> list[list[str]]:
    """Top-k ids through vecembed's own store path."""
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    docs, queries = corpus
    with vecembed.open_store("qdrant", "integrations", onnx_provider) as store:
        store.ingest([(str(i), text) for i, text in enumerate(docs)])
        return [[hit.id for hit in hits] for hits in store.search_many(queries, k=K)]


def test_langchain_in_memory_store_round_trip(onnx_provider: Any, corpus: tuple[list[str], list[str]],
                                              expected: list[list[str]]) -> None:
    pytest.importorskip("langchain_core", reason="pip install 'vecembed[langchain]'")
    from langchain_core.vectorstores import InMemoryVectorStore

    from vecembed.integrations.langchain import VecembedEmbeddings

    docs, queries = corpus
    embeddings = VecembedEmbeddings(onnx_provider)
    assert embeddings.fingerprint == onnx_provider.info.fingerprint
    vectors = embeddings.embed_documents(docs[:3])
    assert np.array_equal(np.asarray(vectors, dtype=np.float32), onnx_provider.embed_documents(docs[:3]))
    store = InMemoryVectorStore(embeddings)
    store.add_texts(docs, ids=[str(i) for i in range(len(docs))])
    got = [[d.id for d in store.similarity_search(q, k=K)] for q in queries]
    assert got == expected

    async def run() -> list[list[str | None]]:
        other = InMemoryVectorStore(embeddings)
        await other.aadd_texts(docs, ids=[str(i) for i in range(len(docs))])
        found = await asyncio.gather(*(other.asimilarity_search(q, k=K) for q in queries))
        return [[d.id for d in hits] for hits in found]

    assert asyncio.run(run()) == expected
    embeddings.close()
    assert not onnx_provider.closed  # a provider passed in stays the caller's


def test_langchain_chroma_round_trip(onnx_provider: Any, corpus: tuple[list[str], list[str]],
                                     expected: list[list[str]]) -> None:
    langchain_chroma = pytest.importorskip("langchain_chroma", reason="pip install langchain-chroma")
    from vecembed.integrations.langchain import VecembedEmbeddings

    docs, queries = corpus
    store = langchain_chroma.Chroma(collection_name="vecembed-langchain", embedding_function=VecembedEmbeddings(
        onnx_provider), collection_metadata={"hnsw:space": "cosine"})
    try:
        store.add_texts(docs, ids=[str(i) for i in range(len(docs))])
        got = [[d.id for d in store.similarity_search(q, k=K)] for q in queries]
    finally:
        store.delete_collection()
    assert got == expected


def test_langchain_qdrant_round_trip(onnx_provider: Any, corpus: tuple[list[str], list[str]],
                                     expected: list[list[str]]) -> None:
    langchain_qdrant = pytest.importorskip("langchain_qdrant", reason="pip install langchain-qdrant")
    from vecembed.integrations.langchain import VecembedEmbeddings

    docs, queries = corpus
    store = langchain_qdrant.QdrantVectorStore.from_texts(
        docs, VecembedEmbeddings(onnx_provider), metadatas=[{"doc": str(i)} for i in range(len(docs))],
        location=":memory:", collection_name="vecembed-langchain")
    got = [[d.metadata["doc"] for d in store.similarity_search(q, k=K)] for q in queries]
    assert got == expected


def test_llama_index_vector_store_index(onnx_provider: Any, corpus: tuple[list[str], list[str]],
                                        expected: list[list[str]]) -> None:
    pytest.importorskip("llama_index.core", reason="pip install 'vecembed[llama-index]'")
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from vecembed.integrations.llama_index import VecembedEmbedding

    docs, queries = corpus
    embed_model = VecembedEmbedding(onnx_provider)
    assert embed_model.fingerprint == onnx_provider.info.fingerprint
    assert embed_model.model_name == onnx_provider.info.name
    # Nodes with our ids (Documents would be split into nodes with random ids); a retriever, so no LLM.
    index = VectorStoreIndex([TextNode(text=t, id_=str(i)) for i, t in enumerate(docs)], embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=K)
    got = [[n.node.node_id for n in retriever.retrieve(q)] for q in queries]
    assert got == expected

    async def run() -> list[list[str]]:
        found = await asyncio.gather(*(retriever.aretrieve(q) for q in queries))
        return [[n.node.node_id for n in hits] for hits in found]

    assert asyncio.run(run()) == expected
    query = embed_model.get_query_embedding(queries[0])
    assert np.array_equal(np.asarray(query, dtype=np.float32), onnx_provider.embed_query(queries[0]))
