"""The store conformance suite: every store vecembed ships passes the same tests, on every kind of deployment.

Parametrised over the reference ``memory`` store (:mod:`vecembed.memory_store`), Chroma in memory, Chroma on
disk, a real Chroma server (``chroma run``, started by the fixture), Qdrant in memory, Qdrant on disk, and a
real Qdrant server (``VECEMBED_QDRANT_URL`` or testcontainers; skips with the reason when neither answers).
A new store passes by adding its kinds here; a store that keeps sparse vectors adds them to ``SPARSE_KINDS`` too
(the hybrid-search suite at the end of this file).

The ``*-async-*`` kinds run the same tests over native async clients (``AsyncQdrantClient``, chromadb's
``AsyncHttpClient``) that belong to an event loop running in a thread of its own: the store is opened with
``aopen_store`` on that loop, and the tests' sync calls send every database call to it through the bridge.

Each test checks the contract through the public API (:func:`vecembed.open_store`) and the database through
its own client (what is really stored), with the mock provider (fast, deterministic) unless a real model is
the point.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.errors import (
    DimensionMismatchError,
    IngestError,
    InvalidInputError,
    InvalidVectorsError,
    ModelMismatchError,
    UnsupportedError,
)
from vecembed.sparse import RRF_K
from vecembed.types import EmbedResult

pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from pg_fixtures import pg_url  # noqa: F401
from qdrant_client import QdrantClient
from qdrant_fixtures import qdrant_server_url  # noqa: F401
from sparse_helpers import HashedTermsProvider

pytestmark = pytest.mark.integration
pytest_plugins = ["backend_fixtures"]  # onnx_provider, on a private ONNX cache for the session

KINDS = (
    "memory", "chroma-memory", "chroma-path", "chroma-server", "qdrant-memory", "qdrant-path", "qdrant-server",
    "qdrant-edge-path", "pgvector-server", "qdrant-async-memory", "qdrant-async-server", "chroma-async-server",
)


@dataclass
class Target:
    """One deployment of one database: how to open a store there, and a raw client to look behind it."""

    kind: str
    db: str
    open_kwargs: dict[str, Any]
    raw: Any  # MemoryDatabase / chromadb client / QdrantClient, bypassing vecembed
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    loop: Any = None  # the LoopThread (tests/conftest.py) whose loop a native async client belongs to

    def open(self, provider: Any, collection: str, **kwargs: Any) -> vecembed.Store:
        if self.loop is not None:
            store: vecembed.Store = self.loop.run(
                vecembed.aopen_store(self.db, collection, provider, **self.open_kwargs, **kwargs)
            )
            assert store.backend.loop is self.loop.loop  # every database call goes to the client's own loop
            return store
        return vecembed.open_store(self.db, collection, provider, **self.open_kwargs, **kwargs)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(db, *args, **open_kwargs)`` (vecembed.aliases, set_alias, drop_alias); on the client's loop if async."""
        if self.loop is not None:
            from vecembed.aio import run_on_thread

            return self.loop.run(run_on_thread(fn, self.db, *args, **self.open_kwargs))
        return fn(self.db, *args, **self.open_kwargs)

    def raw_count(self, collection: str) -> int | None:
        """Records stored, read by the database's own client; None when the collection does not exist."""
        if self.db == "memory":
            found = self.raw.collection(collection)
            return None if found is None else int(found.count())
        if self.db == "pgvector":
            return self.raw.count(collection)
        if self.db == "chroma":
            try:
                return int(self.raw.get_collection(collection).count())
            except Exception:
                return None
        if self.db == "qdrant-edge":
            from qdrant_edge import CountRequest

            shard = self.raw.shard(collection)
            return None if shard is None else int(shard.count(CountRequest(exact=True)))
        if not self.raw.collection_exists(collection):
            return None
        return int(self.raw.count(collection, exact=True).count)

    def create_foreign(self, collection: str, vectors: np.ndarray) -> None:
        """A collection made with the database's own client (no vecembed record), holding ``vectors``."""
        if self.db == "memory":
            col = self.raw.create_collection(collection, dimension=vectors.shape[1])
            if len(vectors):
                col.upsert([f"f{i}" for i in range(len(vectors))], vectors,
                           [(f"foreign {i}", {}, "") for i in range(len(vectors))])
            return
        if self.db == "pgvector":
            self.raw.create_foreign(collection, vectors)
            return
        if self.db == "chroma":
            col = self.raw.create_collection(collection, configuration={"hnsw": {"space": "cosine"}})
            if len(vectors):
                col.add(ids=[f"f{i}" for i in range(len(vectors))], embeddings=vectors,
                        documents=[f"foreign {i}" for i in range(len(vectors))])
            return
        if self.db == "qdrant-edge":
            import qdrant_edge as qe

            config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=vectors.shape[1], distance=qe.Distance.Cosine))
            shard = self.raw.create(collection, config)
            if len(vectors):
                shard.update(qe.UpdateOperation.upsert_points([
                    qe.Point(id=i, vector=v.tolist(), payload={"text": f"foreign {i}"}) for i, v in enumerate(vectors)
                ]))
            return
        from qdrant_client import models

        self.raw.create_collection(
            collection, vectors_config=models.VectorParams(size=vectors.shape[1], distance=models.Distance.COSINE)
        )
        if len(vectors):
            self.raw.upsert(collection, points=[
                models.PointStruct(id=i, vector=v.tolist(), payload={"text": f"foreign {i}"})
                for i, v in enumerate(vectors)
            ])


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from open_target(request.param, request, tmp_path)


