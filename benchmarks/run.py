"""Side-by-side benchmark: sentence-transformers (torch, and its own onnx/openvino backends) vs each vecembed backend.

Run it as a script (it is not a test)::

    python benchmarks/run.py                 # full run, a few minutes on a 2-core machine
    python benchmarks/run.py --quick         # under a minute
    python benchmarks/run.py --json out.json --backends onnx,onnx-int8

What it measures, all in one process so that ratios compare like with like:

- the CPU: its model name and the instruction-set flags that decide which
  backend is fastest (AVX2, AVX-512, VNNI, BF16, AMX), printed with every run;

- throughput on (a) the STS-B dev sentences (short) and (b) long paragraphs
  (CPython's own docstrings, ~150-260 tokens each): texts/s, tokens/s and the
  ratio to sentence-transformers, from *interleaved* rounds (ST, torch, onnx,
  ... then again), so that machine noise hits every backend alike;
- single-query latency p50/p95 (one ``embed_query`` at a time);
- cold start: a new Python process, from launch to the first vector;
- the machine's fp32 GEMM roofline (numpy matmul GFLOP/s) and the share of it
  each transformer backend reaches (useful FLOPs: unpadded tokens);
- where the time goes for the onnx backend: tokenise / forward / pool+rest;
- quality: STS-B dev Spearman per backend, cosine agreement with ST.

sentence-transformers' own faster backends are contenders too where they can
run (``--st-backends``): ``st-openvino`` (its OpenVINO backend, exported once
by optimum-intel into vecembed's cache), ``st-openvino-int8`` (that IR
quantised by NNCF on vecembed's calibration set — ST's recipe calibrates on
GLUE SST-2, a download) and ``st-onnx`` (needs optimum-onnx). One that cannot
run here is listed as skipped, with the reason.

Adapters (Chroma, Qdrant) plug their ingest benchmarks in with
:func:`register_adapter_benchmark`; :func:`run_benchmarks` runs every
registered one and reports it under ``"adapters"``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vecembed.cpu import ONEDNN_ISA_VARIABLE, REPORTED_FLAGS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VECEMBED_OFFLINE", "1")

__all__ = ["BenchContext", "main", "register_adapter_benchmark", "run_benchmarks"]

ROOT = Path(__file__).resolve().parent.parent
STS_FILE = ROOT / "tests" / "data" / "sts-dev.tsv"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BASELINE = "sentence-transformers"
ALL_BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8", "static", "gguf", "gguf-q8_0")
#: sentence-transformers' own ONNX / OpenVINO backends (optimum); each skipped, with the reason, when it cannot run.
ST_BACKENDS = ("st-onnx", "st-openvino", "st-openvino-int8")
#: The /proc/cpuinfo flags that decide which backend and which int8 kernels are fastest.
CPU_FLAGS = REPORTED_FLAGS


# -- corpora ---------------------------------------------------------------------------------------


def sts_rows() -> list[tuple[float, str, str]]:
    """(score, sentence1, sentence2) of the STS-B dev split vendored in tests/data."""
    with open(STS_FILE, encoding="utf-8", newline="") as fh:
        return [(float(r["score"]), r["sentence1"], r["sentence2"])
                for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def sts_sentences(rows: Sequence[tuple[float, str, str]]) -> list[str]:
    return list(dict.fromkeys(s for _, a, b in rows for s in (a, b)))


def stdlib_paragraphs(tokenizer: Any, *, limit: int, low: int = 150, high: int = 250) -> list[str]:
    """Docstrings from CPython's own stdlib whose length is ``low``-``high`` tokens: real long English prose."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found: list[str] = []
    for path in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and low <= len(tokenizer.encode(doc).ids) <= high:
                    found.append(" ".join(doc.split()))
        if len(found) >= limit:
            break
    return found[:limit]


