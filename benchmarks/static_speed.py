"""Static backend speed (issue 25 #5): vecembed ``static`` vs model2vec's own ``StaticModel.encode``, same model.

Both embed the same short texts (the STS-B dev sentences of ``benchmarks/run.py``) with the same static
model — the one ``load_provider("static", model=...)`` distils from the transformer (cached) — in
*interleaved* rounds, so machine noise hits every contender alike; the report gives medians and ratios:

* ``vecembed``            — ``embed_documents`` as a user gets it (word cache warm, one thread);
* ``vecembed 2 threads``  — the same with ``threads=2`` (the batch split into parts on two worker threads);
* ``vecembed cold cache`` — the word cache emptied before every timed call: every distinct word is a miss;
* ``vecembed no cache``   — ``word_cache=0``: every text tokenised whole, as before the cache;
* ``model2vec``           — ``StaticModel.from_pretrained(dir).encode(texts)`` (its float16 table, as saved);
* ``model2vec float32``   — the same on a float32 copy of the table (our table; kinder to model2vec).

Texts/s are wall-clock; "CPU texts/s" divides by the process's CPU time instead, which a busy shared
machine disturbs less (threads add their CPU time: it is not a speed-up measure). Vectors are checked too:
the minimum cosine to model2vec's and to the previous implementation's (tokenise each whole text, drop
unknown tokens, mean, L2 — written plainly below). The CPU line (model and flags, from
``benchmarks/run.py``) and the load average are printed with every result.

Run ``python benchmarks/static_speed.py --help``; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import MODEL_ID, cpu_info, sts_rows, sts_sentences  # noqa: E402

#: Issue 25 #5's targets.
TEXTS_PER_S_TARGET = 50_000
RATIO_TARGET = 2.5
COSINE_TARGET = 0.99999


def previous_vectors(path: Path, texts: Sequence[str], *, max_length: int = 512) -> np.ndarray:
    """The static backend's vectors before its word cache, its steps written plainly (as the tests do)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    table = load_file(str(path / "model.safetensors"))["embeddings"].astype(np.float32)
    limit = max_length * int(np.median([len(t) for t in tok.get_vocab()]))
    unk = tok.token_to_id("[UNK]")
    rows = []
    for enc in tok.encode_batch([t[:limit] for t in texts], add_special_tokens=False):
        ids = [i for i in enc.ids if i != unk]
        v = table[ids].mean(axis=0) if ids else table.mean(axis=0)
        rows.append(v / max(float(np.linalg.norm(v)), 1e-12))
    return np.asarray(rows, dtype=np.float32)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    known = norms > 0  # model2vec gives zeros for a text with no known token; vecembed the vocabulary's mean
    return float((np.sum(a * b, axis=1)[known] / norms[known]).min())


