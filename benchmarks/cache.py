"""Embedding-cache benchmark (issue 15): what the fingerprint-keyed cache saves, what it costs, what it holds.

On the same texts, with the same provider (onnx backend, the real model), interleaved
rounds, medians of ``repeats``:

* ``plain``  — ``provider.embed_documents(texts)``;
* ``miss``   — ``CachedProvider(provider, fresh_dir).embed_documents(texts)``: every text a miss
               (look-up, embed, store in one transaction) — the cache's overhead over ``plain``;
* ``hit``    — a new ``CachedProvider`` on the directory ``miss`` filled: every text read back from disk.

``--vectors N`` then fills a cache with N random 384-d vectors (2,000 per transaction) in a
child process and reports the file size on disk, the process's RSS growth and the time to read
them all back. Each result is printed with the CPU model and SIMD flags and appended as one JSON
line to ``--jsonl``. Shared machines are noisy: the results are ratios from one run.
Run ``python benchmarks/cache.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stores import cpu_description, load_heldout_sentences  # noqa: E402
from vecembed.providers.delegating import DelegatingProvider  # noqa: E402

#: Issue 15's targets.
SPEEDUP_TARGET = 20.0
MISS_OVERHEAD_TARGET = 0.10


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - not Linux


class _Timed(DelegatingProvider):
    """The provider, with the seconds spent inside its embed calls counted (what the cache adds is the rest)."""

    def __init__(self, provider: Any) -> None:
        super().__init__(provider, close_provider=False)
        self.seconds = 0.0

    def embed_documents_counted(self, texts: Sequence[str]) -> Any:
        start = time.perf_counter()
        try:
            return super().embed_documents_counted(texts)
        finally:
            self.seconds += time.perf_counter() - start


def bench_reembed(provider: Any, texts: list[str], repeats: int) -> dict[str, Any]:
    """Plain vs full miss vs full hit on ``texts``, interleaved; medians and minima of wall and CPU seconds.

    ``cache_side_s``: the miss path's own work (look-up, copy, one transaction), measured as the miss
    call's time less the time inside the wrapped provider — robust to load from other processes,
    which inflates both end-to-end timings alike but not their difference's share of it.
    """
    from vecembed.embedding_cache import CachedProvider

    wall: dict[str, list[float]] = {"plain": [], "miss": [], "hit": []}
    cpu: dict[str, list[float]] = {"plain": [], "miss": [], "hit": []}
    cache_side: list[float] = []
    provider.embed_documents(texts[:64])  # warm-up: sessions, allocator
    identical = True
    with tempfile.TemporaryDirectory(prefix="vecembed-cache-bench-") as tmp:
        for r in range(repeats):
            path = Path(tmp) / f"round{r}"
            timed = _Timed(provider)

            def plain() -> Any:
                return provider.embed_documents(texts)

            def miss(path: Path = path, timed: _Timed = timed) -> Any:
                with CachedProvider(timed, path, close_provider=False) as cold:
                    return cold.embed_documents(texts)

            def hit(path: Path = path) -> Any:
                with CachedProvider(provider, path, close_provider=False) as warm:
                    out = warm.embed_documents(texts)
                    if warm.hits != len(texts):
                        raise RuntimeError("the cache did not give back what it stored")
                    return out

            outputs: dict[str, Any] = {}
            for name, fn in (("plain", plain), ("miss", miss), ("hit", hit)):
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[name] = fn()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            cache_side.append(wall["miss"][-1] - timed.seconds)
            if outputs["hit"].tobytes() != outputs["miss"].tobytes():
                raise RuntimeError("the cache did not give back what it stored")
            identical = identical and outputs["miss"].tobytes() == outputs["plain"].tobytes()
    med = {name: statistics.median(values) for name, values in wall.items()}
    low = {name: min(values) for name, values in wall.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    side = statistics.median(cache_side)
    speedup = med["plain"] / med["hit"]
    return {
        "bench": "cache_reembed",
        "texts": len(texts),
        "repeats": repeats,
        "plain_s": round(med["plain"], 4),
        "miss_s": round(med["miss"], 4),
        "hit_s": round(med["hit"], 4),
        "wall_s": {name: [round(v, 4) for v in values] for name, values in wall.items()},
        "cpu_s": {name: [round(v, 4) for v in values] for name, values in cpu.items()},
        "speedup_hit": round(speedup, 1),
        "speedup_hit_cpu": round(med_cpu["plain"] / med_cpu["hit"], 1),
        "miss_overhead_median": round(med["miss"] / med["plain"] - 1, 4),
        "miss_overhead_min": round(low["miss"] / low["plain"] - 1, 4),
        "miss_overhead_cpu": round(med_cpu["miss"] / med_cpu["plain"] - 1, 4),
        "cache_side_s": round(side, 4),
        "cache_side_share": round(side / med["plain"], 4),
        "miss_byte_identical_to_plain": identical,
        "speedup_target": SPEEDUP_TARGET,
        "miss_overhead_target": MISS_OVERHEAD_TARGET,
        "meets_targets": speedup >= SPEEDUP_TARGET and side / med["plain"] <= MISS_OVERHEAD_TARGET,
    }


def _footprint_child(n: int, dim: int) -> dict[str, Any]:
    """In a fresh process: fill a cache with ``n`` random vectors, then read them all back."""
    import numpy as np

    from vecembed.embedding_cache import DB_NAME, EmbeddingCache, text_key
    from vecembed.providers.mock import MockProvider

    info = MockProvider(dimension=dim).info
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="vecembed-cache-footprint-") as tmp:
        rss0 = _rss_mb()
        cache = EmbeddingCache(tmp)
        keys = [text_key(b"d", f"text number {i}") for i in range(n)]
        start = time.perf_counter()
        for lo in range(0, n, 2000):
            block = rng.standard_normal((min(2000, n - lo), dim)).astype("<f4")
            cache.put_many(info, [(keys[lo + i], block[i].tobytes()) for i in range(len(block))])
        write_s = time.perf_counter() - start
        rss_written = _rss_mb()
        start = time.perf_counter()
        found = 0
        for lo in range(0, n, 2000):
            found += len(cache.get_many(info, keys[lo : lo + 2000]))
        read_s = time.perf_counter() - start
        rss_read = _rss_mb()
        entries, counted = cache.size()
        cache.close()  # the last connection checkpoints the WAL into the main file
        disk = sum(f.stat().st_size for f in Path(tmp).iterdir() if f.name.startswith(DB_NAME))
    if found != n:
        raise RuntimeError(f"read back {found} of {n} vectors")
    return {
        "bench": "cache_footprint",
        "vectors": n,
        "dimension": dim,
        "disk_mb": round(disk / 1e6, 1),
        "disk_bytes_per_vector": round(disk / n, 1),
        "raw_vector_bytes": dim * 4,
        "counted_bytes": counted,
        "rss_growth_mb_after_write": round(rss_written - rss0, 1),
        "rss_growth_mb_after_read": round(rss_read - rss0, 1),
        "write_vectors_per_s": round(n / write_s),
        "read_vectors_per_s": round(n / read_s),
        "entries": entries,
    }


def emit(result: dict[str, Any], jsonl: Path | None, command: str) -> None:
    record = {**result, **cpu_description(), "cpus": os.cpu_count(), "command": command}
    print(json.dumps(record))
    if jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="corpus size (unique STS-B train sentences)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors for the footprint run (0: skip)")
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--no-reembed", action="store_true", help="only the footprint run")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each result to this JSONL file")
    parser.add_argument("--footprint-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.footprint_child:
        print(json.dumps(_footprint_child(args.vectors, args.dimension)))
        return 0
    command = "python benchmarks/cache.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cpu = cpu_description()
    print(f"# {cpu['cpu']} ({', '.join(cpu['simd'])}) · {os.cpu_count()} CPUs", file=sys.stderr)
    if not args.no_reembed:
        import vecembed

        texts = load_heldout_sentences(args.texts)
        with vecembed.load_provider(args.backend, model=args.model, device="cpu") as provider:
            result = bench_reembed(provider, texts, args.repeats)
            result.update(backend=args.backend, model=provider.info.name, fingerprint=provider.info.fingerprint)
        emit(result, args.jsonl, command)
    if args.vectors:
        child = subprocess.run(
            [sys.executable, __file__, "--footprint-child", "--vectors", str(args.vectors),
             "--dimension", str(args.dimension)],
            capture_output=True, text=True, check=True,
        )
        emit(json.loads(child.stdout.strip().splitlines()[-1]), args.jsonl, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
