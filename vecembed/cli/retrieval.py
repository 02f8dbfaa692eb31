"""``vecembed bench --retrieval``: retrieval quality and speed of a store over a BEIR folder, per search mode.

Ingests the corpus (title + text) into the store with the dense provider and, with
``--sparse``, the sparse one; then runs every judged query in each mode (``dense``,
``sparse``, ``hybrid``) and reports nDCG@10, Recall@100 (:mod:`vecembed.evaluate`) and
queries/s (one :meth:`~vecembed.collection.Store.search_many` over all queries, query
encoding included), with the CPU line::

    vecembed bench --retrieval ../shared/data/scifact-train --db qdrant --sparse bm25 --json out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vecembed.cli._common import CliError, echo, open_provider, positive_int
from vecembed.collection import Store, open_store
from vecembed.evaluate import BeirData, load_beir, ndcg_at_k, recall_at_k
from vecembed.store import IngestReport, available_stores, needs_server

__all__ = ["MODES", "ModeResult", "add_retrieval_options", "cmd_retrieval", "evaluate_modes", "format_table"]

#: The search modes, in the order they are reported.
MODES = ("dense", "sparse", "hybrid")
#: Hits fetched per query: Recall@100 needs 100.
DEPTH = 100


@dataclass(frozen=True)
class ModeResult:
    """One mode's figures: nDCG@10, Recall@100, queries per second (query encoding included), and the run time."""

    mode: str
    ndcg_at_10: float
    recall_at_100: float
    queries_per_second: float
    seconds: float


