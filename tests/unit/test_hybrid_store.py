"""Sparse vectors in the store contract (issue 24): identity, the engine's one write, Store's modes, the memory store.

Every store that keeps sparse vectors is run through the same behaviour by the hybrid part of
tests/integration/test_store_conformance.py; here the shared pieces are pinned one by one on the reference
``memory`` store, with tests/sparse_helpers.py's hashed term counts as the sparse provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sparse_helpers import HashedTermsProvider

import vecembed
from vecembed.errors import InvalidInputError, InvalidVectorsError, ModelMismatchError, UnsupportedError
from vecembed.identity import CollectionIdentity, Verdict, verify_identity
from vecembed.memory_store import MemoryCollection, MemoryDatabase
from vecembed.sparse import SPARSE_PROVIDERS, Fusion, SparseModelInfo, SparseVector, idf
from vecembed.store import NativeFusion, SparseCapable, SparseStore, available_sparse_stores, store_factory


def ident(sparse: str = "", **kw: Any) -> CollectionIdentity:
    return CollectionIdentity(
        fingerprint="ve1-a",
        model="m",
        dimension=8,
        sparse_fingerprint=sparse,
        sparse_model="bm25" if sparse else "",
        sparse_idf=bool(sparse),
        **kw,
    )


@pytest.fixture
def terms() -> HashedTermsProvider:
    return HashedTermsProvider()


@pytest.fixture
def store(terms: HashedTermsProvider) -> Iterator[vecembed.Store]:
    with (
        vecembed.load_provider("mock", dimension=16) as provider,
        vecembed.open_store("memory", "docs", provider, sparse=terms) as opened,
    ):
        yield opened


# -- identity -----------------------------------------------------------------------------------------


def test_the_identity_records_the_sparse_provider() -> None:
    info = vecembed.load_provider("mock", dimension=8).info
    one = CollectionIdentity.of(info, sparse=SparseModelInfo(name="bm25", fingerprint="sp-1", idf=True))
    assert (one.sparse_fingerprint, one.sparse_model, one.sparse_idf, one.has_sparse) == ("sp-1", "bm25", True, True)
    meta = one.to_metadata()
    assert meta["vecembed:sparse_fingerprint"] == "sp-1" and meta["vecembed:sparse_idf"] == 1
    assert CollectionIdentity.from_metadata(meta) == one
    dense = CollectionIdentity.of(info)
    assert not dense.has_sparse and CollectionIdentity.from_metadata(dense.to_metadata()) == dense
    # a collection recorded before sparse vectors existed reads as dense-only
    old = {k: v for k, v in dense.to_metadata().items() if "sparse" not in k}
    assert CollectionIdentity.from_metadata(old) == dense


def test_verify_identity_sparse_policy() -> None:
    assert verify_identity("c", ident("sp-1"), recorded=ident("sp-1"), writing=True) is Verdict.MATCH
    with pytest.raises(ModelMismatchError, match="two term spaces") as other:
        verify_identity("c", ident("sp-2"), recorded=ident("sp-1"))
    assert (other.value.expected, other.value.got) == ("sp-1", "sp-2")
    with pytest.raises(ModelMismatchError, match=r"created without sparse vectors.*re-ingesting.*vecembed migrate"):
        verify_identity("c", ident("sp-1"), recorded=ident())
    # without the sparse provider: reading is fine, writing is refused, naming the provider to pass
    assert verify_identity("c", ident(), recorded=ident("sp-1")) is Verdict.MATCH
    with pytest.raises(ModelMismatchError, match=r"sparse='bm25'.*--sparse bm25"):
        verify_identity("c", ident(), recorded=ident("sp-1"), writing=True)
    # an unrecorded collection: empty and able to hold sparse vectors is claimed; otherwise refused
    assert verify_identity("c", ident("sp-1"), recorded=None, count=0) is Verdict.RECORD
    with pytest.raises(ModelMismatchError, match="no sparse field"):
        verify_identity("c", ident("sp-1"), recorded=None, count=0, stored_sparse=False)
    with pytest.raises(ModelMismatchError, match="3 records written without vecembed"):
        verify_identity("c", ident("sp-1"), recorded=None, count=3, adopt=True)


# -- the engine and Store ------------------------------------------------------------------------------


def test_dense_and_sparse_go_in_one_write(store: vecembed.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = store.backend.write_sparse  # type: ignore[attr-defined]

    def spy(records: Any, vectors: Any, sparse: Any) -> None:
        calls.append((len(records), len(sparse)))
        real(records, vectors, sparse)

    monkeypatch.setattr(store.backend, "write_sparse", spy)
    monkeypatch.setattr(store.backend, "write", lambda *a: pytest.fail("a dense-only write"))
    report = store.ingest([f"text {i}" for i in range(25)], batch_size=10)
    assert report.written == 25 and calls == [(10, 10), (10, 10), (5, 5)]


def test_a_bad_sparse_provider_writes_nothing(store: vecembed.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store.sparse is not None
    monkeypatch.setattr(store.sparse, "embed_documents", lambda texts: [SparseVector.empty()] * (len(texts) - 1))
    with pytest.raises(InvalidVectorsError, match="returned 1 vectors for 2 texts"):
        store.ingest(["a", "b"])
    monkeypatch.setattr(store.sparse, "embed_documents", lambda texts: [{1: 1.0} for _ in texts])
    with pytest.raises(InvalidVectorsError, match=r"a dict for document .* not a vecembed.SparseVector"):
        store.ingest(["a", "b"])
    assert store.count() == 0


def test_search_arguments_are_checked(store: vecembed.Store) -> None:
    store.ingest(["cats and dogs"])
    with pytest.raises(InvalidInputError, match="mode must be one of 'dense', 'sparse', 'hybrid'"):
        store.search("cats", mode="bm25")
    with pytest.raises(InvalidInputError, match=r"fusion must be a vecembed\.Fusion"):
        store.search("cats", mode="hybrid", fusion={"k": 60})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="fusion= applies to mode='hybrid' only"):
        store.search("cats", fusion=Fusion())
    with pytest.raises(InvalidInputError, match="sparse must be"):
        vecembed.open_store("memory", "x", store.provider, sparse=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"Fusion\.k"):
        Fusion(k=-1)


def test_hybrid_without_a_collection_finds_nothing(terms: HashedTermsProvider) -> None:
    with vecembed.load_provider("mock", dimension=8) as p, vecembed.open_store("memory", "none", p, sparse=terms) as s:
        assert s.search("anything", mode="hybrid") == [] and s.search_many(["a", "b"], mode="sparse") == [[], []]


def test_a_sparse_provider_by_name_is_loaded_and_closed_by_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SPARSE_PROVIDERS, "hashed", "sparse_helpers:HashedTermsProvider")
    with vecembed.load_provider("mock", dimension=8) as p:
        store = vecembed.open_store("memory", "named", p, sparse="hashed")
        loaded = store.sparse
        assert isinstance(loaded, HashedTermsProvider) and "sparse=hashed-terms" in repr(store)
        store.ingest(["cats and dogs"])
        assert store.health_check().checks["sparse-provider"] is True
        store.close()
        assert loaded.closed and p.embed_query("still open").shape == (8,)  # the dense provider is the caller's
        with pytest.raises(vecembed.UnknownProviderError, match="available: bm25, hashed"):
            vecembed.open_store("memory", "named", p, sparse="bm26")


def test_async_search_takes_the_mode(store: vecembed.Store) -> None:
    store.ingest([("c", "cats cats"), ("d", "dogs")])

    async def main() -> list[str]:
        hits = await store.asearch("cats", k=1, mode="sparse")
        many = await store.asearch_many(["dogs"], k=1, mode="hybrid", fusion=Fusion(k=5))
        return [hits[0].id, many[0][0].id]

    assert asyncio.run(main()) == ["c", "d"]


def test_the_traits_say_which_stores_keep_sparse_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    import vecembed.store

    assert isinstance(store_factory("memory"), SparseCapable)
    # (the real list imports every adapter, Chroma's included: the conformance suite checks it)
    monkeypatch.setattr(vecembed.store, "available_stores", lambda: ["memory", "qdrant", "not-installed"])
    assert available_sparse_stores() == ["memory", "qdrant"]
    with vecembed.load_provider("mock", dimension=8) as p, vecembed.open_store("memory", "t", p) as s:
        # memory fuses in the collection, as a database does server-side
        assert isinstance(s.backend, SparseStore) and isinstance(s.backend, NativeFusion)
        assert s.backend.sparse_idf == "store"


def test_a_store_without_the_trait_is_refused(terms: HashedTermsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    import vecembed.store
    from vecembed.ingest import ingest

    monkeypatch.setattr(vecembed.store, "available_stores", lambda: ["memory"])

    class DenseOnly:
        db = "dense-only"
        collection = "c"
        location = "memory"
        nested_metadata = False

    with (
        vecembed.load_provider("mock", dimension=8) as p,
        pytest.raises(
            UnsupportedError, match=r"the dense-only store keeps no sparse vectors.*stores that keep them: memory"
        ),
    ):
        ingest(DenseOnly(), p, ["a"], sparse=terms)  # type: ignore[arg-type]


# -- the memory store's sparse index --------------------------------------------------------------------


def test_memory_document_frequencies_follow_writes_replacements_and_deletes() -> None:
    col = MemoryCollection("c", dimension=2)
    vec = [[1.0, 0.0]] * 3
    rows = [("t", {}, "h")] * 3
    col.upsert(
        ["a", "b", "c"],
        vec,
        rows,
        [
            SparseVector.from_dict({1: 1.0, 2: 1.0}),  # type: ignore[arg-type]
            SparseVector.from_dict({1: 2.0}),
            SparseVector.empty(),
        ],
    )
    assert (col.document_frequency(1), col.document_frequency(2), col.sparse_records()) == (2, 1, 3)
    col.upsert(["a"], vec[:1], rows[:1], [SparseVector.from_dict({3: 1.0})])  # type: ignore[arg-type]
    assert (col.document_frequency(1), col.document_frequency(2), col.document_frequency(3)) == (1, 0, 1)
    hits = col.search_sparse([SparseVector.from_dict({1: 1.0})], 5, None, weigh_idf=True)
    assert [(h.id, h.score) for h in hits[0]] == [("b", pytest.approx(2.0 * idf(1, 3)))]
    col.delete(["b", "c", "never"])
    assert (col.document_frequency(1), col.sparse_records(), col.count()) == (0, 1, 1)
    assert col.search_sparse([SparseVector.from_dict({1: 1.0})], 5, None, weigh_idf=True) == [[]]
    # a dense-only write of an id drops its sparse vector from the statistics
    col.upsert(["a"], vec[:1], rows[:1])  # type: ignore[arg-type]
    assert (col.document_frequency(3), col.sparse_records()) == (0, 0)
    with pytest.raises(InvalidInputError, match="do not line up"):
        col.upsert(["x", "y"], vec[:2], rows[:2], [SparseVector.empty()])  # type: ignore[arg-type]


def test_memory_sparse_ties_keep_storage_order_and_filters_apply() -> None:
    database = MemoryDatabase()
    with (
        vecembed.load_provider("mock", dimension=8) as p,
        vecembed.open_store("memory", "ties", p, client=database, sparse=HashedTermsProvider()) as store,
    ):
        store.ingest([{"id": f"d{i}", "text": "same words", "metadata": {"i": i}} for i in range(5)])
        assert [h.id for h in store.search("words", k=3, mode="sparse")] == ["d0", "d1", "d2"]
        assert [h.id for h in store.search("words", k=3, mode="sparse", where={"i": 3})] == ["d3"]


def _reference_sparse(
    docs: dict[str, dict[int, float]], order: list[str], query: dict[int, float]
) -> list[tuple[str, float]]:
    """The BM25-style sparse ranking by brute force: IDF-weighted dot products, ties by storage order."""
    total = len(docs)
    df = {t: sum(1 for d in docs.values() if t in d) for t in query}
    scores: dict[str, float] = {}
    for doc_id in order:
        s, hit = 0.0, False
        for t, w in query.items():
            if t in docs[doc_id]:
                s += w * idf(df[t], total) * docs[doc_id][t]
                hit = True
        if hit:
            scores[doc_id] = s
    return sorted(scores.items(), key=lambda item: (-item[1], order.index(item[0])))


def test_memory_sparse_index_stays_exact_through_replacements_and_deletes_that_move_rows() -> None:
    import random

    rng = random.Random(7)
    col = MemoryCollection("c", dimension=2)
    docs: dict[str, dict[int, float]] = {}
    order: list[str] = []  # storage order as the collection keeps it (a delete moves the last row into the gap)
    for round_ in range(6):
        ids = [f"d{rng.randrange(40)}" for _ in range(15)]
        ids = list(dict.fromkeys(ids))
        vectors = [SparseVector.from_dict({rng.randrange(12): rng.random() + 0.1 for _ in range(3)}) for _ in ids]
        col.upsert(ids, [[1.0, 0.0]] * len(ids), [("t", {"r": round_}, "h")] * len(ids), vectors)
        for doc_id, vector in zip(ids, vectors, strict=True):
            if doc_id not in docs:
                order.append(doc_id)
            docs[doc_id] = dict(zip(vector.indices.tolist(), vector.values.tolist(), strict=True))
        for doc_id in rng.sample(sorted(docs), 4):
            col.delete([doc_id])
            at, last = order.index(doc_id), len(order) - 1
            order[at] = order[last]
            order.pop()
            del docs[doc_id]
        for term in range(12):
            query = {term: 1.0, (term + 5) % 12: 0.5}
            want = _reference_sparse(docs, order, query)[:7]
            got = col.search_sparse([SparseVector.from_dict(query)], 7, None, weigh_idf=True)[0]  # type: ignore[arg-type]
            assert [h.id for h in got] == [i for i, _ in want]
            assert [h.score for h in got] == pytest.approx([s for _, s in want], rel=1e-12)


def test_memory_native_fusion_equals_the_store_fusing_both_legs(
    terms: HashedTermsProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vecembed.memory_store import MemoryStore

    words = "cats dogs birds fish mice owls bees ants frogs moles".split()
    docs = [
        {"id": f"d{i}", "text": " ".join(words[(i * j) % 10] for j in range(1, 2 + i % 5)), "metadata": {"g": i % 3}}
        for i in range(60)
    ]
    queries = ["cats dogs", "owls", "the", "bees frogs mice"]
    database = MemoryDatabase()
    with (
        vecembed.load_provider("mock", dimension=16) as p,
        vecembed.open_store("memory", "fused", p, client=database, sparse=terms) as store,
    ):
        store.ingest(docs)
        store.delete(["d3", "d17"])  # rows move: the index must follow them
        cases = [(None, Fusion()), ({"g": 1}, Fusion(k=5)), (None, Fusion(dense_weight=0.3, depth=20))]
        native = [store.search_many(queries, k=8, mode="hybrid", where=w, fusion=f) for w, f in cases]
        # As for a store without NativeFusion: the Store queries both legs and fuses them (fuse_hits)
        monkeypatch.setattr(vecembed.collection, "NativeFusion", type("NotNative", (), {}))
        calls: list[str] = []
        monkeypatch.setattr(MemoryStore, "query_hybrid", lambda *a: calls.append("native"))
        generic = [store.search_many(queries, k=8, mode="hybrid", where=w, fusion=f) for w, f in cases]
    assert calls == [] and native == generic
    assert all(hits for case in native for hits in case[:1])  # not vacuous: every query found something


# -- the command line ---------------------------------------------------------------------------------


def test_cli_ingest_sparse_and_search_modes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from vecembed.cli import main

    pytest.importorskip("qdrant_client")
    monkeypatch.delenv("VECEMBED_QDRANT_URL", raising=False)
    monkeypatch.setitem(SPARSE_PROVIDERS, "hashed", "sparse_helpers:HashedTermsProvider")
    src = tmp_path / "docs.jsonl"
    rows = [
        {"id": "cat", "text": "the cat sleeps on the zebra rug", "metadata": {"lang": "en"}},
        {"id": "dog", "text": "the dog runs", "metadata": {"lang": "en"}},
        {"id": "chat", "text": "le chat dort", "metadata": {"lang": "fr"}},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    where = ["--db", "qdrant", "-c", "docs", "--path", str(tmp_path / "s"), "-b", "mock"]
    assert main(["ingest", str(src), *where, "--sparse", "hashed", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["written"], report["sparse"], report["sparse_fingerprint"]) == (3, "hashed-terms", "hashed-terms-v1")
    assert main(["search", "zebra", *where, "--mode", "sparse", "--sparse", "hashed", "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["cat"]
    assert (
        main(["search", "zebra", *where, "--mode", "hybrid", "--sparse", "hashed", "--json", "--where", "lang=fr"]) == 0
    )
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["chat"]
    # an ingest without the sparse provider would leave records without sparse vectors: refused, nothing written
    assert main(["ingest", str(src), *where]) == 1
    assert "--sparse hashed on the command line" in capsys.readouterr().err
    # a dense-only collection: hybrid search names the fix
    plain = ["--db", "qdrant", "-c", "plain", "--path", str(tmp_path / "s"), "-b", "mock"]
    assert main(["ingest", str(src), *plain]) == 0
    capsys.readouterr()
    assert main(["search", "zebra", *plain, "--mode", "hybrid", "--sparse", "hashed"]) == 1
    assert "created without sparse vectors" in capsys.readouterr().err
    assert main(["search", "zebra", *plain, "--sparse-opt", "salt=x"]) == 1
    assert "--sparse-opt needs --sparse NAME" in capsys.readouterr().err
