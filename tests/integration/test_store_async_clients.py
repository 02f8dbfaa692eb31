"""Stores on native async clients, inside an asyncio app: AsyncQdrantClient in memory, chromadb's AsyncHttpClient
against a real ``chroma run`` server.

The app's event loop is the test's ``asyncio.run`` loop (as FastAPI's is); the store is opened with
``aopen_store(..., client=<async client>)``. Checked: every database call runs on that loop, the loop stays free
while an ingest runs, the results equal a sync store's, and the guards hold (another model refused before any
write, a sync call on the loop refused rather than a deadlock, a sync ``open_store`` refused). The whole store
contract over these clients is in test_store_conformance.py (the ``*-async-*`` kinds).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import vecembed
from vecembed.providers.mock import MockProvider
from vecembed.types import EmbedResult

pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from chromadb.api.models.AsyncCollection import AsyncCollection
from qdrant_client import AsyncQdrantClient, QdrantClient

pytestmark = pytest.mark.integration

DOCS = [
    {"id": f"d{i}", "text": f"document {i} is about {'cats' if i % 2 else 'dogs'} and the number {i}",
     "metadata": {"parity": "odd" if i % 2 else "even"}}
    for i in range(40)
]
QUERIES = ["document 13", "the number 21"]


@dataclass
class AsyncDb:
    """One database reached through its native async client, and how to look behind vecembed."""

    db: str
    connect: Callable[[], Awaitable[Any]]  # the async client, made on the running loop
    sync_client: Callable[[], Any]  # a sync client for the reference store
    writes: tuple[type, str]  # the async method every write goes through, and the one every search does
    queries: tuple[type, str]

    async def own_count(self, client: Any, collection: str) -> int | None:
        """Records stored, read by the async client itself; None when the collection does not exist."""
        if self.db == "qdrant":
            if not await client.collection_exists(collection):
                return None
            return int((await client.count(collection, exact=True)).count)
        from chromadb.errors import NotFoundError

        try:
            return int(await (await client.get_collection(collection)).count())
        except NotFoundError:
            return None


@pytest.fixture(params=["qdrant-memory", "chroma-server"])
def adb(request: pytest.FixtureRequest) -> AsyncDb:
    if request.param == "qdrant-memory":

        async def qdrant() -> Any:
            return AsyncQdrantClient(":memory:")

        return AsyncDb("qdrant", qdrant, lambda: QdrantClient(":memory:"),
                       (AsyncQdrantClient, "upsert"), (AsyncQdrantClient, "query_batch_points"))
    import chromadb

    endpoint = request.getfixturevalue("chroma_server")

    async def chroma() -> Any:
        return await chromadb.AsyncHttpClient(host=endpoint.host, port=endpoint.port, ssl=endpoint.ssl)

    return AsyncDb("chroma", chroma, endpoint.client, (AsyncCollection, "upsert"), (AsyncCollection, "query"))


@pytest.fixture
def name() -> str:
    return f"aclient-{uuid.uuid4().hex[:12]}"


def spy_threads(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> list[int]:
    """The threads that ``cls.method`` (a coroutine function) runs on, from now on."""
    threads: list[int] = []
    original = getattr(cls, method)

    async def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, spy)
    return threads


class GatedProvider(MockProvider):
    """Embeds documents only once a coroutine on the event loop opened the gate: a blocked loop never would."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        if not self.gate.wait(timeout=60):  # a bound on the test, so that the bug fails rather than hangs
            raise RuntimeError("no coroutine ran on the event loop while the ingest was running")
        return super().embed_documents_counted(texts)


def test_a_store_on_an_async_client_equals_a_sync_store(adb: AsyncDb, name: str) -> None:
    provider = MockProvider(dimension=32)

    async def main() -> tuple[Any, ...]:
        client = await adb.connect()
        async with await vecembed.aopen_store(adb.db, name, provider, client=client) as store:
            first = await store.aingest(DOCS, batch_size=16)
            again = await store.aingest(DOCS, batch_size=16)
            stored = await adb.own_count(client, name)
            hits, many = await asyncio.gather(store.asearch("cats and the number 7", k=5),
                                              store.asearch_many(QUERIES, k=3, where={"parity": "odd"}))
            deleted = await store.adelete(["d7", "d8"])
            after = (await store.acount(), await adb.own_count(client, name))
            health = await store.ahealth_check()
        return first, again, stored, hits, many, deleted, after, health

    first, again, stored, hits, many, deleted, after, health = asyncio.run(main())
    assert (first.written, first.skipped, first.batches) == (40, 0, 3)
    assert (again.written, again.skipped) == (0, 40)  # re-ingest: nothing embedded or written again
    assert stored == 40 and deleted == 2 and after == (38, 38)
    assert health.ok, health.detail

    with vecembed.open_store(adb.db, f"{name}-sync", provider, client=adb.sync_client()) as reference:
        reference.ingest(DOCS, batch_size=16)
        sync_hits = reference.search("cats and the number 7", k=5)
        sync_many = reference.search_many(QUERIES, k=3, where={"parity": "odd"})
    assert [h.id for h in hits] == [h.id for h in sync_hits] and hits[0].id == "d7"
    assert [h.score for h in hits] == pytest.approx([h.score for h in sync_hits], abs=1e-5)
    assert [row[0].id for row in many] == [row[0].id for row in sync_many] == ["d13", "d21"]
    # Further down, equal scores (texts that differ in one number) may come in either order: compare scores.
    assert [[h.score for h in row] for row in many] == [
        pytest.approx([h.score for h in row], abs=1e-5) for row in sync_many
    ]
    assert all(h.metadata == {"parity": "odd"} for row in many for h in row)