def open_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The :class:`Target` of one kind (a generator: what follows its yield cleans up)."""
    if kind == "memory":
        from vecembed.memory_store import MemoryDatabase

        database = MemoryDatabase()
        yield Target(kind, "memory", {"client": database}, database)
    elif kind == "chroma-memory":
        import chromadb

        client = chromadb.EphemeralClient()
        yield Target(kind, "chroma", {"client": client}, client)
    elif kind == "chroma-path":
        import chromadb

        path = tmp_path / "chroma"
        yield Target(kind, "chroma", {"path": str(path)}, chromadb.PersistentClient(path=str(path)))
    elif kind == "chroma-server":
        endpoint = request.getfixturevalue("chroma_server")
        yield Target(kind, "chroma", {"url": endpoint.url}, endpoint.client())
    elif kind == "qdrant-memory":
        client = QdrantClient(":memory:")
        yield Target(kind, "qdrant", {"client": client}, client)
        client.close()
    elif kind == "qdrant-path":
        # Local mode locks its folder to one client: the store and the raw view share it.
        client = QdrantClient(path=str(tmp_path / "qdrant"))
        yield Target(kind, "qdrant", {"client": client}, client)
        client.close()
    elif kind == "qdrant-edge-path":
        # An Edge shard allows one opener: the stores and the raw view share the folder's EdgeShards.
        from vecembed_qdrant_edge import EdgeShards

        shards = EdgeShards(tmp_path / "edge")
        yield Target(kind, "qdrant-edge", {"client": shards}, shards)
        shards.close()
    elif kind == "pgvector-server":
        from pg_fixtures import PgRaw

        url = request.getfixturevalue("pg_url")
        yield Target(kind, "pgvector", {"url": url}, PgRaw(url))
    elif "-async-" in kind:
        yield from _async_target(kind, request)
    else:
        url = request.getfixturevalue("qdrant_server_url")
        client = QdrantClient(url=url, timeout=30)
        yield Target(kind, "qdrant", {"url": url}, client)
        client.close()


def _async_target(kind: str, request: pytest.FixtureRequest) -> Iterator[Target]:
    """A native async client on a loop in its own thread; the raw view is the same client, bridged to that loop."""
    from chromadb.api.models.AsyncCollection import AsyncCollection
    from qdrant_client import AsyncQdrantClient

    from vecembed.aio import LoopBridge

    server = {"chroma-async-server": "chroma_server", "qdrant-async-server": "qdrant_server_url"}.get(kind)
    where = request.getfixturevalue(server) if server else None  # skips first when no server answers
    loop = request.getfixturevalue("loop_thread")
    client: Any
    if kind == "chroma-async-server":
        import chromadb

        client = loop.run(chromadb.AsyncHttpClient(host=where.host, port=where.port, ssl=where.ssl))
        db = "chroma"
    else:
        client = AsyncQdrantClient(url=where, timeout=30) if where else AsyncQdrantClient(":memory:")
        db = "qdrant"
    yield Target(kind, db, {"client": client}, LoopBridge(client, loop.loop, wrap=(AsyncCollection,)), loop=loop)
    if db == "qdrant":
        loop.run(client.close())  # the loop itself stops after this (the loop_thread fixture)


@pytest.fixture
def name() -> str:
    return f"conf-{uuid.uuid4().hex[:12]}"


class CountingProvider(vecembed.DelegatingProvider):
    """A provider that counts the documents it embeds (and can be told to fail after some)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, close_provider=False)
        self.embedded = 0

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        self.embedded += len(texts)
        return super().embed_documents_counted(texts)


@pytest.fixture
def provider() -> Iterator[CountingProvider]:
    with vecembed.load_provider("mock", dimension=32) as inner:
        yield CountingProvider(inner)


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"d{i}", "text": f"document {i} is about {'cats' if i % 2 else 'dogs'} and the number {i}",
         "metadata": {"parity": "odd" if i % 2 else "even", "n": i}}
        for i in range(start, start + n)
    ]


# -- the contract ------------------------------------------------------------------------------------


