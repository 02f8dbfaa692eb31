"""The sparse contract: SparseVector, idf(), Fusion and reciprocal_rank_fusion against hand-computed values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

import vecembed
from vecembed import sparse
from vecembed.errors import InvalidInputError, UnknownProviderError
from vecembed.sparse import Fusion, SparseVector, idf, reciprocal_rank_fusion


@dataclass(frozen=True)
class Item:
    id: str


def test_the_sparse_names_are_exported_from_vecembed() -> None:
    for name in (
        "SparseVector",
        "SparseModelInfo",
        "SparseEmbeddingProvider",
        "load_sparse_provider",
        "available_sparse_providers",
    ):
        assert name in vecembed.__all__
        assert getattr(vecembed, name) is getattr(sparse, name)
    assert vecembed.available_sparse_providers() == ["bm25"]


def test_an_unknown_sparse_provider_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownProviderError, match=r"'splade'.*available: bm25"):
        vecembed.load_sparse_provider("splade")


def test_a_sparse_vector_is_sorted_typed_and_read_only() -> None:
    v = SparseVector([5, 1, 3], [0.5, 2.0, 1.0])
    assert v.indices.tolist() == [1, 3, 5] and v.values.tolist() == [2.0, 1.0, 0.5]
    assert (v.indices.dtype, v.values.dtype) == (np.uint32, np.float32)
    assert len(v) == 3 and v.to_dict() == {1: 2.0, 3: 1.0, 5: 0.5}
    with pytest.raises(ValueError, match="read-only"):
        v.values[0] = 9.0
    assert SparseVector.from_dict(v.to_dict()) == v and hash(SparseVector.from_dict(v.to_dict())) == hash(v)
    assert SparseVector([2**32 - 1], [1.0]).indices.tolist() == [2**32 - 1]


def test_the_dot_product_sums_the_shared_terms_only() -> None:
    a = SparseVector.from_dict({1: 2.0, 3: 1.0, 5: 0.5})
    b = SparseVector.from_dict({3: 4.0, 5: 2.0, 7: 9.0})
    assert a.dot(b) == b.dot(a) == pytest.approx(1.0 * 4.0 + 0.5 * 2.0)
    assert a.dot(SparseVector.empty()) == 0.0 and len(SparseVector.empty()) == 0


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 1], [1.0, 2.0], "repeat a term id"),
        ([-1], [1.0], r"integers in \[0, 2\*\*32\)"),
        ([2**32], [1.0], r"integers in \[0, 2\*\*32\)"),
        ([1.5], [1.0], r"integers in \[0, 2\*\*32\)"),
        ([1, 2], [1.0], "2 indices but 1 values"),
        ([1], [math.nan], "finite"),
    ],
)
def test_a_bad_sparse_vector_is_refused(indices: list[float], values: list[float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SparseVector(np.asarray(indices), np.asarray(values))


def test_idf_is_qdrants_bm25_formula() -> None:
    # ln(1 + (N - n + 0.5) / (n + 0.5))
    assert idf(1, 10) == pytest.approx(math.log(1 + 9.5 / 1.5)) == pytest.approx(1.9924301646902063)
    assert idf(10, 10) == pytest.approx(math.log(1 + 0.5 / 10.5))
    assert 0 < idf(10, 10) < idf(5, 10) < idf(1, 10)  # rarer is heavier, a term in every document still counts
    assert idf(0, 0) == pytest.approx(math.log(2.0))
    assert idf(-3, 10) == idf(0, 10)  # negative counts are clamped, never a math domain error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": -1}, "Fusion.k"),
        ({"k": True}, "Fusion.k"),
        ({"dense_weight": math.nan}, "Fusion.dense_weight"),
        ({"sparse_weight": -0.5}, "Fusion.sparse_weight"),
        ({"depth": 0}, "Fusion.depth"),
    ],
)
def test_bad_fusion_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Fusion(**kwargs)  # type: ignore[arg-type]


def test_fusion_defaults_to_the_tuned_rrf_k_and_equal_weights() -> None:
    assert Fusion() == Fusion(k=10, dense_weight=1.0, sparse_weight=1.0, depth=None) and sparse.RRF_K == 10


def test_reciprocal_rank_fusion_matches_hand_computed_scores() -> None:
    a, b, c, d = (Item(x) for x in "abcd")
    dense, sparse_ranking = [a, b, c], [c, d, a]
    fused = reciprocal_rank_fusion([dense, sparse_ranking], limit=10, k=60)
    # a: 1/61 + 1/63, c: 1/63 + 1/61 (a tie, kept in order of first appearance), b and d: 1/62 each
    assert [item.id for item, _ in fused] == ["a", "c", "b", "d"]
    assert [score for _, score in fused] == pytest.approx([1 / 61 + 1 / 63, 1 / 61 + 1 / 63, 1 / 62, 1 / 62])
    assert [item.id for item, _ in reciprocal_rank_fusion([dense, sparse_ranking], limit=2, k=60)] == ["a", "c"]
    # the default k (10): a = 1/11 + 1/13
    assert reciprocal_rank_fusion([dense, sparse_ranking], limit=1)[0][1] == pytest.approx(1 / 11 + 1 / 13)


def test_a_limit_inside_tied_scores_keeps_the_first_appearances_and_their_items() -> None:
    a, b, c, d = (Item(x) for x in "abcd")
    # k=10: a and d score 1/11 + 1/14, b and c 1/12 + 1/13 (less): two tied pairs, cut inside the second one
    fused = reciprocal_rank_fusion([[a, b, c, d], [Item("d"), Item("c"), Item("b"), Item("a")]], limit=3)
    assert [item.id for item, _ in fused] == ["a", "d", "b"]
    assert all(item is first for (item, _), first in zip(fused, (a, d, b), strict=True))  # the dense leg's items
    assert fused[0][1] == fused[1][1] == pytest.approx(1 / 11 + 1 / 14)


def test_weights_and_k_change_the_fused_order() -> None:
    a, b, c, d = (Item(x) for x in "abcd")
    fused = reciprocal_rank_fusion([[a, b, c], [c, d, a]], limit=4, k=0, weights=[1.0, 3.0])
    # k=0: a = 1/1 + 3/3 = 2, b = 1/2, c = 1/3 + 3/1, d = 3/2
    assert [(item.id, score) for item, score in fused] == [
        ("c", pytest.approx(10 / 3)),
        ("a", pytest.approx(2.0)),
        ("d", pytest.approx(1.5)),
        ("b", pytest.approx(0.5)),
    ]
    with pytest.raises(InvalidInputError, match="1 weights for 2 rankings"):
        reciprocal_rank_fusion([[a], [b]], limit=1, weights=[1.0])


def test_fusing_an_empty_ranking_keeps_the_other() -> None:
    a, b = Item("a"), Item("b")
    fused = reciprocal_rank_fusion([[a, b], []], limit=5)
    assert [(item.id, score) for item, score in fused] == [("a", pytest.approx(1 / 11)), ("b", pytest.approx(1 / 12))]
