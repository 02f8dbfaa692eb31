"""Distributed benchmark (issue 11): Ray Data with 1 vs 2 actors vs the single-process engine, Ray's start-up
cost, and the driver's memory over a streaming job of millions of texts.

* ``startup`` — ``ray.init(num_cpus=2)`` wall time and the RSS of every process it started, then the first
  job's extra cost (an actor starts and loads the model once) on 16 texts.
* ``throughput`` — the same corpus (unique STS-B train sentences), onnx, all-MiniLM-L6-v2, interleaved rounds:
  ``engine`` (``open_store("qdrant", path=...).ingest``: one process, onnx on every core), ``ray-1`` (one actor
  with 2 CPUs) and ``ray-2`` (two actors with 1 CPU each) through ``ingest_dataset(..., path=...)`` (the driver
  writes the folder); and the embedding alone: ``provider.embed_documents`` vs ``embed_dataset`` with 1 and 2
  actors (``.materialize()``). A Ray job's time includes its actors' start (model load).
* ``driver_rss`` — in a fresh child process: ``embed_dataset`` (mock backend, 64-d) over N generated short
  texts streamed to the driver with ``iter_batches`` (the loop ``ingest_dataset`` runs for an embedded store),
  the driver's RSS sampled as it goes, and the object store's use.

Each result is printed with the CPU model and SIMD flags and appended as one JSON line to ``--jsonl``.
Other processes share this machine's cores: compare the ratios within one run.
Run ``python benchmarks/distributed.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stores import cpu_description, load_heldout_sentences  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _status_mb(key: str, pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants_rss_mb() -> float:
    import psutil

    return sum(p.memory_info().rss for p in psutil.Process().children(recursive=True)) / 2**20


def _emit(record: dict[str, Any], jsonl: str | None) -> None:
    record = {**record, **cpu_description()}
    print(json.dumps(record), flush=True)
    if jsonl:
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _init_ray(temp: str) -> float:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    seconds = time.perf_counter() - start
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    return seconds


def bench_startup_and_throughput(texts: list[str], repeats: int, jsonl: str | None) -> None:
    import ray
    import ray.data

    import vecembed
    import vecembed.distributed as vd

    temp = tempfile.mkdtemp(prefix="vrb-", dir="/tmp")
    work = Path(tempfile.mkdtemp(prefix="vecembed-bench-dist-"))
    rss_before = _descendants_rss_mb()
    init_s = _init_ray(temp)
    time.sleep(1.0)
    ray_rss = _descendants_rss_mb() - rss_before
    start = time.perf_counter()
    vd.embed_dataset(ray.data.from_items([{"text": t} for t in texts[:16]]), model=MODEL, concurrency=1,
                     num_cpus=2).materialize()
    first_job_s = time.perf_counter() - start
    _emit({"bench": "ray_startup", "init_s": round(init_s, 2), "ray_processes_rss_mb": round(ray_rss),
           "first_job_16_texts_s": round(first_job_s, 2)}, jsonl)

    docs = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
    provider = vecembed.load_provider("onnx", model=MODEL)  # threads: every physical core
    ds = ray.data.from_items(docs, override_num_blocks=16)
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> None:
        start = time.perf_counter()
        fn()
        times.setdefault(name, []).append(time.perf_counter() - start)

    def engine(folder: Path) -> None:
        with vecembed.open_store("qdrant", "bench", provider, path=str(folder)) as store:
            report = store.ingest(docs)
        assert report.written == len(docs)

    def on_ray(folder: Path, actors: int) -> None:
        report = vd.ingest_dataset(ds, db="qdrant", collection="bench", path=str(folder), model=MODEL,
                                   concurrency=actors, num_cpus=2 / actors, batch_size=256)
        assert report.written == len(docs), report

    for round_ in range(repeats):
        for name in ("engine", "ray-1", "ray-2", "embed-provider", "embed-ray-1", "embed-ray-2"):
            folder = work / f"{name}-{round_}"
            if name == "engine":
                timed(name, lambda folder=folder: engine(folder))
            elif name.startswith("ray-"):
                n = int(name[-1])
                timed(name, lambda folder=folder, n=n: on_ray(folder, n))
            elif name == "embed-provider":
                timed(name, lambda: provider.embed_documents(texts))
            else:
                n = int(name[-1])
                timed(name, lambda n=n: vd.embed_dataset(ds, model=MODEL, concurrency=n, num_cpus=2 / n,
                                                         batch_size=256).materialize())
            shutil.rmtree(folder, ignore_errors=True)
            print(f"  round {round_ + 1}/{repeats} {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    median = {name: statistics.median(v) for name, v in times.items()}
    for kind, names in (("ingest", ("engine", "ray-1", "ray-2")),
                        ("embed", ("embed-provider", "embed-ray-1", "embed-ray-2"))):
        base = median[names[0]]
        _emit({"bench": "ray_throughput", "what": kind, "texts": len(texts), "repeats": repeats,
               "texts_per_s": {n: round(len(texts) / median[n], 1) for n in names},
               "seconds_median": {n: round(median[n], 2) for n in names},
               "seconds_all": {n: [round(x, 2) for x in times[n]] for n in names},
               "ratio_vs_single_process": {n: round(base / median[n], 3) for n in names}}, jsonl)
    provider.close()
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def _make_texts(batch: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    ids = batch["id"]
    words = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")
    texts = [f"document {i} about {words[i % 8]} and {words[(i // 8) % 8]}" for i in ids.tolist()]
    return {"id": ids, "text": np.array(texts, dtype=object)}


def driver_rss_child(n: int, jsonl: str | None) -> None:
    """Run in a fresh process: stream ``n`` generated texts through embed_dataset to this driver."""
    import ray
    import ray.data

    import vecembed.distributed as vd

    temp = tempfile.mkdtemp(prefix="vrb-", dir="/tmp")
    rss_start = _status_mb("VmRSS")
    _init_ray(temp)
    rss_ready = _status_mb("VmRSS")
    ds = ray.data.range(n, override_num_blocks=max(1, n // 20_000)).map_batches(_make_texts, batch_format="numpy")
    # ray.data.range's read tasks take one CPU (no num_cpus= there): two half-CPU actors leave it room
    embedded = vd.embed_dataset(ds, backend="mock", provider_options={"dimension": 64}, concurrency=2,
                                num_cpus=0.5, batch_size=2_000)
    samples: list[tuple[int, float]] = []
    plasma: list[float] = []
    rows = 0
    done = threading.Event()

    def watch() -> None:
        from ray._private.internal_api import memory_summary

        while not done.wait(2.0):
            try:
                text = memory_summary(stats_only=True)
            except Exception:  # a sample missed is a sample missed
                continue
            found = re.search(r"Plasma memory usage (\d+) MiB", text)
            if found:
                plasma.append(float(found.group(1)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    next_mark = n // 20
    for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        rows += len(batch["embedding"])
        if rows >= next_mark:
            samples.append((rows, _status_mb("VmRSS")))
            next_mark += n // 20
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    assert rows == n, rows
    after_tenth = next(rss for r, rss in samples if r >= n // 10)
    _emit({"bench": "driver_rss", "texts": n, "backend": "mock-64d", "actors": 2, "seconds": round(seconds, 1),
           "texts_per_s": round(n / seconds), "rss_mb_before_ray": round(rss_start), "rss_mb_after_init":
           round(rss_ready), "rss_mb_at_10pct": round(after_tenth), "rss_mb_at_end": round(samples[-1][1]),
           "rss_mb_peak_vmhwm": round(_status_mb("VmHWM")),
           "rss_mb_samples": [[r, round(m)] for r, m in samples],
           "object_store_mib_max": max(plasma) if plasma else None,
           "object_store_mib_median": statistics.median(plasma) if plasma else None}, jsonl)
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=4000, help="corpus size for the throughput runs")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument("--rss-texts", type=int, nargs="*", default=[200_000, 2_000_000],
                        help="driver-RSS runs, each in a fresh process (none: skip)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--jsonl", help="append each result as one JSON line to this file")
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("VECEMBED_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child_rss:
        driver_rss_child(args.child_rss, args.jsonl)
        return
    if not args.skip_throughput:
        bench_startup_and_throughput(load_heldout_sentences(args.texts), args.repeats, args.jsonl)
    for n in args.rss_texts:
        cmd = [sys.executable, __file__, "--child-rss", str(n)] + (["--jsonl", args.jsonl] if args.jsonl else [])
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
