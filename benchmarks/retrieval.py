"""Retrieval quality of dense, BM25 and hybrid search on SciFact's *train* claims, and BM25's encoding speed (issue 24).

An exact evaluator in one process, no database: what a correct store returns, so the stores' figures can be
checked against it (±0.002 nDCG) and the defaults tuned without one.

* ``dense``  — ``vecembed.load_provider("onnx")`` (all-MiniLM-L6-v2) over title + text, exact cosine, top 100;
* ``bm25``   — ``vecembed.load_sparse_provider("bm25", ...)`` document vectors; each query term weighted by its
  IDF over this corpus (``vecembed.sparse.idf`` of the corpus's own document frequencies, as a store computes
  it), scores as sparse dot products (scipy.sparse), top 100;
* ``hybrid`` — ``vecembed.sparse.reciprocal_rank_fusion`` of the two top-100 lists (k, weights).

nDCG@10 and Recall@100 by ``vecembed.evaluate``. The grid runs over BM25's k1, b, avg_len and title handling
(title + text, or text only), then over RRF's k and the dense/sparse weights for the best BM25 settings; the
report gives the issue's stated defaults' figures (the reference), the best of the grid, the package's defaults
measured end to end through the provider (with a bootstrap interval of their gain) and, as an overfitting check,
settings tuned on half the claims measured on the other half. The grid computes BM25
weights from term counts with the provider's formula (checked equal to the provider's own vectors before the
grid starts), so each setting costs a matrix product, not a re-encoding.

``--speed``: documents/s of ``BM25Provider.embed_documents`` (a new provider: every stem a cache miss, as in
an ingest; and again warm) against the onnx provider's ``embed_documents`` on the same corpus texts, one run,
ratio (issue 24's acceptance: >= 10x). Every result carries the CPU line.

Run ``python benchmarks/retrieval.py --help``. Dense vectors are cached (``--cache``) between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vecembed  # noqa: E402
from benchmarks.stores import SCIFACT_TRAIN as DATA  # noqa: E402
from vecembed.cpu import cpu_info  # noqa: E402
from vecembed.evaluate import BeirData, load_beir, ndcg_at_k, recall_at_k  # noqa: E402
from vecembed.sparse import Fusion, idf, reciprocal_rank_fusion  # noqa: E402

DEPTH = 100
#: The grid. avg_len "corpus" is the corpus's own mean length in terms.
K1S = (0.6, 0.9, 1.2, 1.5, 2.0)
BS = (0.5, 0.65, 0.75, 0.9, 1.0)
AVG_LENS: tuple[float | str, ...] = (100.0, 150.0, 200.0, 256.0, "corpus")
TITLES = (True, False)
RRF_KS = (5, 10, 15, 20, 30, 40, 60, 100)
WEIGHTS = ((1.0, 1.0), (1.0, 1.2), (1.0, 1.5), (1.0, 2.0), (1.2, 1.0), (1.5, 1.0), (2.0, 1.0))
#: The issue's stated defaults, the reference that tuning is measured against: BM25 (title, k1, b, avg_len), RRF k.
ISSUE_BM25 = (True, 1.2, 0.75, 256.0)
ISSUE_RRF_K = 60


try:
    import scipy.sparse as _sp
except ImportError:  # pragma: no cover - scipy comes with the dev extra
    _sp = None


@dataclass(frozen=True)
class Ranked:
    """One entry of a ranking: what reciprocal_rank_fusion needs (an ``id``)."""

    id: str


def cpu_line() -> str:
    return cpu_info().summary


def texts_of(data: BeirData, *, title: bool) -> tuple[list[str], list[str]]:
    docs = data.documents(title=title)
    return [str(d["id"]) for d in docs], [str(d["text"]) for d in docs]


def metrics(run: dict[str, list[str]], data: BeirData, queries: Sequence[str] | None = None) -> dict[str, float]:
    qrels = data.qrels if queries is None else {q: data.qrels[q] for q in queries}
    part = run if queries is None else {q: run[q] for q in queries if q in run}
    return {"ndcg@10": round(ndcg_at_k(part, qrels, 10), 4), "recall@100": round(recall_at_k(part, qrels, 100), 4)}


def top_ids(
    scores: np.ndarray, doc_ids: Sequence[str], qids: Sequence[str], depth: int = DEPTH
) -> dict[str, list[str]]:
    """Each query's ``depth`` best documents (ties: corpus order), as ids."""
    part = np.argpartition(-scores, depth, axis=1)[:, :depth]
    run: dict[str, list[str]] = {}
    for row, qid in enumerate(qids):
        cand = part[row]
        order = cand[np.lexsort((cand, -scores[row, cand]))]
        run[qid] = [doc_ids[i] for i in order]
    return run