def cpu_info() -> dict[str, Any]:
    """The CPU's model name, ISA class and which of :data:`CPU_FLAGS` it has (:mod:`vecembed.cpu`), and the
    ISA oneDNN (OpenVINO) is capped to when ``ONEDNN_MAX_CPU_ISA`` is set (``--isa avx2``)."""
    from vecembed.cpu import cpu_info as read_cpu
    from vecembed.cpu import onednn_cpu_info

    cpu, onednn = read_cpu(), onednn_cpu_info()
    return {"model": cpu.model, "isa": cpu.isa, "flags": [f for f in CPU_FLAGS if f in cpu.flags],
            "onednn_isa": onednn.isa if onednn.source != cpu.source else None}


# -- backends --------------------------------------------------------------------------------------


@dataclass
class Runner:
    """One contender: how it embeds a batch, one query, and how a new process gets its first vector."""

    name: str
    embed: Callable[[list[str]], np.ndarray]
    query: Callable[[str], np.ndarray]
    cold_code: str
    provider: Any = None
    notes: dict[str, Any] = field(default_factory=dict)


def _st_runner(model_path: str) -> Runner:
    from sentence_transformers import SentenceTransformer

    from vecembed.progress import third_party_quiet

    with third_party_quiet(None):  # transformers' load report and bars: only where a person watches
        model = SentenceTransformer(model_path, device="cpu")
    return _st_model_runner(BASELINE, model, f"{model_path!r}, device='cpu'", {})


def _st_model_runner(name: str, model: Any, arguments: str, notes: dict[str, Any]) -> Runner:
    """A runner over a loaded SentenceTransformer (``arguments``: how the cold-start code builds it again)."""
    return Runner(
        name,
        lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True),
        lambda text: model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0],
        "from sentence_transformers import SentenceTransformer\n"
        f"m = SentenceTransformer({arguments})\n"
        "v = m.encode(['hello world'])\n",
        notes={"batch_size": 32, **notes},
    )


def _st_backend_runner(name: str, model_path: str, calibration: list[str]) -> Runner:
    """sentence-transformers on its own OpenVINO / ONNX backend (optimum); raises when that cannot run here."""
    from sentence_transformers import SentenceTransformer

    from vecembed import artifact_cache as cache
    from vecembed.progress import third_party_quiet

    folder = cache.cache_dir() / "bench" / "st-openvino" / Path(model_path).name
    kwargs: dict[str, Any] = {"device": "cpu"}
    with third_party_quiet(None):
        if name == "st-onnx":
            path = model_path
            kwargs["backend"] = "onnx"
        else:
            if not (folder / "openvino" / "openvino_model.xml").is_file():
                # optimum-intel exports the model to OpenVINO IR once (ST's own path); saved, as ST advises
                SentenceTransformer(model_path, backend="openvino", device="cpu").save_pretrained(str(folder))
            path, kwargs["backend"] = str(folder), "openvino"
            # named either way: with both files in the folder ST would warn and pick the first
            kwargs["model_kwargs"] = {"file_name": "openvino/openvino_model.xml"}
            if name == "st-openvino-int8":
                int8 = folder / "openvino" / "openvino_model_qint8_quantized.xml"
                if not int8.is_file():
                    _nncf_quantize_st(folder, calibration)
                kwargs["model_kwargs"] = {"file_name": "openvino/openvino_model_qint8_quantized.xml"}
        model = SentenceTransformer(path, **kwargs)
    return _st_model_runner(name, model, f"{path!r}, **{kwargs!r}",
                            {"path": path, **{k: v for k, v in kwargs.items() if k != "device"}})


def _nncf_quantize_st(folder: Path, calibration: list[str]) -> None:
    """ST's static int8 OpenVINO model (``export_static_quantized_openvino_model``: NNCF, transformer preset),
    calibrated on ``calibration`` instead of its GLUE SST-2 download; written beside the fp32 IR."""
    import nncf
    import openvino as ov
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    core = ov.Core()
    model = core.read_model(str(folder / "openvino" / "openvino_model.xml"))
    names = [p.get_any_name() for p in model.inputs]
    items = []
    for text in calibration:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        items.append({n: arrays[n] for n in names})
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: not into the report on stdout
        quantized = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(items))
    ov.save_model(quantized, str(folder / "openvino" / "openvino_model_qint8_quantized.xml"))


