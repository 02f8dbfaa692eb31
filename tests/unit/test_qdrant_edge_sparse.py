"""Qdrant Edge's sparse vectors (qdrant-edge-py 0.9): IDF computed by Edge, both hybrid legs from one Edge batch.

Hand-made :class:`~vecembed.sparse.SparseVector` s, so the scores can be worked out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qdrant_edge", reason="pip install 'vecembed[qdrant-edge]'")

from vecembed_qdrant_edge import QdrantEdgeStore
from vecembed_qdrant_edge.store import open_qdrant_edge_store

from vecembed.errors import UnsupportedError
from vecembed.identity import CollectionIdentity
from vecembed.records import Record
from vecembed.sparse import Fusion, SparseVector, idf, reciprocal_rank_fusion
from vecembed.store import NativeFusion, SparseStore

DENSE = CollectionIdentity(fingerprint="fp-dense", model="m", dimension=2)
SPARSE = CollectionIdentity(
    fingerprint="fp-dense", model="m", dimension=2, sparse_fingerprint="fp-bm25", sparse_idf=True
)


def _records(*items: tuple[str, dict[str, Any]]) -> list[Record]:
    return [Record(id=i, text=f"text {i}", metadata=m, content_hash=f"h-{i}") for i, m in items]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QdrantEdgeStore]:
    s = open_qdrant_edge_store("hybrid", path=str(tmp_path))
    s.create(SPARSE)
    s.write_sparse(
        _records(("a", {"lang": "en"}), ("b", {"lang": "de"}), ("c", {"lang": "en"}), ("d", {"lang": "en"})),
        np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6]], np.float32),
        [
            SparseVector.from_dict({1: 1.0, 2: 1.0}),
            SparseVector.from_dict({1: 1.0, 3: 2.0}),
            SparseVector.empty(),  # only stop words: stored, and found by the dense leg only
            SparseVector.from_dict({2**32 - 1: 1.0}),  # the whole 32-bit term space is Edge's
        ],
    )
    yield s
    s.close()


def test_sparse_search_is_weighted_by_edges_idf(store: QdrantEdgeStore) -> None:
    assert isinstance(store, SparseStore) and isinstance(store, NativeFusion) and store.sparse_idf == "database"
    [hits] = store.query_sparse([SparseVector.from_dict({1: 1.0, 3: 1.0})], 10, None)
    # Edge counts the 3 points whose sparse vector has a term (an empty one is not in its index).
    assert [h.id for h in hits] == ["b", "a"]
    assert hits[0].score == pytest.approx(idf(2, 3) + 2 * idf(1, 3), rel=1e-5)
    assert hits[0].text == "text b" and hits[0].metadata == {"lang": "de"}
    [[top]] = store.query_sparse([SparseVector.from_dict({2**32 - 1: 1.0})], 1, None)
    assert top.id == "d"
    assert store.query_sparse([SparseVector.empty()], 5, None) == [[]]
    assert [h.id for h in store.query_sparse([SparseVector.from_dict({1: 1.0})], 5, {"lang": "en"})[0]] == ["a"]


def test_hybrid_is_rrf_of_both_legs_with_the_filter_on_each(store: QdrantEdgeStore) -> None:
    dense = np.array([[1, 0]], np.float32)
    query = SparseVector.from_dict({3: 1.0})
    [fused] = store.query_hybrid(dense, [query], 4, None, Fusion())
    [dense_hits] = store.query(dense, 4, None)
    [sparse_hits] = store.query_sparse([query], 4, None)
    expected = reciprocal_rank_fusion([dense_hits, sparse_hits], 4)
    assert [h.id for h in fused] == [h.id for h, _ in expected]
    assert [h.score for h in fused] == pytest.approx([s for _, s in expected], rel=1e-5)
    [en] = store.query_hybrid(dense, [query], 4, {"lang": "en"}, Fusion())
    assert "b" not in {h.id for h in en} and {h.id for h in en} == {"a", "c", "d"}
    # a query without terms: the dense ranking alone, no error
    [only_dense] = store.query_hybrid(dense, [SparseVector.empty()], 4, None, Fusion())
    assert [h.id for h in only_dense] == [h.id for h in dense_hits]
    [weighted] = store.query_hybrid(dense, [query], 4, None, Fusion(k=10, dense_weight=2.0))
    expected = reciprocal_rank_fusion([dense_hits, sparse_hits], 4, k=10, weights=[2.0, 1.0])
    assert [(h.id, h.score) for h in weighted] == [(h.id, pytest.approx(s, rel=1e-5)) for h, s in expected]
    # weights: the sparse leg alone decides when the dense one weighs nothing
    [sparse_only] = store.query_hybrid(dense, [query], 1, None, Fusion(dense_weight=0.0))
    assert sparse_only[0].id == "b"


def test_tied_fused_scores_keep_the_dense_legs_order_every_time(tmp_path: Path) -> None:
    # Edge's own Fusion.Rrf ordered ties differently from one process to the next; the store's order must not
    # depend on it: (dense rank 1, sparse rank 2) and (2, 1) tie, the better dense rank first, as in every store.
    s = open_qdrant_edge_store("ties", path=str(tmp_path))
    s.create(SPARSE)
    angles = np.linspace(0.0, 1.2, 8)
    names = [f"p{i}" for i in range(8)]
    s.write_sparse(
        _records(*((n, {}) for n in names)),
        np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32),  # dense order p0 > p1 > ... > p7
        # sparse order swaps each pair: p1 > p0 > p3 > p2 > ... (term 1's weight falls, pairs swapped)
        [SparseVector.from_dict({1: float(8 - (i ^ 1))}) for i in range(8)],
    )
    dense = np.array([[1.0, 0.0]], np.float32)
    query = [SparseVector.from_dict({1: 1.0})]
    [dense_hits] = s.query(dense, 8, None)
    [sparse_hits] = s.query_sparse(query, 8, None)
    assert [h.id for h in dense_hits] == names and [h.id for h in sparse_hits] == [names[i ^ 1] for i in range(8)]
    expected = [h.id for h, _ in reciprocal_rank_fusion([dense_hits, sparse_hits], 8)]
    assert expected == names  # every pair ties; the dense order breaks each tie
    for _ in range(5):
        [fused] = s.query_hybrid(dense, query, 8, None, Fusion())
        assert [h.id for h in fused] == expected
        assert fused[0].score == pytest.approx(fused[1].score) and fused[0].text == "text p0"
    s.close()


def test_a_dense_only_shard_says_how_to_gain_sparse_vectors(tmp_path: Path) -> None:
    s = open_qdrant_edge_store("dense", path=str(tmp_path))
    s.create(DENSE)
    with pytest.raises(UnsupportedError, match=r"without sparse vectors.*re-ingesting"):
        s.write_sparse(_records(("a", {})), np.ones((1, 2), np.float32), [SparseVector.from_dict({1: 1.0})])
    with pytest.raises(UnsupportedError, match="without sparse vectors"):
        s.query_sparse([SparseVector.from_dict({1: 1.0})], 3, None)
    assert s.count() == 0
    s.close()
