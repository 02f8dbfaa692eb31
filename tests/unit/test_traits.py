"""Optional abilities are declared as runtime-checkable protocols (issue 21), and the engine reads them so.

A provider or store gains an ability by having the member; nothing is probed with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import vecembed
from vecembed.ingest import DEFAULT_BATCH_SIZE, resolve_batch_size
from vecembed.protocol import CountingProvider, EmbeddingProvider, PipelineProvider, TokenCountingProvider
from vecembed.store import AsyncClientStore, PreferredBatchSize, ServerOnly, needs_server, store_factory


class Plain:
    """A user's own provider with only the required members."""

    def __init__(self) -> None:
        self.info = vecembed.load_provider("mock", dimension=8).info

    def embed_documents(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), 8), np.float32) / np.sqrt(8)

    embed_queries = embed_documents

    def embed_query(self, text: str) -> Any:
        return self.embed_documents([text])[0]

    def health_check(self) -> Any: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any: return self
    def __exit__(self, *exc: object) -> None: ...


def test_provider_traits_are_declared_by_their_members() -> None:
    with vecembed.load_provider("mock", dimension=8) as mock:
        assert isinstance(mock, CountingProvider) and isinstance(mock, TokenCountingProvider)
    plain = Plain()
    assert isinstance(plain, EmbeddingProvider)
    assert not isinstance(plain, CountingProvider | TokenCountingProvider | PipelineProvider)


def test_store_traits_drive_the_batch_size_and_the_server_check() -> None:
    class Prefers:
        preferred_batch_size = 1000

    class Undecided:
        preferred_batch_size = None

    assert isinstance(Prefers(), PreferredBatchSize) and not isinstance(object(), PreferredBatchSize)
    assert resolve_batch_size(Prefers(), None) == (1000, True)  # type: ignore[arg-type]
    assert resolve_batch_size(Prefers(), 7) == (7, False)  # type: ignore[arg-type]
    assert resolve_batch_size(Undecided(), None) == (DEFAULT_BATCH_SIZE, False)  # type: ignore[arg-type]
    assert resolve_batch_size(object(), None) == (DEFAULT_BATCH_SIZE, False)  # type: ignore[arg-type]
    assert isinstance(store_factory("pgvector"), ServerOnly) and needs_server("pgvector")
    assert not isinstance(store_factory("qdrant"), ServerOnly) and not needs_server("qdrant")
    with vecembed.load_provider("mock", dimension=8) as provider, \
            vecembed.open_store("qdrant", "traits", provider) as store:
        # declared, and None: a sync client (the Store then allows sync calls anywhere)
        assert isinstance(store.backend, AsyncClientStore) and store.backend.loop is None
        assert store.count() == 0
