"""Retrieval quality as BEIR and MTEB measure it: nDCG@k and Recall@k over a qrels file.

::

    data = vecembed.evaluate.load_beir("../shared/data/scifact-train")
    run = {qid: [hit.id for hit in store.search(text, k=100)] for qid, text in data.queries.items()}
    print(ndcg_at_k(run, data.qrels, 10), recall_at_k(run, data.qrels, 100))

Ids are compared exactly (strings). A query without relevant documents in the qrels
is left out of the mean, as ``pytrec_eval`` does; a query of the qrels missing from
the run counts 0.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vecembed.errors import InvalidInputError

__all__ = ["BeirData", "load_beir", "ndcg_at_k", "recall_at_k"]

#: query id -> {document id: relevance grade}
Qrels = Mapping[str, Mapping[str, int]]
#: query id -> document ids, best first
Run = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class BeirData:
    """A BEIR folder: ``corpus`` {id: {"title", "text"}}, ``queries`` {id: text} (only those with qrels), ``qrels``."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def documents(self, *, title: bool = True) -> list[dict[str, object]]:
        """The corpus as vecembed documents ``{"id", "text", "metadata"}`` (title + text, as BEIR embeds them)."""
        out: list[dict[str, object]] = []
        for doc_id, doc in self.corpus.items():
            text = f"{doc['title']} {doc['text']}".strip() if title and doc.get("title") else doc["text"]
            out.append({"id": doc_id, "text": text, "metadata": {"title": doc.get("title", "")}})
        return out


def load_beir(folder: str | Path, *, qrels: str | Path | None = None) -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv`` (or ``qrels/*.tsv``) from a BEIR folder.

    ``qrels``: that qrels file instead (e.g. ``qrels/test.tsv`` of a folder with several splits).
    """
    root = Path(folder)
    qrels_path = root / "qrels.tsv" if qrels is None else Path(qrels)
    if qrels is not None and not qrels_path.is_file():
        raise InvalidInputError(f"{qrels_path}: no such qrels file")
    if not qrels_path.is_file():
        found = sorted((root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        if len(found) != 1:
            raise InvalidInputError(f"{root}: no qrels.tsv (nor exactly one qrels/*.tsv) in this BEIR folder")
        qrels_path = found[0]
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (root / name).is_file():
            raise InvalidInputError(f"{root}: no {name} in this BEIR folder")
    judged: dict[str, dict[str, int]] = {}
    with qrels_path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t")):
            if i == 0 and row and not row[-1].strip().lstrip("-").isdigit():
                continue  # header
            if len(row) != 3:
                raise InvalidInputError(f"{qrels_path}:{i + 1}: expected query-id, corpus-id, score; got {row!r}")
            judged.setdefault(row[0], {})[row[1]] = int(row[2])
    corpus: dict[str, dict[str, str]] = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                corpus[str(doc["_id"])] = {"title": doc.get("title") or "", "text": doc.get("text") or ""}
    queries: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                query = json.loads(line)
                if str(query["_id"]) in judged:
                    queries[str(query["_id"])] = query["text"]
    return BeirData(corpus=corpus, queries=queries, qrels=judged)


def _judged(qrels: Qrels) -> list[str]:
    return [qid for qid, rels in qrels.items() if any(grade > 0 for grade in rels.values())]


def ndcg_at_k(run: Run, qrels: Qrels, k: int = 10) -> float:
    """Mean nDCG@k (graded gains ``rel / log2(rank + 1)``, as ``pytrec_eval``) over the judged queries."""
    scores = []
    for qid in _judged(qrels):
        rels = qrels[qid]
        ranked = list(dict.fromkeys(run.get(qid, ())))[:k]
        dcg = sum(rels.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked))
        ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
        scores.append(dcg / idcg)
    return sum(scores) / len(scores) if scores else 0.0


def recall_at_k(run: Run, qrels: Qrels, k: int = 100) -> float:
    """Mean Recall@k: the share of each query's relevant documents found in its first ``k``."""
    scores = []
    for qid in _judged(qrels):
        relevant = {doc for doc, grade in qrels[qid].items() if grade > 0}
        found = set(list(dict.fromkeys(run.get(qid, ())))[:k]) & relevant
        scores.append(len(found) / len(relevant))
    return sum(scores) / len(scores) if scores else 0.0
