"""What following an alias costs a search (issue 23 #1): re-reading the alias before every search vs never.

A :class:`vecembed.Store` opened by an alias reads where the alias points before each search and ingest
(``store.alias_recheck_seconds``, 0 by default: every call). This measures, per store, on one collection
of ``--docs`` short texts opened by an alias:

* ``aliases() ms`` — one read of the database's aliases (the added call), median;
* ``search ms (every call)`` — ``store.search`` with the alias read before every search (the default);
* ``search ms (never)``      — the same store with ``alias_recheck_seconds`` = 1e9 (the alias read once);
* ``ratio`` — every call / never, from interleaved rounds so machine noise hits both alike.

Run with ``--provider mock`` (no model: the database calls are all there is, the worst case) and ``onnx``
(the real model's query embedding). The CPU line is printed with every result.
``python benchmarks/alias_check.py --help``; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stores import cpu_description, server_url  # noqa: E402

TARGETS = ("memory", "chroma:path", "qdrant:memory", "qdrant:path", "qdrant-edge:path", "pgvector:url")


def _where(db: str, mode: str, root: Path) -> dict[str, Any]:
    if db == "memory":
        from vecembed.memory_store import MemoryDatabase

        return {"client": MemoryDatabase()}
    if mode == "url":
        return {"url": server_url(db)}
    if db == "qdrant":  # local mode: one client per folder, shared by every call here
        from qdrant_client import QdrantClient

        return {"client": QdrantClient(":memory:") if mode == "memory" else QdrantClient(path=str(root / "qdrant"))}
    if db == "qdrant-edge":
        from vecembed_qdrant_edge import EdgeShards

        return {"client": EdgeShards(root / "edge")}
    return {"path": str(root / db)}


def measure(target: str, provider: Any, texts: list[str], rounds: int, root: Path) -> dict[str, Any]:
    import vecembed

    db, _, mode = target.partition(":")
    where = _where(db, mode or "memory", root)
    collection = f"alias-bench-{time.time_ns()}"
    with vecembed.open_store(db, collection, provider, **where) as store:
        store.ingest([(f"t{i}", t) for i, t in enumerate(texts)])
    alias = f"{collection}-live"
    vecembed.set_alias(db, alias, collection, **where)
    store = vecembed.open_store(db, alias, provider, **where)
    root_store = store.root
    reads, every, never = [], [], []
    queries = texts[:rounds]
    for query in queries:  # interleaved: one of each per round
        start = time.perf_counter()
        root_store.aliases()  # type: ignore[attr-defined]
        reads.append(time.perf_counter() - start)
        store.alias_recheck_seconds = 0.0
        start = time.perf_counter()
        store.search(query, k=10)
        every.append(time.perf_counter() - start)
        store.alias_recheck_seconds = 1e9
        start = time.perf_counter()
        store.search(query, k=10)
        never.append(time.perf_counter() - start)
    store.close()
    vecembed.drop_alias(db, alias, **where)
    client = where.get("client")
    if client is not None and hasattr(client, "close") and db != "memory":
        client.close()
    ms = {name: 1000 * statistics.median(v) for name, v in (("aliases", reads), ("every", every), ("never", never))}
    return {
        "target": target,
        "aliases_ms": round(ms["aliases"], 3),
        "search_every_ms": round(ms["every"], 3),
        "search_never_ms": round(ms["never"], 3),
        "ratio": round(ms["every"] / ms["never"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--provider", choices=("mock", "onnx"), default="mock")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, from {', '.join(TARGETS)}")
    parser.add_argument("--docs", type=int, default=300, help="documents in the collection")
    parser.add_argument("--rounds", type=int, default=200, help="searches of each kind (interleaved)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import vecembed
    from benchmarks.run import sts_rows, sts_sentences

    texts = sts_sentences(sts_rows())[: max(args.docs, args.rounds)]
    provider = vecembed.load_provider(args.provider, **({"dimension": 384} if args.provider == "mock" else {}))
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']} ({cpu['isa']}; {' '.join(cpu['simd'])})")
    print(f"provider {provider.info.backend} {provider.info.name}; {args.docs} documents, {args.rounds} rounds")
    print(f"{'store':<18} {'aliases() ms':>12} {'search ms (every call)':>23} {'search ms (never)':>18} {'ratio':>6}")
    results = []
    with tempfile.TemporaryDirectory(prefix="vecembed-alias-bench-") as tmp:
        for target in args.targets.split(","):
            row = measure(target, provider, texts[: args.docs], args.rounds, Path(tmp))
            results.append(row)
            print(
                f"{target:<18} {row['aliases_ms']:>12.3f} {row['search_every_ms']:>23.3f} "
                f"{row['search_never_ms']:>18.3f} {row['ratio']:>6.3f}"
            )
    provider.close()
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "provider": args.provider, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