# -- dense ---------------------------------------------------------------------------------------------------


def dense_run(data: BeirData, cache: Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    doc_ids, texts = texts_of(data, title=True)
    qids = list(data.queries)
    with vecembed.load_provider("onnx") as provider:
        key = hashlib.sha256((provider.info.fingerprint + "\0" + "\0".join(texts)).encode()).hexdigest()[:16]
        path = cache / f"scifact-dense-{key}.npy"
        seconds = None
        if path.is_file():
            docs = np.load(path)
        else:
            started = time.perf_counter()
            docs = provider.embed_documents(texts)
            seconds = time.perf_counter() - started
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, docs)
        queries = provider.embed_queries([data.queries[q] for q in qids])
        model = provider.info.name
    run = top_ids(queries @ docs.T, doc_ids, qids)
    return run, {"model": model, "encode_seconds": None if seconds is None else round(seconds, 1)}


# -- BM25 ----------------------------------------------------------------------------------------------------


@dataclass
class Counts:
    """A corpus as term counts: documents x columns (one column per term id), and the queries' columns."""

    doc_ids: list[str]
    tf: Any  # scipy.sparse.csr_matrix of float64 counts
    lengths: np.ndarray  # terms per document
    columns: np.ndarray  # term id of each column (sorted)
    queries: Any  # csr_matrix: queries x columns, 1 where the query has the term
    idf: np.ndarray  # per column, over this corpus

    @property
    def average(self) -> float:
        return float(self.lengths.mean())


def bm25_counts(data: BeirData, *, title: bool) -> Counts:
    doc_ids, texts = texts_of(data, title=title)
    provider = vecembed.load_sparse_provider("bm25")
    per_doc = [Counter(provider.tokenize(t)) for t in texts]  # type: ignore[attr-defined]
    columns = np.unique(np.fromiter(itertools.chain.from_iterable(per_doc), np.uint32))
    col = {int(t): i for i, t in enumerate(columns)}
    indptr = np.cumsum([0, *map(len, per_doc)])
    indices = np.fromiter((col[t] for c in per_doc for t in c), np.int64, int(indptr[-1]))
    values = np.fromiter((n for c in per_doc for n in c.values()), np.float64, int(indptr[-1]))
    tf = _sp.csr_matrix((values, indices, indptr), shape=(len(texts), len(columns)))
    tf.sort_indices()
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    df = np.bincount(tf.indices, minlength=len(columns))
    idfs = np.array([idf(int(n), len(texts)) for n in df])
    qrows, qcols = [], []
    for row, vector in enumerate(provider.embed_queries([data.queries[q] for q in data.queries])):
        for term in vector.indices.tolist():
            if term in col:  # a term no document has scores nothing
                qrows.append(row)
                qcols.append(col[term])
    queries = _sp.csr_matrix((np.ones(len(qrows)), (qrows, qcols)), shape=(len(data.queries), len(columns)))
    return Counts(doc_ids, tf, lengths, columns, queries, idfs)