def run(model: str = MODEL_ID, rounds: int = 15, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load every contender, time them in interleaved rounds, check their vectors; a JSON-able dict."""
    from model2vec import StaticModel

    import vecembed

    texts = sts_sentences(sts_rows())
    provider = vecembed.load_provider("static", model=model)  # distils once (cached) when model is a transformer
    path = Path(provider.info.extra["path"])
    two = vecembed.load_provider("static", model=path, threads=2)
    cold = vecembed.load_provider("static", model=path)
    plain = vecembed.load_provider("static", model=path, word_cache=0)
    m2v = StaticModel.from_pretrained(str(path))
    m2v32 = StaticModel.from_pretrained(str(path))
    m2v32.embedding = np.asarray(m2v32.embedding, dtype=np.float32)

    def cold_call(batch: list[str]) -> Any:
        cold._tokens.clear()  # the benchmark's one look inside: every distinct word a miss again
        return cold.embed_documents(batch)

    contenders: dict[str, Callable[[list[str]], Any]] = {
        "vecembed": provider.embed_documents,
        "vecembed 2 threads": two.embed_documents,
        "vecembed cold cache": cold_call,
        "vecembed no cache": plain.embed_documents,
        "model2vec": m2v.encode,
        "model2vec float32": m2v32.encode,
    }
    cpu = cpu_info()
    log(f"vecembed {vecembed.__version__} · {cpu['model']} · {os.cpu_count()} CPUs · flags: {' '.join(cpu['flags'])}")
    log(f"static model {path} ({provider.info.dimension} dims, float32 table; model2vec's as saved: "
        f"{m2v.embedding.dtype}) · {len(texts)} STS-B dev sentences · {rounds} interleaved rounds")
    for fn in contenders.values():  # warm-up: allocations, thread pools, the word cache
        fn(texts)
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    cpu_s: dict[str, list[float]] = {k: [] for k in contenders}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for _ in range(rounds):
        for name, fn in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(texts)
            wall[name].append(time.perf_counter() - start)
            cpu_s[name].append(time.process_time() - start_cpu)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    ours = provider.embed_documents(texts)
    results: dict[str, Any] = {
        "machine": {"cpu": cpu["model"], "cpu_flags": cpu["flags"], "cpus": os.cpu_count(),
                    "load_average": [load_before, load_after]},
        "model": str(path), "texts": len(texts), "rounds": rounds, "contenders": {},
        "min_cosine": {
            "vs_model2vec": _min_cosine(ours, m2v.encode(texts)),
            "vs_model2vec_float32": _min_cosine(ours, m2v32.encode(texts)),
            "vs_previous_implementation": _min_cosine(ours, previous_vectors(path, texts)),
            "threads_identical": bool(np.array_equal(ours, two.embed_documents(texts))),
            "cache_off_identical": bool(np.array_equal(ours, plain.embed_documents(texts))),
        },
    }
    for name in contenders:
        results["contenders"][name] = {
            "texts_per_s": len(texts) / statistics.median(wall[name]),
            "best_texts_per_s": len(texts) / min(wall[name]),
            "cpu_texts_per_s": len(texts) / max(statistics.median(cpu_s[name]), 1e-9),
        }
    base = results["contenders"]["model2vec"]
    for entry in results["contenders"].values():
        entry["ratio_vs_model2vec"] = entry["texts_per_s"] / base["texts_per_s"]
        entry["cpu_ratio_vs_model2vec"] = entry["cpu_texts_per_s"] / base["cpu_texts_per_s"]
    for p in (provider, two, cold, plain):
        p.close()
    return results


def format_report(results: dict[str, Any]) -> str:
    """The results as printed: CPU line, one row per contender, vector checks, targets."""
    machine = results["machine"]
    load = machine.get("load_average") or [None, None]
    lines = [f"CPU: {machine['cpu']} · {machine['cpus']} CPUs · flags: {' '.join(machine['cpu_flags'])}"
             + (f" · load average {load[0]:.2f} -> {load[1]:.2f}" if load[0] is not None else "")]
    head = f"{'contender':<22}{'texts/s':>10}{'×m2v':>7}{'best/s':>10}{'CPU texts/s':>13}{'×m2v':>7}"
    lines += [head, "-" * len(head)]
    for name, e in results["contenders"].items():
        lines.append(f"{name:<22}{e['texts_per_s']:>10.0f}{e['ratio_vs_model2vec']:>7.2f}{e['best_texts_per_s']:>10.0f}"
                     f"{e['cpu_texts_per_s']:>13.0f}{e['cpu_ratio_vs_model2vec']:>7.2f}")
    cos = results["min_cosine"]
    lines.append(f"min cosine: vs previous implementation {cos['vs_previous_implementation']:.7f} · vs model2vec "
                 f"{cos['vs_model2vec']:.7f} (float32 table {cos['vs_model2vec_float32']:.7f}) · threads identical "
                 f"{cos['threads_identical']} · cache off identical {cos['cache_off_identical']}")
    ours = results["contenders"]["vecembed"]
    lines.append(
        f"targets: {ours['texts_per_s']:.0f} texts/s (>= {TEXTS_PER_S_TARGET:,}: "
        f"{'yes' if ours['texts_per_s'] >= TEXTS_PER_S_TARGET else 'no'}) · "
        f"{ours['ratio_vs_model2vec']:.2f}x model2vec (>= {RATIO_TARGET}: "
        f"{'yes' if ours['ratio_vs_model2vec'] >= RATIO_TARGET else 'no'}) · min cosine to the previous vectors "
        f"{cos['vs_previous_implementation']:.7f} (>= {COSINE_TARGET}: "
        f"{'yes' if cos['vs_previous_implementation'] >= COSINE_TARGET else 'no'})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/static_speed.py [--rounds N] [--model ID] [--json FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL_ID, help="a transformer (distilled once, cached) or a static model")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (medians)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.model, args.rounds, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
