"""``vecembed bench --retrieval``: a tiny BEIR folder written here, the memory store, the mock provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecembed.cli import main
from vecembed.cli.retrieval import ModeResult, format_table

CORPUS = {
    "d1": ("Cats", "cats purr and sleep all day"),
    "d2": ("Dogs", "dogs bark at the mail carrier"),
    "d3": ("Birds", "birds sing in the early morning"),
    "d4": ("Fish", "fish swim in the cold river"),
}
QUERIES = {"q1": "why do cats purr", "q2": "dogs bark", "q3": "river fish", "q9": "not judged"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d4", 2)]


def _beir(root: Path, *, split: bool = False) -> Path:
    root.mkdir()
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in CORPUS.items()), encoding="utf-8"
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()), encoding="utf-8"
    )
    qrels = root / "qrels" / "test.tsv" if split else root / "qrels.tsv"
    qrels.parent.mkdir(exist_ok=True)
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS), "utf-8")
    return qrels


def test_dense_retrieval_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _beir(tmp_path / "tiny")
    out = tmp_path / "r.json"
    code = main(
        ["bench", "--retrieval", str(tmp_path / "tiny"), "-b", "mock", "--opt", "dimension=64", "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 documents, 3 judged queries" in printed and "CPU: " in printed
    assert "nDCG@10" in printed and "Recall@100" in printed
    result = json.loads(out.read_text())
    assert (result["documents"], result["queries"], result["db"], result["sparse"]) == (4, 3, "memory", None)
    [dense] = result["results"]
    # the mock provider hashes words: every query shares words with its one relevant document only
    assert dense["mode"] == "dense" and dense["ndcg_at_10"] == pytest.approx(1.0)
    assert dense["recall_at_100"] == pytest.approx(1.0) and dense["queries_per_second"] > 0
    assert result["ingest"]["written"] == 4


def test_a_qrels_file_of_a_split_and_the_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qrels = _beir(tmp_path / "split", split=True)
    assert main(["bench", "--retrieval", str(qrels), "-b", "mock", "--limit-queries", "1", "--json", "-"]) == 0
    payload = capsys.readouterr().out
    assert json.loads(payload[payload.index("{") :])["queries"] == 1
    assert main(["bench", "--retrieval", str(qrels), "-b", "mock", "--modes", "hybrid"]) == 1
    assert "need --sparse" in capsys.readouterr().err
    assert main(["bench", "--retrieval", str(qrels), "-b", "mock", "--modes", "fuzzy", "--sparse", "bm25"]) == 1
    assert "each mode must be one of dense, sparse, hybrid" in capsys.readouterr().err
    assert main(["bench", "--retrieval", str(tmp_path / "nowhere"), "-b", "mock"]) == 1
    assert "not a BEIR folder" in capsys.readouterr().err
    assert main(["bench", "--retrieval", str(qrels), "-b", "mock", "--backends", "onnx"]) == 1
    assert "unrecognized arguments: --backends onnx" in capsys.readouterr().err


def test_format_table() -> None:
    lines = format_table([ModeResult("dense", 0.6451, 0.9, 123.45, 1.0), ModeResult("hybrid", 0.7, 0.95, 50.0, 2.0)])
    assert lines[0].split() == ["mode", "nDCG@10", "Recall@100", "queries/s"]
    assert lines[1].split() == ["dense", "0.6451", "0.9000", "123.5"]
    assert lines[2].split()[0] == "hybrid"


def test_every_mode_with_bm25(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("py_rust_stemmers", reason="pip install 'vecembed[sparse]'")
    _beir(tmp_path / "tiny")
    assert main(["bench", "--retrieval", str(tmp_path / "tiny"), "-b", "mock", "--sparse", "bm25", "--json", "-"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result["sparse"] == "bm25" and [r["mode"] for r in result["results"]] == ["dense", "sparse", "hybrid"]
    by_mode = {r["mode"]: r for r in result["results"]}
    # BM25 finds each query's document by its words (purr, bark, river/fish stem to shared terms)
    assert by_mode["sparse"]["ndcg_at_10"] == pytest.approx(1.0)
    assert by_mode["hybrid"]["ndcg_at_10"] == pytest.approx(1.0) and by_mode["hybrid"]["queries_per_second"] > 0