def test_database_calls_run_on_the_apps_loop_which_stays_free(
    adb: AsyncDb, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = spy_threads(monkeypatch, *adb.writes)
    queries = spy_threads(monkeypatch, *adb.queries)
    provider = GatedProvider(dimension=32)

    async def main() -> tuple[Any, ...]:
        client = await adb.connect()
        store = await vecembed.aopen_store(adb.db, name, provider, client=client)

        async def open_gate() -> None:
            await asyncio.sleep(0)
            provider.gate.set()

        report, _ = await asyncio.gather(store.aingest(DOCS, batch_size=8), open_gate())
        hits = await store.asearch("dogs", k=2)
        concurrency = store._async_worker().concurrency
        await store.aclose()
        return threading.get_ident(), report, hits, concurrency, await adb.own_count(client, name)

    loop_thread, report, hits, concurrency, stored = asyncio.run(main())
    assert report.written == 40 == stored and len(hits) == 2
    assert len(writes) == report.batches == 5 and set(writes) == {loop_thread}  # every write on the app's loop
    assert queries and set(queries) == {loop_thread}
    assert concurrency == 2  # a worker may embed the next query while another waits for the database


def test_another_model_is_refused_before_any_write(adb: AsyncDb, name: str) -> None:
    async def main() -> tuple[int | None, ...]:
        client = await adb.connect()
        with vecembed.load_provider("mock", dimension=32) as ours:
            async with await vecembed.aopen_store(adb.db, name, ours, client=client) as store:
                await store.aingest(DOCS[:10])
        with vecembed.load_provider("mock", dimension=32, seed=7) as other, pytest.raises(vecembed.ModelMismatchError):
            await vecembed.aopen_store(adb.db, name, other, client=client)
        with vecembed.load_provider("mock", dimension=16) as smaller, pytest.raises(vecembed.DimensionMismatchError):
            await vecembed.aopen_store(adb.db, name, smaller, client=client)
        return (await adb.own_count(client, name),)

    assert asyncio.run(main()) == (10,)


def test_a_sync_call_on_the_loop_is_refused_and_writes_nothing(adb: AsyncDb, name: str) -> None:
    provider = MockProvider(dimension=32)

    async def main() -> tuple[Any, ...]:
        client = await adb.connect()
        store = await vecembed.aopen_store(adb.db, name, provider, client=client)
        with pytest.raises(vecembed.EventLoopError, match=r"store\.ingest\(\) was called on the event loop") as err:
            store.ingest(DOCS)  # would block the loop its own database calls need: refused, not a deadlock
        for method, call in [("search", lambda: store.search("cats")), ("search_many", lambda: store.search_many([])),
                             ("count", store.count), ("delete", lambda: store.delete(["d1"]))]:
            with pytest.raises(vecembed.EventLoopError, match=rf"Use `await store\.a{method}\(\.\.\.\)` instead"):
                call()
        unhealthy = store.health_check()  # never raises: the report says why
        nothing = await adb.own_count(client, name)
        report = await store.aingest(DOCS[:3])  # the async API on the same store works
        await store.aclose()
        return err.value, unhealthy, nothing, report

    error, unhealthy, nothing, report = asyncio.run(main())
    assert isinstance(error, RuntimeError) and "`await store.aingest(...)`" in str(error)
    assert not unhealthy.ok and "EventLoopError" in unhealthy.detail
    assert nothing is None and report.written == 3


def test_sync_open_store_refuses_an_async_client(adb: AsyncDb, name: str) -> None:
    client = asyncio.run(adb.connect())
    with vecembed.load_provider("mock", dimension=32) as provider, pytest.raises(
        vecembed.EventLoopError, match=rf"await vecembed\.aopen_store\('{adb.db}'"
    ):
        vecembed.open_store(adb.db, name, provider, client=client)
    assert asyncio.run(adb.own_count(client, name)) is None
