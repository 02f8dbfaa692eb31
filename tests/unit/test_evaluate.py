"""nDCG@k / Recall@k against hand-computed values, and the BEIR reader on the shipped SciFact train split."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vecembed.errors import InvalidInputError
from vecembed.evaluate import load_beir, ndcg_at_k, recall_at_k

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact-train"


def test_ndcg_and_recall_match_hand_computed_values() -> None:
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"z": 0}}  # q3 has no relevant document: left out
    run = {"q1": ["x", "b", "a", "b"], "q2": ["y", "w"]}  # the repeated "b" counts once
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(run, qrels, 10) == pytest.approx((dcg / idcg + 0.0) / 2)
    assert ndcg_at_k(run, qrels, 1) == pytest.approx(0.0)
    assert recall_at_k(run, qrels, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert recall_at_k(run, qrels, 100) == pytest.approx((1 + 0) / 2)


def test_a_folder_without_qrels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="qrels"):
        load_beir(tmp_path)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"no SciFact train split at {SCIFACT}")
def test_scifact_train_reads_whole() -> None:
    data = load_beir(SCIFACT)
    assert (len(data.corpus), len(data.queries)) == (5183, 809)
    assert sum(len(r) for r in data.qrels.values()) == 919
    perfect = {qid: list(rels) for qid, rels in data.qrels.items()}
    assert ndcg_at_k(perfect, data.qrels) == pytest.approx(1.0)
    docs = data.documents()
    assert len(docs) == 5183 and all(doc["text"] for doc in docs)
