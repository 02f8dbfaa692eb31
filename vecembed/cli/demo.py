"""``vecembed demo``: the bundled corpus into embedded Chroma and Qdrant, a few queries, timings and health.

Offline and self-contained: the corpus ships in ``vecembed/data/`` (400 sentences
of the STS Benchmark, licence note beside it), the model comes from an installed
model package, and both databases run embedded in a temporary folder (or
``--path``). Exit code 0 when every database answered and every health check
passed, 3 when a health check failed, 1 when nothing could run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vecembed.cli._common import (
    EXIT_ERROR,
    EXIT_UNHEALTHY,
    add_provider_options,
    echo,
    error_line,
    open_provider,
    positive_int,
)
from vecembed.cli.db import DATABASES, cli_store, format_hits
from vecembed.cli.inputs import read_documents
from vecembed.collection import Store
from vecembed.errors import MissingDependencyError
from vecembed.records import Document
from vecembed.registry import default_backend
from vecembed.store import Hit, IngestReport

__all__ = ["DEMO_COLLECTION", "DEMO_QUERIES", "DemoResult", "load_corpus", "register", "run_demo"]

DEMO_COLLECTION = "vecembed-demo"

#: The databases the demo runs by default: the embedded ones that need no server (``--db`` picks others).
DEMO_DATABASES = ("chroma", "qdrant")

#: Queries that share few words with their best answers: what a bag of words misses and a model finds.
DEMO_QUERIES = (
    "someone is making music",
    "share prices dropped on Wall Street",
    "an animal playing outdoors",
    "peace negotiations between countries",
)


def load_corpus() -> list[Document]:
    """The bundled demo corpus (``vecembed/data/sample_corpus.jsonl``)."""
    ref = resources.files("vecembed") / "data" / "sample_corpus.jsonl"
    with resources.as_file(ref) as path:
        return read_documents(Path(path))


@dataclass
class DbResult:
    """What one database did in the demo."""

    db: str
    ingest: IngestReport | None = None
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    query_ms: float = 0.0
    health_ok: bool = False
    health_detail: str = ""
    error: str = ""


@dataclass
class DemoResult:
    """Everything the demo measured (``--json`` prints it)."""

    backend: str
    model: str
    dimension: int
    documents: int
    load_seconds: float
    location: str
    databases: list[DbResult] = field(default_factory=list)
    total_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "dimension": self.dimension,
            "documents": self.documents,
            "load_seconds": round(self.load_seconds, 3),
            "location": self.location,
            "total_seconds": round(self.total_seconds, 3),
            "databases": [
                {
                    "db": r.db,
                    "error": r.error or None,
                    "ingest_seconds": round(r.ingest.seconds, 3) if r.ingest else None,
                    "written": r.ingest.written if r.ingest else None,
                    "query_ms": round(r.query_ms, 2),
                    "health_ok": r.health_ok,
                    "health": r.health_detail,
                    "hits": {q: [h.to_dict() for h in hits] for q, hits in r.hits.items()},
                }
                for r in self.databases
            ],
        }


def register(commands: Any) -> None:
    """Add ``demo`` to the CLI."""
    demo = commands.add_parser(
        "demo",
        help="ingest the bundled corpus into embedded Chroma and Qdrant and search it (offline)",
        description="Ingest 400 bundled sentences into embedded Chroma and Qdrant, run a few queries against "
        "both, print results, timings and health. Offline; nothing is left behind unless --path is given.",
    )
    demo.add_argument("--path", help="keep the databases in this folder (default: a temporary folder, removed)")
    demo.add_argument("--db", action="append", choices=DATABASES, help="only this database (repeatable)")
    demo.add_argument("--query", "-q", action="append", help="your own query (repeatable; replaces the built-in ones)")
    demo.add_argument("-k", "--limit", type=positive_int, default=3, help="results per query (default 3)")
    demo.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    add_provider_options(demo)
    demo.set_defaults(handler=cmd_demo)


def _run_db(db: str, provider: Any, root: Path, docs: list[Document], queries: list[str], k: int,
            quiet: bool) -> DbResult:
    import os

    from vecembed.cli.db import url_env

    result = DbResult(db)
    store: Store | None = None
    # A server-only store has no folder under root: it runs on the server its URL variable names, or is skipped.
    server_only = db in ("pgvector",)
    url = (os.environ.get(url_env(db)) or None) if server_only else None
    if server_only and url is None:
        result.error = f"{db} is a server: set ${url_env(db)} (e.g. postgresql://user:password@127.0.0.1:5432/db)"
        if not quiet:
            echo(f"\n== {db}: skipped: {result.error}")
        return result
    try:
        store = cli_store(db, DEMO_COLLECTION, provider, path=None if url else root / db, url=url)
        result.ingest = store.ingest(docs, show_progress=None if not quiet else False)
        if not quiet:
            echo(f"\n== {db} ({store.location})")
            echo(str(result.ingest))
        start = time.perf_counter()
        for query in queries:
            result.hits[query] = store.search(query, k=k)
        result.query_ms = (time.perf_counter() - start) * 1000.0 / max(len(queries), 1)
        health = store.health_check()
        result.health_ok, result.health_detail = health.ok, health.detail
        if not quiet:
            for query in queries:
                echo(f"\n  query: {query!r}")
                for line in format_hits(result.hits[query], width=90, metadata=False):
                    echo(f"  {line}")
            echo(f"\n  health: {'ok' if health.ok else 'FAILED'} ({health.latency_ms:.0f} ms): {health.detail}")
    except MissingDependencyError as exc:
        result.error = error_line(exc)
        if not quiet:
            echo(f"\n== {db}: skipped: {result.error}")
    finally:
        if store is not None:
            store.close()
    return result


def run_demo(args: argparse.Namespace, root: Path, *, quiet: bool = False) -> DemoResult:
    """Load the provider, then ingest, query and check each database under ``root``."""
    started = time.perf_counter()
    docs = load_corpus()
    queries = list(args.query or DEMO_QUERIES)
    if not quiet:
        echo(f"vecembed demo: {len(docs)} sentences (STS Benchmark, see vecembed/data/README.md), "
             f"{len(queries)} queries")
    with open_provider(args) as provider:
        load_seconds = time.perf_counter() - started
        info = provider.info
        if not quiet:
            echo(f"model: {info.name} on {info.backend} ({info.device}), dimension {info.dimension}, "
                 f"loaded in {load_seconds:.2f} s")
        result = DemoResult(backend=info.backend, model=info.name, dimension=info.dimension, documents=len(docs),
                            load_seconds=load_seconds, location=str(root))
        for db in args.db or [db for db in DEMO_DATABASES if db in DATABASES]:
            result.databases.append(_run_db(db, provider, root, docs, queries, args.limit, quiet))
    result.total_seconds = time.perf_counter() - started
    return result


def _print_summary(result: DemoResult) -> None:
    echo("\n== summary")
    echo(f"  {'database':<9} {'ingest':>9} {'docs/s':>8} {'query':>9}  health")
    for r in result.databases:
        if r.error or r.ingest is None:
            echo(f"  {r.db:<9} {'skipped':>9}")
            continue
        echo(f"  {r.db:<9} {r.ingest.seconds:>8.2f}s {r.ingest.texts_per_second:>8.0f} {r.query_ms:>7.1f}ms"
             f"  {'ok' if r.health_ok else 'FAILED'}")
    ran = [r for r in result.databases if r.hits]
    if len(ran) == 2:
        same = sum(
            [h.id for h in ran[0].hits[q]] == [h.id for h in ran[1].hits[q]] for q in ran[0].hits
        )
        echo(f"  same top results in {ran[0].db} and {ran[1].db}: {same}/{len(ran[0].hits)} queries")
    echo(f"  model load {result.load_seconds:.2f}s, total {result.total_seconds:.2f}s")


def cmd_demo(args: argparse.Namespace) -> int:
    """``vecembed demo``."""
    if args.backend is None:
        args.backend = default_backend()
    if args.path:
        root = Path(args.path)
        root.mkdir(parents=True, exist_ok=True)
        result = run_demo(args, root, quiet=args.json)
    else:
        # ignore_cleanup_errors: Qdrant's local mode may still hold a file on some platforms.
        with tempfile.TemporaryDirectory(prefix="vecembed-demo-", ignore_cleanup_errors=True) as tmp:
            result = run_demo(args, Path(tmp), quiet=args.json)
    if args.json:
        echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_summary(result)
    ran = [r for r in result.databases if not r.error]
    if not ran:
        if not args.json:
            echo("vecembed: error: no database could run: pip install 'vecembed[chroma,qdrant]'", err=True)
        return EXIT_ERROR
    return 0 if all(r.health_ok for r in ran) else EXIT_UNHEALTHY