def test_ingest_search_count_delete(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        report = store.ingest(docs(300), batch_size=64)
        assert (report.documents, report.written, report.skipped, report.batches) == (300, 300, 0, 5)
        assert report.truncated == 0 and report.retries == 0
        assert store.count() == 300 == target.raw_count(name)
        hits = store.search("document 17 is about cats and the number 17", k=3)
        assert hits[0].id == "d17" and hits[0].text.startswith("document 17 ")
        assert hits[0].metadata == {"parity": "odd", "n": 17}  # vecembed's own keys are not shown
        assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[0].score >= hits[1].score >= hits[2].score
        assert store.delete(["d17", "d18", "never-stored"]) == 3
        assert store.count() == 298 == target.raw_count(name)
        assert all(h.id not in {"d17", "d18"} for h in store.search("document 17", k=10))


def test_reingest_is_idempotent_and_a_changed_document_is_rewritten(
    target: Target, name: str, provider: CountingProvider
) -> None:
    with target.open(provider, name) as store:
        store.ingest(docs(200))
        provider.embedded = 0
        again = store.ingest(docs(200))
        assert (again.written, again.skipped, provider.embedded) == (0, 200, 0)
        changed = docs(200)
        changed[5]["text"] = "a new text for document five"
        changed[9]["metadata"] = {"parity": "changed"}
        third = store.ingest(changed)
        assert (third.written, third.skipped, provider.embedded) == (2, 198, 2)
        assert store.count() == 200 == target.raw_count(name)
        assert store.search("a new text for document five", k=1)[0].id == "d5"
        assert store.search("anything", k=1, where={"parity": "changed"})[0].id == "d9"


def test_int_and_str_ids_are_one_document(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        store.ingest([(1, "one"), (2, "two")])
        again = store.ingest([("1", "one"), (np.int64(2), "two")])
        assert (again.written, again.skipped) == (0, 2) and store.count() == 2
        assert {h.id for h in store.search("one", k=2)} == {"1", "2"}
        assert store.delete([1]) == 1 and store.count() == 1


def test_texts_without_ids_are_addressed_by_content(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        report = store.ingest(["same text", "other text", "same text"])
        assert (report.documents, report.written, report.duplicates) == (3, 2, 1)
        assert store.ingest(["same text"]).skipped == 1 and store.count() == 2


def test_resume_after_a_failure_mid_ingest(
    target: Target, name: str, provider: CountingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = docs(1000)
    store = target.open(provider, name)
    real_write = store.backend.write
    calls = {"n": 0}

    def failing_write(records: Any, vectors: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # not transient: no retry absorbs it
            raise RuntimeError("injected failure in the 4th write")
        real_write(records, vectors)

    monkeypatch.setattr(store.backend, "write", failing_write)
    with pytest.raises(IngestError, match="injected failure") as err:
        store.ingest(corpus, batch_size=100)
    committed = err.value.report.written
    assert committed == 300 == err.value.committed  # three writes of 100 settled before the fourth failed
    assert "re-run" in str(err.value)
    assert target.raw_count(name) == committed
    monkeypatch.setattr(store.backend, "write", real_write)

    provider.embedded = 0
    resumed = store.ingest(corpus, batch_size=100)
    assert (resumed.written, resumed.skipped) == (700, 300)
    assert provider.embedded == 700  # only what was missing was embedded again
    assert store.count() == 1000 == target.raw_count(name)
    store.close()
    # Exact ids: every document once, none lost, none extra.
    with target.open(provider, name, create=False) as reopened:
        got = {h.id for q in ("cats", "dogs") for h in reopened.search(q, k=1000)}
        assert got == {d["id"] for d in corpus}


def test_transient_write_errors_are_retried(
    target: Target, name: str, provider: CountingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = target.open(provider, name, retry_backoff=0.0)
    real_write = store.backend.write
    calls = {"n": 0}

    def flaky_write(records: Any, vectors: Any) -> None:
        calls["n"] += 1
        if calls["n"] % 2:
            raise ConnectionError("connection reset by peer (injected)")
        real_write(records, vectors)

    monkeypatch.setattr(store.backend, "write", flaky_write)
    report = store.ingest(docs(250), batch_size=50)
    assert (report.written, report.retries) == (250, 5)
    assert store.count() == 250
    store.close()


def test_other_model_refused_before_any_write(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        store.ingest(docs(10))
    with vecembed.load_provider("mock", dimension=32, seed=7) as other, pytest.raises(ModelMismatchError) as err:
        target.open(other, name).ingest(docs(5, start=100))
    assert provider.info.fingerprint in str(err.value) and other.info.fingerprint in str(err.value)
    with vecembed.load_provider("mock", dimension=16) as smaller, pytest.raises(DimensionMismatchError) as dim:
        target.open(smaller, name)
    assert (dim.value.expected, dim.value.got) == (32, 16)
    assert target.raw_count(name) == 10


def test_bad_input_writes_nothing_and_creates_nothing(target: Target, name: str, provider: CountingProvider) -> None:
    store = target.open(provider, name)
    bad: list[Any] = [*docs(150), {"id": "x", "text": None}]
    with pytest.raises(InvalidInputError, match=r"documents\[150\]") as err:
        store.ingest(bad)
    assert err.value.index == 150
    for wrong, match in [
        ([*docs(3), {"id": "y", "txt": "typo"}], r"documents\[3\].*found 'id', 'txt'"),
        ([{"id": "z", "text": "\udc80 lone surrogate"}], "lone surrogate"),
        ([{"id": "m", "text": "t", "metadata": {"vecembed:hash": "forged"}}], "reserved"),
        ([{"id": "m", "text": "t", "metadata": {"score": float("nan")}}], "finite"),
        ([("a", "one"), ("a", "two")], "ids must be unique"),
        ({"a", "b"}, "no order"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            store.ingest(wrong)
    assert provider.embedded == 0
    assert target.raw_count(name) is None  # validated before the collection was even created
    store.close()


def test_a_stream_is_read_chunk_by_chunk_and_a_bad_chunk_keeps_what_came_before(
    target: Target, name: str, provider: CountingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    pulled = {"n": 0, "at_first_write": -1}

    def stream(n: int, bad_at: int) -> Iterator[dict[str, Any]]:
        for i, doc in enumerate(docs(n)):
            pulled["n"] += 1
            yield {"id": "bad", "text": 42} if i == bad_at else doc

    with target.open(provider, name) as store:
        # A bad document in the first chunk (8 batches of 100 = 800 documents): nothing at all is written.
        with pytest.raises(InvalidInputError, match=r"documents\[600\]"):
            store.ingest(stream(2000, 600), batch_size=100)
        assert target.raw_count(name) is None and pulled["n"] == 800  # one chunk read, not the stream

        real_write = store.backend.write

        def spy(records: Any, vectors: Any) -> None:
            if pulled["at_first_write"] < 0:
                pulled["at_first_write"] = pulled["n"]
            real_write(records, vectors)

        monkeypatch.setattr(store.backend, "write", spy)
        pulled["n"] = 0
        # In the second chunk: the first chunk stays written, nothing of the second is.
        with pytest.raises(IngestError, match=r"documents\[1000\]") as err:
            store.ingest(stream(2000, 1000), batch_size=100)
        assert pulled["at_first_write"] == 800  # written while the rest of the stream was still unread
        assert err.value.report.written == 800 == target.raw_count(name)
        provider.embedded = 0
        report = store.ingest(iter(docs(2000)), batch_size=100)
        assert (report.written, report.skipped, provider.embedded) == (1200, 800, 1200)
        assert store.count() == 2000


def test_filters(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        store.ingest(docs(100))
        odd = store.search("cats", k=100, where={"parity": "odd"})
        assert len(odd) == 50 and all(h.metadata["parity"] == "odd" for h in odd)
        both = store.search("cats", k=10, where={"parity": "even", "n": 42})
        assert [h.id for h in both] == ["d42"]
        assert store.search("cats", k=5, where={"parity": "none"}) == []
        many = store.search_many(["cats", "dogs"], k=2, where={"parity": "even"})
        assert len(many) == 2 and all(len(hs) == 2 for hs in many)
        with pytest.raises(InvalidInputError):
            store.search("cats", k=0)
        with pytest.raises(InvalidInputError):
            store.search("cats", where={"n": [1, 2]})


def test_unrecorded_collection_is_refused_unless_adopted(
    target: Target, name: str, provider: CountingProvider
) -> None:
    vectors = provider.provider.embed_documents(["foreign one", "foreign two"])
    target.create_foreign(name, vectors)
    with pytest.raises(ModelMismatchError, match="adopt"):
        target.open(provider, name)
    assert target.raw_count(name) == 2
    with target.open(provider, name, adopt=True) as store:
        report = store.ingest(docs(4))
        assert report.written == 4 and store.count() == 6
    with target.open(provider, name) as store:  # recorded now: opens without adopt
        assert store.count() == 6


def test_empty_unrecorded_collection_is_claimed(target: Target, name: str, provider: CountingProvider) -> None:
    target.create_foreign(name, np.zeros((0, 32), dtype=np.float32))
    with target.open(provider, name) as store:
        assert store.ingest(docs(3)).written == 3
    with vecembed.load_provider("mock", dimension=32, seed=9) as other, pytest.raises(ModelMismatchError):
        target.open(other, name)


def test_search_notices_a_collection_replaced_by_another_model(
    target: Target, name: str, provider: CountingProvider
) -> None:
    store = target.open(provider, name)
    store.ingest(docs(5))
    with vecembed.load_provider("mock", dimension=32, seed=5) as other:
        # Someone drops the collection and rebuilds it with another model behind the open store's back.
        target.raw.delete_collection(name)
        other_store = target.open(other, name)
        other_store.ingest(docs(5))
        with pytest.raises(ModelMismatchError):
            store.search("cats", k=1)
    store.close()


def test_open_existing_only(target: Target, name: str, provider: CountingProvider) -> None:
    with pytest.raises(vecembed.CollectionNotFoundError, match=name):
        target.open(provider, name, create=False)
    assert target.raw_count(name) is None
    store = target.open(provider, name)
    assert store.count() == 0 and store.search("anything") == []
    store.close()


def test_health(target: Target, name: str, provider: CountingProvider) -> None:
    with target.open(provider, name) as store:
        before = store.health_check()
        assert not before.ok and before.checks["collection"] is False and before.checks["provider"] is True
        store.ingest(docs(3))
        after = store.health_check()
        assert after.ok, after.detail
        assert "3 records" in after.detail


@pytest.fixture(scope="module")
def real_model_exact(onnx_provider: Any, sts_sentences: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Corpus, queries and their exact scores by the real model, computed once for every store of the module.

    200 documents: each store embeds them itself on ingest (about 1 s each on 2 cores); the top 10 of 50 queries
    among 200 real vectors tells an exact search from a wrong one as well as among 400.
    """
    corpus = sts_sentences[:200]
    queries = sts_sentences[400:450]
    vectors = onnx_provider.embed_documents(corpus)
    return corpus, queries, onnx_provider.embed_queries(queries) @ vectors.T


def test_real_model_search_equals_exact_numpy_top10(
    target: Target, name: str, onnx_provider: Any, real_model_exact: tuple[list[str], list[str], np.ndarray]
) -> None:
    corpus, queries, exact = real_model_exact
    with target.open(onnx_provider, name) as store:
        store.ingest([(f"s{i}", t) for i, t in enumerate(corpus)])
        results = store.search_many(queries, k=10)
    recall = np.mean([
        len({int(h.id[1:]) for h in hits} & set(np.argsort(-row)[:10].tolist())) / 10
        for hits, row in zip(results, exact, strict=True)
    ])
    assert recall >= 0.99
    for hits, row in zip(results, exact, strict=True):
        assert hits[0].score == pytest.approx(float(row.max()), abs=1e-4)


@pytest.mark.parametrize("breakage", ["nan", "inf", "zero", "huge"])
def test_a_bad_vector_writes_nothing(target: Target, name: str, provider: CountingProvider, breakage: str) -> None:
    """Issue 22: a provider's NaN, inf, all-zero or 1000x vector is refused before the batch is written."""

    class Poisoned(vecembed.DelegatingProvider):
        def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
            result = super().embed_documents_counted(texts)
            vectors = result.vectors.copy()
            for i, text in enumerate(texts):
                if text == "poison":
                    broken = {"nan": np.float32("nan"), "inf": np.float32("inf"), "zero": np.float32(0)}
                    vectors[i] = vectors[i] * 1000 if breakage == "huge" else broken[breakage]
            return EmbedResult(vectors, tokens=result.tokens, truncated=result.truncated)

    with target.open(Poisoned(provider, close_provider=False), name) as store:
        with pytest.raises(InvalidVectorsError, match=r"document 'd1' .*nothing of this batch was written"):
            store.ingest([("d0", "a good text"), ("d1", "poison"), ("d2", "another good text")])
        assert target.raw_count(name) in (None, 0) and store.count() == 0


# -- sparse vectors and hybrid search (issue 24) ---------------------------------------------------------
#
# Every store that keeps sparse vectors (the SparseStore trait) passes these; a new one adds its kinds to
# SPARSE_KINDS (nothing else). Every other kind must refuse sparse= and mode="sparse"/"hybrid" with
# UnsupportedError naming the stores that can. The sparse provider is tests/sparse_helpers.py's hashed term
# counts (the stores do not depend on BM25's tokenisation); its documents weigh each term by its count and
# its queries weigh each term 1, times the IDF the store applies.

SPARSE_KINDS = (
    "memory", "qdrant-memory", "qdrant-path", "qdrant-server", "qdrant-async-memory", "qdrant-edge-path",
    "pgvector-server",
)


@pytest.fixture(params=SPARSE_KINDS)
def sparse_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from open_target(request.param, request, tmp_path)


@pytest.fixture(params=[kind for kind in KINDS if kind not in SPARSE_KINDS])
def dense_only_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from open_target(request.param, request, tmp_path)


@pytest.fixture
def terms() -> HashedTermsProvider:
    return HashedTermsProvider()


def sparse_docs(n: int = 12) -> list[dict[str, Any]]:
    """Documents whose term counts differ (no two score alike): "tok<i>" once in each, "rare" in d3 and d8 only."""
    out = []
    for i in range(n):
        words = [f"tok{i}"] + ["common"] * (1 + i % 4) + ["cats" if i % 2 else "dogs"] * (1 + i // 4)
        if i in (3, 8):
            words += ["rare"] * (1 + i // 4)
        out.append({"id": f"d{i}", "text": " ".join(words), "metadata": {"parity": "odd" if i % 2 else "even"}})
    return out


def test_sparse_ingest_search_and_reingest_skips(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    with sparse_target.open(provider, name, sparse=terms) as store:
        report = store.ingest(sparse_docs(), batch_size=5)
        assert (report.written, report.batches) == (12, 3) and terms.documents_encoded == 12
        assert store.count() == 12 == sparse_target.raw_count(name)
        assert [h.id for h in store.search("tok7", k=3, mode="sparse")] == ["d7"]  # only d7 has the term
        hybrid = store.search("tok7", k=3, mode="hybrid")
        assert hybrid[0].id == "d7" and hybrid[0].text.startswith("tok7 ") and hybrid[0].metadata == {"parity": "odd"}
        again = store.ingest(sparse_docs())
        assert (again.written, again.skipped, terms.documents_encoded) == (0, 12, 12)  # nothing encoded again
        changed = sparse_docs()
        changed[4]["text"] = "zebra"
        third = store.ingest(changed)
        assert (third.written, third.skipped, terms.documents_encoded) == (1, 11, 13)
        assert [h.id for h in store.search("zebra", k=3, mode="sparse")] == ["d4"]
        assert store.search("tok4", k=3, mode="sparse") == []  # the old terms of d4 are gone
        many = store.search_many(["tok1", "tok2"], k=1, mode="sparse")
        assert [[h.id for h in hits] for hits in many] == [["d1"], ["d2"]]


def test_sparse_scores_are_idf_weighted_and_delete_updates_the_statistics(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    from vecembed.sparse import idf

    with sparse_target.open(provider, name, sparse=terms) as store:
        store.ingest(sparse_docs())
        # "rare": in d3 once and d8 three times, of 12 documents; a query term weighs 1 x IDF
        hits = store.search("rare", k=5, mode="sparse")
        assert [h.id for h in hits] == ["d8", "d3"]
        assert hits[0].score == pytest.approx(3 * idf(2, 12), rel=1e-5)
        assert hits[1].score == pytest.approx(idf(2, 12), rel=1e-5)
        store.delete(["d8", "d0"])
        if sparse_target.kind.endswith("-server") and sparse_target.db == "qdrant":
            pytest.skip("a Qdrant server counts deleted points in its IDF until it optimises their segment")
        if sparse_target.db == "qdrant-edge":
            pytest.skip("Qdrant Edge (0.9) counts deleted points in its IDF until it vacuums their segment")
        after = store.search("rare", k=5, mode="sparse")
        assert [h.id for h in after] == ["d3"]
        assert after[0].score == pytest.approx(idf(1, 10), rel=1e-5)  # the statistics lost both records


def test_hybrid_is_reciprocal_rank_fusion_of_both_legs(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    from vecembed.sparse import Fusion, reciprocal_rank_fusion

    with sparse_target.open(provider, name, sparse=terms) as store:
        store.ingest(sparse_docs())
        query = "rare cats common tok5"
        dense = store.search(query, k=12)
        sparse = store.search(query, k=12, mode="sparse")
        assert len(dense) == 12 and len(sparse) == 12  # every document is in both legs: no cut-off to differ at
        for fusion in (Fusion(), Fusion(k=10, sparse_weight=2.0, dense_weight=0.5)):
            expected = {hit.id: score for hit, score in reciprocal_rank_fusion(
                [dense, sparse], 12, k=fusion.k, weights=(fusion.dense_weight, fusion.sparse_weight))}
            got = store.search(query, k=12, mode="hybrid", fusion=fusion)
            assert {h.id: pytest.approx(h.score, rel=1e-5) for h in got} == expected
            assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        top = store.search(query, k=3, mode="hybrid", fusion=Fusion(depth=2))
        assert len(top) == 3  # the depth is at least k


def test_filters_apply_to_both_legs(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    from vecembed.sparse import reciprocal_rank_fusion

    even = {"parity": "even"}
    with sparse_target.open(provider, name, sparse=terms) as store:
        store.ingest(sparse_docs())
        assert store.search("tok3", k=1, mode="hybrid")[0].id == "d3"  # d3 (odd) leads both legs unfiltered
        assert store.search("tok3", k=5, mode="sparse", where=even) == []
        assert "d3" not in {h.id for h in store.search("tok3", k=12, mode="hybrid", where=even)}
        query = "tok3 rare common"
        dense = store.search(query, k=12, where=even)
        sparse = store.search(query, k=12, mode="sparse", where=even)
        evens = {f"d{i}" for i in range(0, 12, 2)}
        assert {h.id for h in dense} == evens == {h.id for h in sparse}
        got = store.search(query, k=12, mode="hybrid", where=even)
        expected = {hit.id: score for hit, score in reciprocal_rank_fusion([dense, sparse], 12)}
        assert {h.id: pytest.approx(h.score, rel=1e-5) for h in got} == expected
        assert all(h.metadata == even for h in got)


def test_empty_sparse_vectors_are_stored_and_a_query_without_terms_is_dense_only(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    with sparse_target.open(provider, name, sparse=terms) as store:
        report = store.ingest([*sparse_docs(), ("stop", "the of a"), ("empty", "")])
        assert report.written == 14 and store.count() == 14 == sparse_target.raw_count(name)
        assert store.search("the a", k=5, mode="sparse") == []
        dense = store.search("the a of", k=5)
        assert dense[0].id == "stop"
        # The sparse leg is empty, so hybrid is the dense leg alone: RRF scores 1/(k + rank) in the dense order.
        # Mock vectors are orthogonal, so several dense scores tie at 0.0 and a database may order tied points
        # differently at another depth (Qdrant Edge does): compare dense scores, which ties cannot change.
        dense_score = {h.id: round(h.score, 5) for h in store.search("the a of", k=14)}
        hybrid = store.search("the a of", k=5, mode="hybrid")
        assert [dense_score[h.id] for h in hybrid] == [round(h.score, 5) for h in dense]
        assert [h.score for h in hybrid] == pytest.approx([1 / (RRF_K + rank) for rank in range(1, 6)])


def test_sparse_identity_is_checked_before_any_write(
    sparse_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    with sparse_target.open(provider, name, sparse=terms) as store:
        store.ingest(sparse_docs(4))
    # another sparse provider: refused at open, like another model
    with pytest.raises(ModelMismatchError, match="two term spaces"):
        sparse_target.open(provider, name, sparse=HashedTermsProvider(salt="-other"))
    # without the sparse provider: dense search works, an ingest is refused (it would write no sparse vectors)
    with sparse_target.open(provider, name) as dense_only:
        assert dense_only.search("tok1", k=1)[0].id == "d1"
        with pytest.raises(ModelMismatchError, match=r"sparse='hashed-terms'"):
            dense_only.ingest(sparse_docs(6))
        with pytest.raises(InvalidInputError, match=r"needs the sparse provider .*sparse='hashed-terms'"):
            dense_only.search("tok1", mode="hybrid")
    assert sparse_target.raw_count(name) == 4
    # a collection made dense-only cannot gain sparse vectors: the error says how (re-ingest, or migrate)
    plain = f"{name}-dense"
    with sparse_target.open(provider, plain) as store:
        store.ingest(sparse_docs(3))
        with pytest.raises(UnsupportedError, match=r"re-ingesting .*vecembed migrate"):
            store.search("tok1", mode="hybrid")
    with pytest.raises(ModelMismatchError, match=r"created without sparse vectors.*re-ingesting.*vecembed migrate"):
        sparse_target.open(provider, plain, sparse=terms)
    assert sparse_target.raw_count(plain) == 3


def test_a_store_without_sparse_vectors_refuses_sparse_and_hybrid(
    dense_only_target: Target, name: str, provider: CountingProvider, terms: HashedTermsProvider
) -> None:
    with pytest.raises(UnsupportedError, match=r"stores that keep them: .*memory.*qdrant"):
        dense_only_target.open(provider, name, sparse=terms)
    with dense_only_target.open(provider, name) as store:
        store.ingest(docs(3))
        for mode in ("sparse", "hybrid"):
            with pytest.raises(UnsupportedError, match="memory"):
                store.search("cats", mode=mode)
    assert terms.documents_encoded == 0
# -- aliases and collections that know their provider (issue 23, items 1 and 2) -----------------------------


def test_an_alias_moves_atomically_and_open_stores_follow_it(
    target: Target, name: str, provider: CountingProvider
) -> None:
    v1, v2, alias = f"{name}-v1", f"{name}-v2", f"{name}-live"
    with target.open(provider, v1) as store:
        store.ingest(docs(6))
    with vecembed.load_provider("mock", dimension=32, seed=7) as other:
        with target.open(other, v2) as store:
            store.ingest(docs(4, start=100))
        target.call(vecembed.set_alias, alias, v1)
        assert target.call(vecembed.aliases) == {alias: v1}
        follower = target.open(None, alias)  # no provider: the one v1 records (mock, 32-d)
        pinned = target.open(provider, alias)
        assert (follower.collection, follower.alias, follower.count()) == (v1, alias, 6)
        assert follower.provider.info.fingerprint == provider.info.fingerprint
        assert pinned.search("document 3", k=1)[0].id == "d3"

        target.call(vecembed.set_alias, alias, v2)  # moved: delete + create in one step
        assert target.call(vecembed.aliases) == {alias: v2}
        # The follower loads v2's recorded provider; the pinned store refuses: its model is not v2's.
        assert follower.search("document 101", k=1)[0].id == "d101"
        assert (follower.collection, follower.count()) == (v2, 4)
        assert follower.provider.info.fingerprint == other.info.fingerprint
        with pytest.raises(ModelMismatchError, match=rf"alias '{alias}' moved from collection '{v1}' to '{v2}'"):
            pinned.search("document 3", k=1)
        with pytest.raises(ModelMismatchError, match="moved"):
            pinned.ingest(docs(1))
        assert target.raw_count(v1) == 6 and target.raw_count(v2) == 4  # nothing written by the refused ingest
        target.call(vecembed.set_alias, alias, v1)  # moved back: the pinned store serves again
        assert pinned.search("document 3", k=1)[0].id == "d3"
        follower.close()
        pinned.close()

    # Bad input changes nothing: a missing collection, an alias over a collection, an alias of an alias.
    with pytest.raises(vecembed.CollectionNotFoundError, match="not found"):
        target.call(vecembed.set_alias, alias, f"{name}-missing")
    with pytest.raises(InvalidInputError, match="may not shadow a collection"):
        target.call(vecembed.set_alias, v2, v1)
    with pytest.raises(vecembed.CollectionNotFoundError, match="is an alias itself"):
        target.call(vecembed.set_alias, f"{name}-other", alias)
    # Names are checked as collection names are: refused, or kept as plain data (quoted, escaped) — never SQL or
    # a path. Either way the collections and the other aliases are untouched.
    for hostile in ("../../escape", "x'; DROP TABLE vecembed_collections; --"):
        try:
            target.call(vecembed.set_alias, hostile, v1)
        except InvalidInputError:
            assert hostile not in target.call(vecembed.aliases)
        else:
            assert target.call(vecembed.aliases)[hostile] == v1
            assert target.call(vecembed.drop_alias, hostile) is True
    assert target.call(vecembed.aliases) == {alias: v1}
    assert target.raw_count(v1) == 6 and target.raw_count(v2) == 4
    assert target.call(vecembed.drop_alias, alias) is True
    assert target.call(vecembed.drop_alias, alias) is False
    assert target.call(vecembed.aliases) == {}


def test_a_collection_without_a_recorded_provider_needs_provider(target: Target, name: str) -> None:
    with pytest.raises(vecembed.CollectionNotFoundError, match="provider="):
        target.open(None, name)
    target.create_foreign(name, np.zeros((2, 32), dtype=np.float32) + 0.1)
    with pytest.raises(InvalidInputError, match="records no vecembed identity: pass provider="):
        target.open(None, name)


def test_scan_gives_every_record_back_in_bounded_batches(
    target: Target, name: str, provider: CountingProvider
) -> None:
    # Every store keeps the text: what makes re-embedding into another model possible (vecembed.migrate).
    with target.open(provider, name) as store:
        assert list(store.backend.scan(10)) == []  # no collection yet: nothing, no error
        wanted = docs(45)
        store.ingest(wanted)
        store.delete(["d3"])
        batches = list(store.backend.scan(10))
        assert all(1 <= len(b) <= 10 for b in batches) and len(batches) >= 5
        scanned = {r.id: r for b in batches for r in b}
        assert sum(len(b) for b in batches) == 44 == len(scanned)  # each record once
        expected = {d["id"]: d for d in wanted if d["id"] != "d3"}
        assert {i: (r.text, dict(r.metadata)) for i, r in scanned.items()} == {
            i: (d["text"], d["metadata"]) for i, d in expected.items()
        }
        assert {i: r.content_hash for i, r in scanned.items()} == store.backend.stored_hashes(sorted(scanned))


def test_drop_removes_the_collection(target: Target, name: str, provider: CountingProvider) -> None:
    from vecembed.store import AliasStore, DropStore

    with target.open(provider, name) as store:
        store.ingest(docs(5))
        assert isinstance(store.backend, DropStore) and isinstance(store.backend, AliasStore)
        # a second collection through the same connection, then the first one dropped: the second stays
        other = vecembed.Store(store.backend.for_collection(name + "-b"), provider)
        other.ingest(docs(3))
        store.backend.drop()
        store.backend.drop()  # idempotent
        assert target.raw_count(name) is None and store.backend.state() is None
        assert other.count() == 3
        other.backend.drop()


# -- migration (issue 23, items 3 and 4) ---------------------------------------------------------------------


def test_migrate_re_embeds_behind_the_alias_and_readers_follow_or_are_refused(
    target: Target, name: str, provider: CountingProvider
) -> None:
    v1, alias = f"{name}-v1", f"{name}-live"
    with target.open(provider, v1) as store:
        store.ingest(docs(40))
    target.call(vecembed.set_alias, alias, v1)
    pinned = target.open(provider, alias)  # an application that opened the alias with the old provider
    follower = target.open(None, alias)  # one that loads whatever the alias's collection records
    assert pinned.search("document 3 is about cats and the number 3", k=1)[0].id == "d3"
    with vecembed.load_provider("mock", dimension=24, seed=3) as new:
        report = target.call(vecembed.migrate, alias, new)
        assert (report.source, report.alias, report.switched, report.documents, report.embedded) == (
            v1, alias, True, 40, 40)
        assert target.call(vecembed.aliases)[alias] == report.target  # (a server may hold other tests' aliases)
        with target.open(new, report.target) as moved:
            got = {r.id: (r.text, dict(r.metadata)) for b in moved.backend.scan(16) for r in b}
        assert got == {d["id"]: (d["text"], d["metadata"]) for d in docs(40)}
        # item 4: the old provider is refused after the switch, naming the alias and the new model
        with pytest.raises(ModelMismatchError, match=rf"alias '{alias}' moved from collection '{v1}'"):
            pinned.search("document 3", k=1)
        assert follower.search("document 3 is about cats and the number 3", k=1)[0].id == "d3"
        assert follower.provider.info.fingerprint == new.info.fingerprint
        # a re-run embeds nothing; a rollback points the alias back; drop_old refuses while it names the old one
        assert target.call(vecembed.migrate, alias, new).embedded == 0
        assert target.call(functools.partial(vecembed.migrate, rollback=True), alias).target == v1
        assert pinned.search("document 3 is about cats and the number 3", k=1)[0].id == "d3"
        assert target.call(vecembed.migrate, alias, new).skipped == 40  # forward again, nothing embedded
        dropped = target.call(functools.partial(vecembed.migrate, drop_old=True), alias)
        assert dropped.dropped == v1 and target.raw_count(v1) is None
    pinned.close()
    follower.close()
