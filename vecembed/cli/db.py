"""Database commands, ``ingest`` and ``search``, and the small store facade they (and the demo) share.

A :class:`Store` is one collection in Chroma or Qdrant, opened through the
vecembed adapters (so the model recorded in the collection is checked before
anything is written or searched), embedded by default:

- Chroma: ``chromadb.PersistentClient(<data>/chroma)``, or ``HttpClient`` for ``--url``;
- Qdrant: ``QdrantClient(path=<data>/qdrant)`` (local mode), or ``QdrantClient(url=...)``.

``<data>`` is ``--path``, else ``$VECEMBED_DATA``, else ``./vecembed-data``. Without
``--path``, ``$VECEMBED_CHROMA_URL`` / ``$VECEMBED_QDRANT_URL`` select a server.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vecembed._deps import require
from vecembed.cli._common import (
    CliError,
    Progress,
    add_provider_options,
    data_dir,
    echo,
    open_provider,
    parse_key_values,
)
from vecembed.cli.inputs import Document, read_documents
from vecembed.protocol import EmbeddingProvider
from vecembed.types import HealthReport

__all__ = ["DATABASES", "IngestSummary", "SearchHit", "Store", "open_store", "register"]

DATABASES = ("chroma", "qdrant")
URL_ENV = {"chroma": "VECEMBED_CHROMA_URL", "qdrant": "VECEMBED_QDRANT_URL"}

#: Documents per Chroma upsert: one embedding call each, and well under Chroma's 5,461-record limit.
CHROMA_BATCH = 128


@dataclass(frozen=True)
class SearchHit:
    """One result, the same for both databases: the caller's id, a similarity score, text and metadata."""

    id: str
    score: float
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 6), "text": self.text, "metadata": dict(self.metadata)}


@dataclass(frozen=True, kw_only=True)
class IngestSummary:
    """What an ingest did, for either database (Qdrant's own ``IngestReport`` is kept in ``report``)."""

    db: str
    collection: str
    documents: int
    written: int
    seconds: float
    truncated: int | None = None
    report: Any = None

    @property
    def texts_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        if self.report is not None:
            return f"{self.db}: {self.report}"
        truncated = "n/a" if self.truncated is None else str(self.truncated)
        return (
            f"{self.db}: ingested {self.documents} documents into {self.collection!r}: {self.written} upserted, "
            f"{truncated} truncated, {self.seconds:.2f} s ({self.texts_per_second:.1f} texts/s)"
        )


class Store:
    """One collection of one database, opened with a provider. Use :func:`open_store`."""

    db: str
    collection: str
    location: str

    def ingest(self, docs: Sequence[Document], *, show_progress: bool | None = None) -> IngestSummary:
        """Embed and upsert ``docs`` (deterministic ids: running it again updates, never duplicates)."""
        raise NotImplementedError

    def search(self, query: str, k: int = 5, where: Mapping[str, Any] | None = None) -> list[SearchHit]:
        """The ``k`` nearest documents to ``query``, best first; ``where``: metadata that must match exactly."""
        raise NotImplementedError

    def count(self) -> int:
        """Documents in the collection."""
        raise NotImplementedError

    def health_check(self) -> HealthReport:
        """Database, collection and provider, in one report. Never raises."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the client (Qdrant local mode holds a lock on its folder)."""


def _truncated(provider: EmbeddingProvider) -> int | None:
    stats = getattr(provider, "stats", None)
    return int(stats.truncated) if stats is not None and hasattr(stats, "truncated") else None