def _vecembed_runner(name: str, options: dict[str, Any]) -> Runner:
    import vecembed

    backend = name.split("-")[0]  # onnx-int8 -> onnx, gguf-q8_0 -> gguf
    provider = vecembed.load_provider(backend, **options)
    code_options = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return Runner(
        name,
        provider.embed_documents,
        provider.embed_query,
        f"import vecembed\np = vecembed.load_provider({backend!r}, {code_options})\nv = p.embed_query('hello world')\n",
        provider=provider,
        notes={"options": options, "fingerprint": provider.info.fingerprint, "agreement": provider.info.agreement},
    )


def backend_options(name: str, model: str) -> dict[str, Any]:
    if name in ("onnx-int8", "openvino-int8"):
        return {"model": model, "quantize": "int8", "device": "cpu"}
    if name in ("onnx", "torch", "openvino"):
        return {"model": model, "device": "cpu"}
    if name == "static":
        return {"model": model}
    if name in ("gguf", "gguf-q8_0"):  # the transformer converted to GGUF once (F16 / Q8_0), run on llama.cpp
        return {"model": model, "quantize": "q8_0" if name == "gguf-q8_0" else "f16"}
    raise ValueError(f"unknown backend {name!r}; valid: {', '.join(ALL_BACKENDS)}")


def static_is_cached(model: str) -> bool:
    """Whether the static model distilled from ``model`` is already in the cache (distilling takes ~20 s+)."""
    from vecembed import artifact_cache as cache
    from vecembed.model_config import load_model_config
    from vecembed.resolve import resolve_model, weights_digest

    config = load_model_config(resolve_model(model).path)
    digest = weights_digest(config.transformer_path).split(":", 1)[-1]
    return any((cache.cache_dir() / "static").glob(f"{digest}-d256-v*/model.safetensors.sha256"))


# -- measurements ----------------------------------------------------------------------------------