def bm25_weights(counts: Counts, k1: float, b: float, avg_len: float) -> Any:
    """The provider's document weights, ``tf*(k1+1)/(tf + k1*(1-b+b*len/avg_len))``, for the whole corpus."""
    tf = counts.tf
    rows = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))
    norm = k1 * (1.0 - b + b * counts.lengths[rows] / avg_len)
    return _sp.csr_matrix((tf.data * (k1 + 1.0) / (tf.data + norm), tf.indices, tf.indptr), shape=tf.shape)


def bm25_run(counts: Counts, weights: Any, qids: Sequence[str]) -> dict[str, list[str]]:
    scores = (counts.queries.multiply(counts.idf[None, :]).tocsr() @ weights.T).toarray()
    return top_ids(scores, counts.doc_ids, qids)


def check_grid_formula(data: BeirData, counts: Counts, *, title: bool) -> float:
    """The largest difference between the grid's weights and the provider's own vectors (default options)."""
    _, texts = texts_of(data, title=title)
    provider = vecembed.load_sparse_provider("bm25")
    options = provider.info.options
    weights = bm25_weights(counts, options["k1"], options["b"], options["avg_len"]).tocsr()
    worst = 0.0
    for row, vector in enumerate(provider.embed_documents(texts)):
        lo, hi = weights.indptr[row], weights.indptr[row + 1]
        mine = dict(zip(counts.columns[weights.indices[lo:hi]].tolist(), weights.data[lo:hi].tolist(), strict=True))
        if sorted(mine) != vector.indices.tolist():
            raise SystemExit(f"grid formula: document {row} has other terms than the provider gives")
        worst = max(
            worst,
            float(np.max(np.abs(np.array([mine[t] for t in vector.indices.tolist()]) - vector.values), initial=0.0)),
        )
    return worst


def provider_run(data: BeirData, options: dict[str, Any], *, title: bool) -> dict[str, list[str]]:
    """BM25 end to end through the provider (no grid shortcut): its vectors, corpus IDF, dot products."""
    doc_ids, texts = texts_of(data, title=title)
    provider = vecembed.load_sparse_provider("bm25", **options)
    vectors = provider.embed_documents(texts)
    columns = np.unique(np.concatenate([v.indices for v in vectors]))
    indptr = np.cumsum([0, *map(len, vectors)])
    indices = np.searchsorted(columns, np.concatenate([v.indices for v in vectors]))
    docs = _sp.csr_matrix(
        (np.concatenate([v.values for v in vectors]).astype(np.float64), indices, indptr),
        shape=(len(vectors), len(columns)),
    )
    idfs = np.array([idf(int(n), len(vectors)) for n in np.bincount(indices, minlength=len(columns))])
    qids = list(data.queries)
    rows, cols, vals = [], [], []
    for row, q in enumerate(provider.embed_queries([data.queries[q] for q in qids])):
        at = np.searchsorted(columns, q.indices)
        known = (at < len(columns)) & (columns[np.minimum(at, len(columns) - 1)] == q.indices)
        rows += [row] * int(known.sum())
        cols += at[known].tolist()
        vals += (q.values[known] * idfs[at[known]]).tolist()
    queries = _sp.csr_matrix((vals, (rows, cols)), shape=(len(qids), len(columns)))
    return top_ids((queries @ docs.T).toarray(), doc_ids, qids)


def fuse(
    dense: dict[str, list[str]], sparse: dict[str, list[str]], k: int, weights: tuple[float, float]
) -> dict[str, list[str]]:
    out = {}
    for qid, ranked in dense.items():
        fused = reciprocal_rank_fusion(
            [[Ranked(i) for i in ranked], [Ranked(i) for i in sparse[qid]]], DEPTH, k=k, weights=list(weights)
        )
        out[qid] = [item.id for item, _ in fused]
    return out


# -- the grid ------------------------------------------------------------------------------------------------


