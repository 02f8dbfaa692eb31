"""The store's async API: the sync calls on the store's worker threads, same results, the loop left free."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import vecembed
from vecembed.providers.mock import MockProvider
from vecembed.types import Embeddings

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

DOCS = [("a", "the cat sat on the mat"), ("b", "dogs chase cats in the park"), ("c", "stock markets fell today"),
        ("d", "a kitten naps on a rug"), ("e", "interest rates rose again")]


class LoopWatcher(MockProvider):
    """Records the threads it embeds on."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.threads: set[str] = set()

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        self.threads.add(threading.current_thread().name)
        return super().embed_queries(texts)


def test_async_store_matches_the_sync_store() -> None:
    provider = LoopWatcher(dimension=32)

    async def main() -> tuple[Any, ...]:
        async with await vecembed.aopen_store("qdrant", "async-docs", provider) as store:
            assert await store.acount() == 0
            report = await store.aingest(DOCS, batch_size=2)
            hits, many = await asyncio.gather(store.asearch("cat on a mat", k=2),
                                              store.asearch_many(["cats", "markets"], k=1))
            sync_hits = store.search("cat on a mat", k=2)
            deleted = await store.adelete(["e"])
            health = await store.ahealth_check()
            return report, hits, many, sync_hits, deleted, await store.acount(), health

    report, hits, many, sync_hits, deleted, count, health = asyncio.run(main())
    assert report.written == 5 and report.documents == 5
    assert [h.id for h in hits] == [h.id for h in sync_hits] and hits[0].id == "a"
    assert [h.score for h in hits] == [h.score for h in sync_hits]
    assert len(many) == 2 and many[1][0].id == "c"
    assert deleted == 1 and count == 4 and health.ok
    assert any(name.startswith("vecembed-store-qdrant") for name in provider.threads)


def test_async_store_refuses_bad_input_like_the_sync_one() -> None:
    async def main() -> None:
        store = await vecembed.aopen_store("qdrant", "async-bad", MockProvider(dimension=8))
        store.async_concurrency = 2
        try:
            with pytest.raises(vecembed.InvalidInputError):
                await store.asearch(["not", "a", "str"], k=1)  # type: ignore[arg-type]
            with pytest.raises(vecembed.InvalidInputError):
                await store.asearch("q", k=0)
            assert await store.asearch("nothing stored yet", k=3) == []
            assert store._async_worker().concurrency == 2
        finally:
            await store.aclose()

    asyncio.run(main())