def gemm_roofline(size: int = 1024, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a numpy ``size``³ matmul: what this machine's BLAS can do."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: threads, caches
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def model_flops(lengths: Sequence[int], hf_config: dict[str, Any]) -> float:
    """Useful forward FLOPs of a BERT encoder over texts of these token lengths (no padding counted)."""
    h = int(hf_config["hidden_size"])
    inter = int(hf_config["intermediate_size"])
    layers = int(hf_config["num_hidden_layers"])
    n = np.asarray(lengths, dtype=np.float64)
    per_layer = 2 * n * (4 * h * h + 2 * h * inter) + 4 * n * n * h  # GEMMs + QK^T and PV
    return float(layers * per_layer.sum())


def throughput(runners: Sequence[Runner], corpora: dict[str, list[str]], rounds: int) -> dict[str, Any]:
    """Seconds per corpus for each runner, in interleaved rounds; reports the median round."""
    times: dict[str, dict[str, list[float]]] = {c: {r.name: [] for r in runners} for c in corpora}
    for runner in runners:  # warm-up: first-call allocations, lazy thread pools
        for texts in corpora.values():
            runner.embed(texts[:64])
    for _ in range(rounds):
        for corpus, texts in corpora.items():
            for runner in runners:
                times[corpus][runner.name].append(_timed(functools.partial(runner.embed, texts)))
    return {c: {name: statistics.median(ts) for name, ts in per.items()} for c, per in times.items()}


def query_latency(runner: Runner, queries: Sequence[str]) -> dict[str, float]:
    runner.query(queries[0])
    lat = sorted(_timed(functools.partial(runner.query, q)) * 1000 for q in queries)
    return {"p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95))}


def cold_start(code: str, repeats: int) -> float:
    """Median seconds from launching ``python -c code`` to its exit (imports, load, first vector)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start run failed:\n{code}\n{proc.stderr[-2000:]}")
        runs.append(elapsed)
    return statistics.median(runs)


def time_breakdown(provider: Any, texts: list[str], rounds: int = 2) -> dict[str, float]:
    """Where a transformer backend's time goes: tokenise, forward, and pooling + batching + the rest."""
    pipeline = provider.pipeline
    original = pipeline.forward
    spent = [0.0]

    def timed_forward(batch: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(batch)
        finally:
            spent[0] += time.perf_counter() - start

    best: dict[str, float] | None = None
    pipeline.forward = timed_forward
    try:
        for _ in range(rounds):
            spent[0] = 0.0
            tokenize = _timed(lambda: pipeline.tokenize(texts))
            total = _timed(lambda: provider.embed_documents(texts))
            forward = spent[0]
            # tokenising runs on a helper thread overlapping the forward for big inputs; the sequential
            # tokenize() time above is what it costs on its own
            row = {"total_s": total, "tokenize_s": tokenize, "forward_s": forward,
                   "pool_and_rest_s": max(total - forward - tokenize, 0.0)}
            if best is None or total < best["total_s"]:
                best = row
    finally:
        pipeline.forward = original
    assert best is not None
    return {**best, **{k.replace("_s", "_share"): v / best["total_s"] for k, v in best.items() if k != "total_s"}}


def spearman(vectors: np.ndarray, sentences: list[str], rows: Sequence[tuple[float, str, str]]) -> float:
    from scipy.stats import spearmanr  # type: ignore[import-untyped]

    index = {s: i for i, s in enumerate(sentences)}
    a = vectors[[index[r[1]] for r in rows]]
    b = vectors[[index[r[2]] for r in rows]]
    sims = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(spearmanr(sims, [r[0] for r in rows]).statistic)


# -- adapters hook -----------------------------------------------------------------------------------


@dataclass
class BenchContext:
    """What an adapter benchmark gets: the loaded providers by name, the corpora, quick mode, a log."""

    providers: dict[str, Any]
    corpora: dict[str, list[str]]
    quick: bool
    log: Callable[[str], None]


ADAPTER_BENCHMARKS: dict[str, Callable[[BenchContext], dict[str, Any]]] = {}


def register_adapter_benchmark(name: str, fn: Callable[[BenchContext], dict[str, Any]]) -> None:
    """Add an ingest/search benchmark (e.g. ``"chroma"``, ``"qdrant"``); its dict lands in ``result["adapters"]``."""
    ADAPTER_BENCHMARKS[name] = fn


# -- the run -----------------------------------------------------------------------------------------


def run_benchmarks(
    quick: bool = False,
    *,
    backends: Sequence[str] = ALL_BACKENDS,
    st_backends: Sequence[str] = ST_BACKENDS,
    model: str = MODEL_ID,
    rounds: int | None = None,
    cold_repeats: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every measurement and return the results as a JSON-able dict (see the module docstring)."""
    import vecembed
    from vecembed.model_config import load_model_config, load_tokenizer
    from vecembed.resolve import resolve_model

    started = time.perf_counter()
    rounds = rounds or (1 if quick else 3)
    cold_repeats = cold_repeats or (1 if quick else 3)
    resolved = resolve_model(model)
    config = load_model_config(resolved.path)
    tokenizer = load_tokenizer(config)
    tokenizer.no_padding()
    tokenizer.no_truncation()  # paragraphs are chosen by their full length: none is truncated

    rows = sts_rows()
    short = sts_sentences(rows)
    long = stdlib_paragraphs(tokenizer, limit=32 if quick else 256)
    if quick:
        short = short[:400]
        rows = rows[:300]
    corpora = {"short": short, "long": long}
    token_counts = {name: [len(e.ids) for e in tokenizer.encode_batch(texts)] for name, texts in corpora.items()}
    cpu = cpu_info()
    log(f"vecembed {vecembed.__version__} · {cpu['model']} · {os.cpu_count()} CPUs · model {resolved.name}")
    log(f"CPU flags: {' '.join(cpu['flags']) or 'none of ' + ', '.join(CPU_FLAGS)} (isa {cpu['isa']})")
    if cpu["onednn_isa"]:
        log(f"oneDNN (OpenVINO) capped by {ONEDNN_ISA_VARIABLE}={os.environ.get(ONEDNN_ISA_VARIABLE)}: "
            f"isa {cpu['onednn_isa']} (onnxruntime and torch still use the whole CPU)")
    log(f"corpora: short = {len(short)} STS-B dev sentences (mean {np.mean(token_counts['short']):.0f} tokens), "
        f"long = {len(long)} CPython docstrings (mean {np.mean(token_counts['long']):.0f} tokens)")

    roofline = gemm_roofline()
    log(f"fp32 GEMM roofline (numpy 1024³ matmul): {roofline:.1f} GFLOP/s")

    runners = [_st_runner(str(resolved.path))]
    skipped: dict[str, str] = {}
    for name in backends:
        if name == "static" and quick and not static_is_cached(model):
            skipped[name] = "not distilled yet (run once without --quick: distilling takes ~20 s or more)"
            continue
        try:
            runners.append(_vecembed_runner(name, backend_options(name, model)))
        except vecembed.VecembedError as exc:  # a missing extra skips that backend, it does not end the run
            skipped[name] = f"{type(exc).__name__}: {exc}"
    if st_backends:
        from vecembed.providers.openvino import calibration_texts

        for name in st_backends:
            try:
                runners.insert(1 + sum(r.name.startswith("st-") for r in runners),
                               _st_backend_runner(name, str(resolved.path), calibration_texts()))
            except Exception as exc:  # ST raises a bare Exception for a missing optimum; ImportError for a mismatch
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                if exc.__context__ is not None:  # what ST's message hides: the import that failed, and why
                    why += f" ({type(exc.__context__).__name__}: {str(exc.__context__).splitlines()[0][:200]})"
                skipped[name] = why
    for name, why in skipped.items():
        log(f"skipped {name}: {why}")

    seconds = throughput(runners, corpora, rounds)
    # measured again after the throughput rounds, best kept: a busy moment at start must not lower the roof
    roofline = max(roofline, gemm_roofline())
    base = {c: seconds[c][BASELINE] for c in corpora}
    flops = {c: model_flops(token_counts[c], config.hf_config) for c in corpora}
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "cpu": cpu["model"], "cpu_flags": cpu["flags"], "cpu_isa": cpu["isa"],
                    "onednn_isa": cpu["onednn_isa"], "gemm_fp32_gflops": roofline,
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "model": resolved.name,
        "quick": quick,
        "rounds": rounds,
        "corpora": {c: {"texts": len(t), "tokens": int(sum(token_counts[c]))} for c, t in corpora.items()},
        "backends": {},
        "skipped": skipped,
    }
    queries = short[: 20 if quick else 200]
    ref_vectors: np.ndarray | None = None
    for runner in runners:
        entry: dict[str, Any] = {"notes": runner.notes}
        for c in corpora:
            s = seconds[c][runner.name]
            entry[c] = {
                "seconds": s,
                "texts_per_s": len(corpora[c]) / s,
                "tokens_per_s": sum(token_counts[c]) / s,
                "ratio_vs_st": base[c] / s,
            }
            if runner.name != "static":
                gflops = flops[c] / s / 1e9
                entry[c]["gflops"] = gflops
                entry[c]["roofline_share"] = gflops / roofline
        entry["query"] = query_latency(runner, queries)
        # sentence-transformers' cold start alone is ~7-10 s (imports): quick mode leaves it out
        skip_cold = quick and runner.name == BASELINE
        entry["cold_start_s"] = None if skip_cold else cold_start(runner.cold_code, cold_repeats)
        vectors = runner.embed(sts_sentences(rows))
        entry["sts_spearman"] = spearman(vectors, sts_sentences(rows), rows)
        if runner.name == BASELINE:
            ref_vectors = vectors
        elif ref_vectors is not None and runner.name != "static" and vectors.shape == ref_vectors.shape:
            cos = np.sum(vectors * ref_vectors, axis=1)
            entry["cosine_vs_st"] = {"min": float(cos.min()), "mean": float(cos.mean())}
        if runner.provider is not None and hasattr(runner.provider, "pipeline") and runner.name != "static":
            entry["breakdown"] = {c: time_breakdown(runner.provider, corpora[c], 1 if quick else 2)
                                  for c in corpora}
        results["backends"][runner.name] = entry
        log(f"measured {runner.name}")

    providers = {r.name: r.provider for r in runners if r.provider is not None}
    results["adapters"] = {}
    for name, fn in ADAPTER_BENCHMARKS.items():
        try:
            results["adapters"][name] = fn(BenchContext(providers, corpora, quick, log))
        except Exception as exc:  # one adapter failing must not lose the other numbers
            results["adapters"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    for runner in runners:
        if runner.provider is not None:
            runner.provider.close()
    results["elapsed_s"] = time.perf_counter() - started
    return results


def format_report(results: dict[str, Any]) -> str:
    """The results as the tables printed on the terminal."""
    machine = results["machine"]
    flags = " ".join(machine.get("cpu_flags", []))
    lines = [f"CPU: {machine.get('cpu', '?')} · {machine['cpus']} CPUs · flags: {flags}"
             + (f" · load average {machine['load_average'][0]:.2f}" if machine.get("load_average") else "")
             + (f" · OpenVINO emulating isa {machine['onednn_isa']}" if machine.get("onednn_isa") else "")]
    head = (f"{'backend':<22}{'short t/s':>10}{'×ST':>7}{'long t/s':>10}{'×ST':>7}{'long tok/s':>11}"
            f"{'GFLOP/s':>9}{'roof%':>7}{'p50 ms':>8}{'p95 ms':>8}{'cold s':>8}{'STS ρ':>8}{'min cos':>9}"
            f"{'mean cos':>9}")
    lines.append(head)
    lines.append("-" * len(head))
    for name, e in results["backends"].items():
        cos = e.get("cosine_vs_st", {}).get("min")
        mean_cos = e.get("cosine_vs_st", {}).get("mean")
        lines.append(
            f"{name:<22}{e['short']['texts_per_s']:>10.1f}{e['short']['ratio_vs_st']:>7.2f}"
            f"{e['long']['texts_per_s']:>10.1f}{e['long']['ratio_vs_st']:>7.2f}{e['long']['tokens_per_s']:>11.0f}"
            f"{e['long'].get('gflops', float('nan')):>9.1f}{100 * e['long'].get('roofline_share', float('nan')):>7.1f}"
            f"{e['query']['p50_ms']:>8.2f}{e['query']['p95_ms']:>8.2f}"
            f"{'-' if e['cold_start_s'] is None else format(e['cold_start_s'], '.2f'):>8}"
            f"{e['sts_spearman']:>8.4f}{'' if cos is None else f'{cos:.5f}':>9}"
            f"{'' if mean_cos is None else f'{mean_cos:.5f}':>9}"
        )
    lines.append(f"fp32 GEMM roofline: {results['machine']['gemm_fp32_gflops']:.1f} GFLOP/s "
                 "(roof% = useful FLOPs of the long corpus / roofline; int8 runs on other units)")
    for name, e in results["backends"].items():
        for corpus, b in e.get("breakdown", {}).items():
            lines.append(
                f"{name} {corpus}: total {b['total_s']:.3f}s = tokenise {100 * b['tokenize_share']:.1f}% · "
                f"forward {100 * b['forward_share']:.1f}% · pool+batching+rest {100 * b['pool_and_rest_share']:.1f}%"
            )
    lines.extend(_best_lines(results["backends"]))
    for name, why in results.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    for name, result in results.get("adapters", {}).items():
        lines.append(f"adapter {name}: {json.dumps(result, default=float)[:400]}")
    return "\n".join(lines)


def _best_lines(backends: dict[str, Any]) -> list[str]:
    """The fastest vecembed backend and the fastest sentence-transformers variant, per measure."""
    ours = {n: e for n, e in backends.items() if n != BASELINE and not n.startswith("st-") and n != "static"}
    theirs = {n: e for n, e in backends.items() if n == BASELINE or n.startswith("st-")}
    if not ours or not theirs:
        return []
    lines = []
    for label, corpus, field_ in (("short", "short", "texts_per_s"), ("long", "long", "texts_per_s"),
                                  ("query p50", "query", "p50_ms")):
        sign = -1.0 if field_ == "p50_ms" else 1.0  # faster: more texts/s, fewer ms

        def score(e: dict[str, Any], corpus: str = corpus, field_: str = field_, sign: float = sign) -> float:
            return sign * float(e[corpus][field_])

        a = max(ours, key=lambda n: score(ours[n]))
        b = max(theirs, key=lambda n: score(theirs[n]))
        ratio = score(ours[a]) / score(theirs[b]) if sign > 0 else score(theirs[b]) / score(ours[a])
        lines.append(f"best {label}: vecembed {a} vs sentence-transformers' {b}: {ratio:.2f}x")
    return lines


def _register_adapters() -> None:
    """Register the Chroma/Qdrant ingest benchmarks of ``benchmarks/stores.py`` when it is there."""
    try:
        from benchmarks import stores as adapters
    except ImportError:
        try:
            import stores as adapters  # type: ignore[no-redef]  # run as a script: benchmarks/ is sys.path[0]
        except ImportError:
            return
    register_all = getattr(adapters, "register_all", None)
    if register_all is not None:
        register_all(register_adapter_benchmark)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/run.py [--quick] [--json FILE] [--backends a,b]``."""
    parser = argparse.ArgumentParser(prog="vecembed bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpora, one round: under a minute")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--backends", default=",".join(ALL_BACKENDS), help="comma-separated subset of "
                        + ", ".join(ALL_BACKENDS))
    parser.add_argument("--st-backends", default=",".join(ST_BACKENDS),
                        help="sentence-transformers' own backends to add (empty: none): " + ", ".join(ST_BACKENDS))
    parser.add_argument("--model", default=MODEL_ID)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: run OpenVINO as on an AVX2-only CPU (no VNNI/AMX), through "
                        f"{ONEDNN_ISA_VARIABLE}=AVX2; onnxruntime and torch are not affected")
    parser.add_argument("--no-adapters", action="store_true",
                        help="leave out the database adapter benchmarks (benchmarks/stores.py)")
    args = parser.parse_args(argv)
    if args.isa == "avx2":
        # read by oneDNN when OpenVINO's CPU plugin loads: set before any OpenVINO model is compiled
        os.environ[ONEDNN_ISA_VARIABLE] = "AVX2"
    if not args.no_adapters:
        _register_adapters()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    st_backends = [b.strip() for b in args.st_backends.split(",") if b.strip()]
    for b in backends:
        if b not in ALL_BACKENDS:
            parser.error(f"unknown backend {b!r}; valid: {', '.join(ALL_BACKENDS)}")
    for b in st_backends:
        if b not in ST_BACKENDS:
            parser.error(f"unknown sentence-transformers backend {b!r}; valid: {', '.join(ST_BACKENDS)}")
    results = run_benchmarks(args.quick, backends=backends, st_backends=st_backends, model=args.model,
                             rounds=args.rounds,
                             log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