def tune(data: BeirData, cache: Path, *, quick: bool = False) -> dict[str, Any]:
    qids = list(data.queries)
    halves = (qids[0::2], qids[1::2])
    print("dense: onnx over title + text ...", flush=True)
    dense, dense_meta = dense_run(data, cache)
    print("  ", metrics(dense, data), dense_meta, flush=True)

    counts = {title: bm25_counts(data, title=title) for title in TITLES}
    worst = check_grid_formula(data, counts[True], title=True)
    print(f"grid formula vs provider vectors: max |diff| {worst:.2e}", flush=True)
    averages = {title: round(c.average, 1) for title, c in counts.items()}

    grid: list[dict[str, Any]] = []
    runs: dict[tuple[Any, ...], dict[str, list[str]]] = {}
    k1s, bs = ((1.2,), (0.75,)) if quick else (K1S, BS)
    for title, k1, b, avg in itertools.product(TITLES, k1s, bs, AVG_LENS):
        avg_len = counts[title].average if avg == "corpus" else float(avg)
        run = bm25_run(counts[title], bm25_weights(counts[title], k1, b, avg_len), qids)
        key = (title, k1, b, avg)
        runs[key] = run
        grid.append(
            {
                "title": title,
                "k1": k1,
                "b": b,
                "avg_len": avg,
                **metrics(run, data),
                "halves": [metrics(run, data, h)["ndcg@10"] for h in halves],
            }
        )
    grid.sort(key=lambda r: -r["ndcg@10"])
    default_key = ISSUE_BM25
    default_bm25 = next(r for r in grid if (r["title"], r["k1"], r["b"], r["avg_len"]) == default_key)
    print("bm25 default:", default_bm25, "\nbm25 best 5:", *grid[:5], sep="\n  ", flush=True)

    hybrid: list[dict[str, Any]] = []
    keys = [default_key] + [(r["title"], r["k1"], r["b"], r["avg_len"]) for r in grid[:4]]
    for key in dict.fromkeys(keys):
        for k, w in itertools.product(RRF_KS, WEIGHTS):
            run = fuse(dense, runs[key], k, w)
            hybrid.append(
                {
                    "title": key[0],
                    "k1": key[1],
                    "b": key[2],
                    "avg_len": key[3],
                    "rrf_k": k,
                    "dense_weight": w[0],
                    "sparse_weight": w[1],
                    **metrics(run, data),
                    "halves": [metrics(run, data, h)["ndcg@10"] for h in halves],
                }
            )
    hybrid.sort(key=lambda r: -r["ndcg@10"])
    default_hybrid = next(
        r
        for r in hybrid
        if (r["title"], r["k1"], r["b"], r["avg_len"]) == default_key
        and r["rrf_k"] == ISSUE_RRF_K
        and (r["dense_weight"], r["sparse_weight"]) == (1.0, 1.0)
    )
    print("hybrid default:", default_hybrid, "\nhybrid best 5:", *hybrid[:5], sep="\n  ", flush=True)

    # Overfitting check: settings picked on one half of the claims, measured on the other half.
    split = []
    for pick, other in ((0, 1), (1, 0)):
        best_b = max(grid, key=lambda r: r["halves"][pick])
        best_h = max(hybrid, key=lambda r: r["halves"][pick])
        split.append(
            {
                "tuned_on_half": pick,
                "bm25_settings": {k: best_b[k] for k in ("title", "k1", "b", "avg_len")},
                "bm25_other_half": {"default": default_bm25["halves"][other], "tuned": best_b["halves"][other]},
                "hybrid_settings": {
                    k: best_h[k] for k in ("title", "k1", "b", "avg_len", "rrf_k", "dense_weight", "sparse_weight")
                },
                "hybrid_other_half": {"default": default_hybrid["halves"][other], "tuned": best_h["halves"][other]},
            }
        )
    return {
        "dense": {**metrics(dense, data), **dense_meta},
        "corpus_average_terms": averages,
        "grid_formula_max_abs_diff": worst,
        "bm25_issue_defaults": default_bm25,
        "bm25_grid": grid,
        "hybrid_issue_defaults": default_hybrid,
        "hybrid_grid": hybrid,
        "half_split": split,
        "_dense_run": dense,
        "_issue_sparse_run": runs[default_key],
    }