class ChromaStore(Store):
    """A vecembed-guarded Chroma collection."""

    def __init__(self, provider: EmbeddingProvider, collection: str, *, path: Path | None, url: str | None,
                 create: bool) -> None:
        chromadb = require("chromadb", "chroma", "the Chroma database")
        vecembed_chroma = require("vecembed_chroma", "chroma", "the Chroma adapter")
        if url:
            parsed = urlparse(url if "://" in url else f"http://{url}")
            if not parsed.hostname:
                raise CliError(f"--url {url!r} is not a URL like http://127.0.0.1:8000")
            self.client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port or 8000,
                                              ssl=parsed.scheme == "https")
            self.location = url
        else:
            path = _need_path(path)
            path.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(path))
            self.location = str(path)
        self.db = "chroma"
        self.collection = collection
        self.provider = provider
        self._adapter = vecembed_chroma
        if create:
            self._col = vecembed_chroma.get_or_create_collection(self.client, collection, provider)
        else:
            self._col = _open_existing(lambda: vecembed_chroma.get_collection(self.client, collection, provider),
                                       "chroma", collection, self.location)

    def ingest(self, docs: Sequence[Document], *, show_progress: bool | None = None) -> IngestSummary:
        start = time.perf_counter()
        before = _truncated(self.provider)
        # Texts of similar length in one batch: less padding per embedding call (ids keep the pairing).
        ordered = sorted(docs, key=lambda d: len(d.text))
        with Progress(f"chroma: {self.collection}", len(docs), enabled=show_progress) as bar:
            for first in range(0, len(ordered), CHROMA_BATCH):
                batch = ordered[first : first + CHROMA_BATCH]
                # Chroma refuses an empty metadata dict; None means "no metadata" for that record.
                self._col.upsert(
                    ids=[d.id for d in batch],
                    documents=[d.text for d in batch],
                    metadatas=[dict(d.metadata) or None for d in batch],
                )
                bar.advance(len(batch))
        after = _truncated(self.provider)
        truncated = after - before if after is not None and before is not None else None
        return IngestSummary(db="chroma", collection=self.collection, documents=len(docs), written=len(docs),
                             seconds=time.perf_counter() - start, truncated=truncated)

    def search(self, query: str, k: int = 5, where: Mapping[str, Any] | None = None) -> list[SearchHit]:
        clauses = [{key: value} for key, value in (where or {}).items()]
        # Chroma wants one clause as is and several under "$and".
        chroma_where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        result = self._col.query(query_texts=[query], n_results=k, where=chroma_where,
                                 include=["documents", "metadatas", "distances"])
        ids = result["ids"][0]
        docs = (result.get("documents") or [[]])[0] or [""] * len(ids)
        metas = (result.get("metadatas") or [[]])[0] or [{}] * len(ids)
        dists = (result.get("distances") or [[]])[0] or [0.0] * len(ids)
        # vecembed collections use the cosine space, where Chroma's distance is 1 - cosine similarity.
        return [SearchHit(str(i), 1.0 - float(d), t or "", dict(m or {}))
                for i, t, m, d in zip(ids, docs, metas, dists, strict=True)]

    def count(self) -> int:
        return int(self._col.count())

    def health_check(self) -> HealthReport:
        report: HealthReport = self._adapter.health_check(self.client, self._col)
        return report


class QdrantStore(Store):
    """A collection behind a vecembed :class:`~vecembed_qdrant.QdrantIngestor`."""

    def __init__(self, provider: EmbeddingProvider, collection: str, *, path: Path | None, url: str | None,
                 create: bool) -> None:
        qdrant_client = require("qdrant_client", "qdrant", "the Qdrant database")
        vecembed_qdrant = require("vecembed_qdrant", "qdrant", "the Qdrant adapter")
        if url:
            self.client = qdrant_client.QdrantClient(url=url)
            self.location = url
        else:
            path = _need_path(path)
            path.mkdir(parents=True, exist_ok=True)
            self.client = _local_qdrant(qdrant_client, path)
            self.location = str(path)
        self.db = "qdrant"
        self.collection = collection
        self.provider = provider
        try:
            if not create and not self.client.collection_exists(collection):
                raise CliError(_no_collection("qdrant", collection, self.location))
            self.ingestor = vecembed_qdrant.QdrantIngestor(self.client, collection, provider)
            self.ingestor.ensure_collection()
        except BaseException:
            self.close()
            raise

    def ingest(self, docs: Sequence[Document], *, show_progress: bool | None = None) -> IngestSummary:
        start = time.perf_counter()
        report = self.ingestor.ingest(
            [d.text for d in docs],
            ids=[d.id for d in docs],
            metadata=[dict(d.metadata) for d in docs],
            show_progress=show_progress,
        )
        return IngestSummary(db="qdrant", collection=self.collection, documents=len(docs),
                             written=int(report.points), seconds=time.perf_counter() - start,
                             truncated=report.truncated, report=report)

    def search(self, query: str, k: int = 5, where: Mapping[str, Any] | None = None) -> list[SearchHit]:
        hits = self.ingestor.search(query, limit=k, query_filter=dict(where) if where else None)
        return [SearchHit(str(h.id), float(h.score), h.text, dict(h.metadata)) for h in hits]

    def count(self) -> int:
        return int(self.ingestor.count())

    def health_check(self) -> HealthReport:
        report: HealthReport = self.ingestor.health_check()
        return report

    def close(self) -> None:
        self.client.close()


def _need_path(path: Path | None) -> Path:
    if path is None:
        raise CliError("an embedded database needs a folder: pass --path DIR, or --url for a server")
    return path


def _local_qdrant(qdrant_client: Any, path: Path) -> Any:
    try:
        return qdrant_client.QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise CliError(f"the Qdrant folder {path} is in use by another process (local mode allows one client "
                           f"at a time); stop it, or use --path for another folder or --url for a server") from None
        raise


def _no_collection(db: str, collection: str, location: str) -> str:
    return (f"{db} has no collection {collection!r} at {location}; "
            f"create it with: vecembed ingest INPUT --db {db} --collection {collection}")


def _open_existing(opener: Any, db: str, collection: str, location: str) -> Any:
    try:
        return opener()
    except Exception as exc:
        # chromadb's NotFoundError (ValueError in older releases) -> one line that says what to run.
        if type(exc).__name__ in {"NotFoundError", "InvalidCollectionException"} or "does not exist" in str(exc):
            raise CliError(_no_collection(db, collection, location)) from None
        raise