def add_retrieval_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``vecembed bench --retrieval`` (the provider options come from the bench parser)."""
    group = parser.add_argument_group("retrieval mode (--retrieval)")
    group.add_argument(
        "--retrieval",
        metavar="BEIR",
        default=None,
        help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv or qrels/*.tsv) or its qrels file: measure "
        "nDCG@10, Recall@100 and queries/s per search mode instead of running the embedding harness",
    )
    group.add_argument(
        "--db", default="memory", choices=available_stores(), help="the store to measure (default: memory)"
    )
    group.add_argument("--collection", "-c", default=None, help="collection name (default: bench-<folder name>)")
    group.add_argument(
        "--path", default=None, help="the embedded database's folder (kept; default: a temporary one, removed)"
    )
    group.add_argument("--url", default=None, help="a database server instead (pgvector: postgresql://...)")
    group.add_argument(
        "--sparse",
        default=None,
        metavar="NAME",
        help="sparse provider, e.g. bm25 (enables the sparse and hybrid modes)",
    )
    group.add_argument(
        "--modes",
        default=None,
        help="comma-separated modes (default: dense,sparse,hybrid with --sparse, else dense)",
    )
    group.add_argument("--limit-queries", type=positive_int, default=None, help="only the first N judged queries")
    group.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the results as JSON to FILE ('-': stdout)",
    )


def _beir_folder(raw: str) -> tuple[Path, Path | None]:
    """``(folder, qrels file or None)`` from a BEIR folder or its qrels file (``qrels.tsv``, ``qrels/x.tsv``)."""
    path = Path(raw)
    if path.is_dir():
        return path, None
    if path.is_file() and path.suffix == ".tsv":
        folder = path.parent.parent if path.parent.name == "qrels" else path.parent
        return folder, path
    raise CliError(f"--retrieval {raw}: not a BEIR folder nor a qrels .tsv file")


def _load(raw: str, limit: int | None) -> BeirData:
    folder, qrels_file = _beir_folder(raw)
    data = load_beir(folder) if qrels_file is None else load_beir(folder, qrels=qrels_file)
    if limit is not None:
        keep = list(data.queries)[:limit]
        data = BeirData(
            corpus=data.corpus,
            queries={q: data.queries[q] for q in keep},
            qrels={q: data.qrels[q] for q in keep if q in data.qrels},
        )
    if not data.queries:
        raise CliError(f"--retrieval {raw}: no query of queries.jsonl has a judgement in the qrels")
    return data


def _modes(raw: str | None, sparse: str | None) -> list[str]:
    if raw is None:
        return list(MODES) if sparse else ["dense"]
    modes = [m.strip() for m in raw.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise CliError(f"--modes {raw!r}: each mode must be one of {', '.join(MODES)}")
    if not sparse and any(m != "dense" for m in modes):
        raise CliError(f"--modes {raw}: the sparse and hybrid modes need --sparse (e.g. --sparse bm25)")
    return modes


def evaluate_modes(store: Store, data: BeirData, modes: Sequence[str], *, depth: int = DEPTH) -> list[ModeResult]:
    """Every judged query of ``data`` in each mode: one :class:`ModeResult` per mode."""
    ids, texts = list(data.queries), list(data.queries.values())
    results = []
    for mode in modes:
        start = time.perf_counter()
        hits = store.search_many(texts, k=depth, mode=mode)
        seconds = time.perf_counter() - start
        run = {qid: [h.id for h in found] for qid, found in zip(ids, hits, strict=True)}
        results.append(
            ModeResult(
                mode=mode,
                ndcg_at_10=ndcg_at_k(run, data.qrels, 10),
                recall_at_100=recall_at_k(run, data.qrels, 100),
                queries_per_second=len(texts) / seconds if seconds > 0 else 0.0,
                seconds=seconds,
            )
        )
    return results


def format_table(results: Sequence[ModeResult]) -> list[str]:
    """The results as an aligned text table."""
    lines = [f"{'mode':<8} {'nDCG@10':>8} {'Recall@100':>11} {'queries/s':>10}"]
    lines += [
        f"{r.mode:<8} {r.ndcg_at_10:>8.4f} {r.recall_at_100:>11.4f} {r.queries_per_second:>10.1f}" for r in results
    ]
    return lines


@contextmanager
def _bench_store(args: argparse.Namespace, provider: Any, collection: str) -> Iterator[Store]:
    options: dict[str, Any] = {}
    if args.sparse:
        options["sparse"] = args.sparse
    temporary: str | None = None
    path, url = args.path, args.url
    if path and url:
        raise CliError("give either --path (embedded database) or --url (server), not both")
    if args.db != "memory" and not path and not url:
        if needs_server(args.db):
            raise CliError(f"{args.db} is a database server: give --url")
        temporary = path = tempfile.mkdtemp(prefix="vecembed-bench-")
    try:
        with open_store(args.db, collection, provider, path=path, url=url, **options) as store:
            yield store
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def cmd_retrieval(args: argparse.Namespace) -> int:
    """Run ``vecembed bench --retrieval``: ingest, evaluate each mode, print the table (and JSON)."""
    from vecembed.cpu import cpu_info

    data = _load(args.retrieval, args.limit_queries)
    modes = _modes(args.modes, args.sparse)
    folder, _ = _beir_folder(args.retrieval)
    collection = args.collection or f"bench-{folder.resolve().name}"
    cpu = cpu_info()
    with open_provider(args) as provider, _bench_store(args, provider, collection) as store:
        report: IngestReport = store.ingest(data.documents())
        results = evaluate_modes(store, data, modes)
    info = provider.info
    lines = [
        f"retrieval on {folder.resolve().name}: {len(data.corpus)} documents, {len(data.queries)} judged queries; "
        f"store {args.db}; model {info.name} ({info.backend}); sparse {args.sparse or 'none'}",
        f"ingest: {report.written} written, {report.skipped} unchanged, {report.seconds:.1f} s "
        f"({report.texts_per_second:.1f} documents/s)",
        f"CPU: {cpu.summary}",
        *format_table(results),
    ]
    for line in lines:
        echo(line)
    if args.json_out:
        payload = {
            "data": str(folder.resolve()),
            "documents": len(data.corpus),
            "queries": len(data.queries),
            "db": args.db,
            "model": info.name,
            "backend": info.backend,
            "fingerprint": info.fingerprint,
            "sparse": args.sparse,
            "cpu": {"model": cpu.model, "isa": cpu.isa, "summary": cpu.summary},
            "ingest": report.to_dict(),
            "results": [asdict(r) for r in results],
        }
        text = json.dumps(payload, indent=2)
        if args.json_out == "-":
            echo(text)
        else:
            Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    return 0