def per_query_ndcg(run: dict[str, list[str]], data: BeirData) -> np.ndarray:
    return np.array([ndcg_at_k({q: run.get(q, [])}, {q: data.qrels[q]}, 10) for q in data.queries])


def paired_interval(new: np.ndarray, old: np.ndarray, rounds: int = 2000) -> list[float]:
    """A 95 % bootstrap interval (over the claims) of the mean nDCG@10 difference ``new - old``."""
    diff = new - old
    draws = np.random.default_rng(0).integers(0, diff.size, (rounds, diff.size))
    return [round(float(x), 4) for x in np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])]


def package_defaults(data: BeirData, dense: dict[str, list[str]], issue_sparse: dict[str, list[str]]) -> dict[str, Any]:
    """The package's defaults end to end (the provider's own vectors, no grid shortcut) against the issue's."""
    fusion = Fusion()
    weights = (fusion.dense_weight, fusion.sparse_weight)
    options = dict(vecembed.load_sparse_provider("bm25").info.options)
    sparse = provider_run(data, {}, title=True)
    hybrid = fuse(dense, sparse, fusion.k, weights)
    issue_hybrid = fuse(dense, issue_sparse, ISSUE_RRF_K, (1.0, 1.0))
    return {
        "bm25_options": options,
        "title": True,
        "rrf_k": fusion.k,
        "weights": list(weights),
        "bm25": metrics(sparse, data),
        "hybrid": metrics(hybrid, data),
        "bm25_vs_issue_95ci": paired_interval(per_query_ndcg(sparse, data), per_query_ndcg(issue_sparse, data)),
        "hybrid_vs_issue_95ci": paired_interval(per_query_ndcg(hybrid, data), per_query_ndcg(issue_hybrid, data)),
    }


# -- speed ---------------------------------------------------------------------------------------------------