def _location(args: argparse.Namespace, db: str) -> tuple[Path | None, str | None]:
    url = getattr(args, "url", None)
    path = getattr(args, "path", None)
    if url and path:
        raise CliError("give either --path (embedded database) or --url (server), not both")
    if not url and not path:
        url = os.environ.get(URL_ENV[db]) or None
    if url:
        return None, url
    return data_dir(path) / db, None


def open_store(db: str, provider: EmbeddingProvider, collection: str, *, path: Path | None = None,
               url: str | None = None, create: bool = True) -> Store:
    """Open ``collection`` in ``db`` ("chroma" or "qdrant"), embedded at ``path`` or on the server at ``url``."""
    if db == "chroma":
        return ChromaStore(provider, collection, path=path, url=url, create=create)
    if db == "qdrant":
        return QdrantStore(provider, collection, path=path, url=url, create=create)
    raise CliError(f"--db must be one of {', '.join(DATABASES)}, got {db!r}")


@contextmanager
def _store_from_args(args: argparse.Namespace, *, create: bool) -> Iterator[tuple[Store, EmbeddingProvider]]:
    path, url = _location(args, args.db)
    with open_provider(args) as provider:
        store = open_store(args.db, provider, args.collection, path=path, url=url, create=create)
        try:
            yield store, provider
        finally:
            store.close()


# -- the commands -----------------------------------------------------------------------------


def _add_db_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database")
    group.add_argument("--db", required=True, choices=DATABASES, help="which vector database")
    group.add_argument("--collection", "-c", required=True, help="collection name (3-512 characters for Chroma)")
    group.add_argument("--path", help="folder for the embedded database (default: $VECEMBED_DATA or ./vecembed-data)")
    group.add_argument("--url", help="a server instead, e.g. http://127.0.0.1:6333 "
                                     "(default: $VECEMBED_CHROMA_URL / $VECEMBED_QDRANT_URL when set)")


def register(commands: Any) -> None:
    """Add this module's sub-commands to the CLI."""
    ingest = commands.add_parser("ingest", help="embed documents and upsert them into Chroma or Qdrant")
    ingest.add_argument("input", help=".txt (one document a line), .jsonl ({\"id\",\"text\",\"metadata\"}), "
                                      "a folder of .txt/.md files, or - for stdin")
    _add_db_options(ingest)
    add_provider_options(ingest)
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.set_defaults(handler=cmd_ingest)

    search = commands.add_parser("search", help="search a collection by query text")
    search.add_argument("query", help="the query text")
    _add_db_options(search)
    search.add_argument("-k", "--limit", type=int, default=5, help="number of results (default 5)")
    search.add_argument("--where", action="append", metavar="KEY=VALUE",
                        help="only documents whose metadata KEY equals VALUE (repeatable: all must hold)")
    add_provider_options(search)
    search.add_argument("--json", action="store_true", help="print the hits as JSON")
    search.set_defaults(handler=cmd_search)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Read INPUT, embed it and upsert it; print the ingest report."""
    docs = read_documents(args.input)
    with _store_from_args(args, create=True) as (store, provider):
        summary = store.ingest(docs)
        total = store.count()
        if args.json:
            payload = {"db": summary.db, "collection": summary.collection, "location": store.location,
                       "documents": summary.documents, "written": summary.written, "count": total,
                       "truncated": summary.truncated, "seconds": round(summary.seconds, 3),
                       "model": provider.info.name, "fingerprint": provider.info.fingerprint}
            echo(json.dumps(payload))
        else:
            echo(str(summary))
            echo(f"{store.db} collection {store.collection!r} at {store.location} now holds {total} documents "
                 f"({provider.info.name}, {provider.info.backend})")
    return 0


def format_hits(hits: Sequence[SearchHit], width: int = 100, *, metadata: bool = True) -> list[str]:
    """Human-readable result lines: rank, score, id, text (shortened), and the metadata unless ``metadata=False``."""
    lines = []
    for rank, hit in enumerate(hits, 1):
        text = " ".join(hit.text.split())
        if len(text) > width:
            text = text[: width - 1] + "…"
        meta = f"  {json.dumps(dict(hit.metadata), ensure_ascii=False)}" if hit.metadata and metadata else ""
        lines.append(f"{rank:>2}. {hit.score:.4f}  [{hit.id}]  {text}{meta}")
    return lines


def parse_where(items: Sequence[str] | None) -> dict[str, Any]:
    """``["lang=en", "year=2024"]`` -> ``{"lang": "en", "year": 2024}`` (numbers and true/false typed)."""
    return parse_key_values(items, "--where", "lang=en")


def cmd_search(args: argparse.Namespace) -> int:
    """Search a collection; print the hits (or JSON)."""
    if args.limit <= 0:
        raise CliError(f"-k must be positive, got {args.limit}")
    where = parse_where(args.where)
    with _store_from_args(args, create=False) as (store, _provider):
        hits = store.search(args.query, k=args.limit, where=where)
    if args.json:
        echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
    else:
        for line in format_hits(hits) or ["(no results: the collection is empty)"]:
            echo(line)
    return 0