def speed(data: BeirData, repeats: int) -> dict[str, Any]:
    _, texts = texts_of(data, title=True)
    cold, warm = [], []
    for _ in range(repeats):
        provider = vecembed.load_sparse_provider("bm25")
        started = time.perf_counter()
        provider.embed_documents(texts)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        provider.embed_documents(texts)
        warm.append(time.perf_counter() - started)
    with vecembed.load_provider("onnx") as dense:
        dense.embed_documents(texts[:32])  # warm-up: the session's first run allocates
        started = time.perf_counter()
        dense.embed_documents(texts)
        dense_s = time.perf_counter() - started
        threads = getattr(dense, "threads", None)
    n = len(texts)
    cold_rate, warm_rate, dense_rate = n / statistics.median(cold), n / statistics.median(warm), n / dense_s
    return {
        "documents": n,
        "bm25_cold_docs_per_s": round(cold_rate),
        "bm25_warm_docs_per_s": round(warm_rate),
        "onnx_docs_per_s": round(dense_rate, 1),
        "ratio_cold": round(cold_rate / dense_rate, 1),
        "ratio_warm": round(warm_rate / dense_rate, 1),
        "bm25_repeats": repeats,
        "onnx_threads": threads,
        "load_average": os.getloadavg()[0],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = ["# SciFact train claims: dense, BM25, hybrid (issue 24)", "", f"CPU: {result['cpu']}", ""]
    if "tuning" in result:
        t = result["tuning"]
        d, bd, hd = t["dense"], t["bm25_issue_defaults"], t["hybrid_issue_defaults"]
        bb, hb = t["bm25_grid"][0], t["hybrid_grid"][0]
        lines += [
            f"{result['queries']} claims, {result['documents']} documents, exact search (no database), top {DEPTH}.",
            "",
            "| run | settings | nDCG@10 | Recall@100 |",
            "|---|---|---|---|",
            f"| dense | all-MiniLM-L6-v2, title + text | {d['ndcg@10']} | {d['recall@100']} |",
            f"| BM25, the issue's defaults | k1 1.2, b 0.75, avg_len 256, title + text | {bd['ndcg@10']} | "
            f"{bd['recall@100']} |",
            f"| BM25, grid best | k1 {bb['k1']}, b {bb['b']}, avg_len {bb['avg_len']}, title {bb['title']} | "
            f"{bb['ndcg@10']} | {bb['recall@100']} |",
            f"| hybrid, the issue's defaults | BM25 as above, RRF k 60, weights 1/1 | {hd['ndcg@10']} | "
            f"{hd['recall@100']} |",
            f"| hybrid, grid best | k1 {hb['k1']}, b {hb['b']}, avg_len {hb['avg_len']}, title {hb['title']}, "
            f"RRF k {hb['rrf_k']}, weights {hb['dense_weight']}/{hb['sparse_weight']} | {hb['ndcg@10']} | "
            f"{hb['recall@100']} |",
        ]
        if "package_defaults" in result:
            c = result["package_defaults"]
            o = c["bm25_options"]
            lines += [
                f"| BM25, package defaults | k1 {o['k1']}, b {o['b']}, avg_len {o['avg_len']}, title + text "
                f"| {c['bm25']['ndcg@10']} | {c['bm25']['recall@100']} |",
                f"| hybrid, package defaults | + RRF k {c['rrf_k']}, weights {c['weights'][0]}/{c['weights'][1]} | "
                f"{c['hybrid']['ndcg@10']} | {c['hybrid']['recall@100']} |",
                "",
                "Package defaults against the issue's, 95 % bootstrap interval of the nDCG@10 difference over the "
                f"claims: BM25 {c['bm25_vs_issue_95ci']}, hybrid {c['hybrid_vs_issue_95ci']}.",
            ]
        lines += ["", "Half split (settings tuned on one half of the claims, nDCG@10 on the other half):", ""]
        for s in t["half_split"]:
            lines.append(
                f"- tuned on half {s['tuned_on_half']}: BM25 {s['bm25_settings']} "
                f"{s['bm25_other_half']['default']} → {s['bm25_other_half']['tuned']}; hybrid "
                f"{s['hybrid_settings']} {s['hybrid_other_half']['default']} → {s['hybrid_other_half']['tuned']}"
            )
    if "speed" in result:
        s = result["speed"]
        lines += [
            "",
            f"Encoding speed over the {s['documents']} corpus documents (title + text): BM25 "
            f"{s['bm25_cold_docs_per_s']} docs/s with a new provider ({s['bm25_warm_docs_per_s']} warm), onnx "
            f"{s['onnx_docs_per_s']} docs/s: **{s['ratio_cold']}×** ({s['ratio_warm']}× warm).",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="a BEIR folder (default: SciFact train)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vecembed-retrieval-cache",
        help="where the dense corpus vectors are kept between runs",
    )
    parser.add_argument("--no-tune", action="store_true", help="skip the quality grid")
    parser.add_argument("--quick", action="store_true", help="a small grid (k1 1.2, b 0.75 only)")
    parser.add_argument("--speed", action="store_true", help="also measure encoding speed, BM25 vs onnx")
    parser.add_argument("--repeats", type=int, default=3, help="BM25 timing repeats (median)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the short report here")
    args = parser.parse_args()
    if _sp is None:
        raise SystemExit("benchmarks/retrieval.py needs scipy: pip install scipy")

    result: dict[str, Any] = {"cpu": cpu_line(), "data": str(args.data), "depth": DEPTH}
    print("CPU:", result["cpu"], flush=True)
    data = load_beir(args.data)
    result["queries"], result["documents"] = len(data.queries), len(data.corpus)
    if not args.no_tune:
        tuning = tune(data, args.cache, quick=args.quick)
        dense, issue_sparse = tuning.pop("_dense_run"), tuning.pop("_issue_sparse_run")
        result["tuning"] = tuning
        result["package_defaults"] = package_defaults(data, dense, issue_sparse)
        print("package defaults, end to end:", result["package_defaults"], flush=True)
    if args.speed:
        result["speed"] = speed(data, args.repeats)
        print("speed:", result["speed"], "| CPU:", result["cpu"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
