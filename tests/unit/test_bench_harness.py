"""benchmarks/run.py's own logic (no model): the CPU line, the best-of comparison, the report, its options."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vecembed_bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _entry(short: float, long: float, p50: float) -> dict[str, Any]:
    corpus = {"texts_per_s": 0.0, "ratio_vs_st": 1.0, "tokens_per_s": 0.0, "gflops": 1.0, "roofline_share": 0.1}
    return {"short": {**corpus, "texts_per_s": short}, "long": {**corpus, "texts_per_s": long},
            "query": {"p50_ms": p50, "p95_ms": p50 * 2}, "cold_start_s": None, "sts_spearman": 0.86}


def test_cpu_info_names_the_model_and_only_known_flags() -> None:
    info = _load().cpu_info()
    assert info["model"]
    assert set(info["flags"]) <= set(_load().CPU_FLAGS)
    if Path("/proc/cpuinfo").is_file() and " avx2 " in Path("/proc/cpuinfo").read_text() + " ":
        assert "avx2" in info["flags"]


def test_report_names_the_cpu_and_compares_the_best_of_each_side() -> None:
    run = _load()
    results = {
        "machine": {"cpus": 2, "cpu": "Some CPU", "cpu_flags": ["avx2", "avx512_vnni"], "gemm_fp32_gflops": 200.0,
                    "load_average": [1.5, 1.0, 1.0]},
        "backends": {
            "sentence-transformers": _entry(100, 10, 10.0),
            "st-openvino": _entry(200, 30, 4.0),
            "onnx": _entry(150, 15, 5.0),
            "openvino-int8": _entry(400, 45, 2.0),
            "static": _entry(10_000, 1_000, 0.05),  # not a transformer: left out of the best-of
        },
        "skipped": {"st-onnx": "ImportError: no"},
    }
    report = run.format_report(results)
    assert report.splitlines()[0] == "CPU: Some CPU · 2 CPUs · flags: avx2 avx512_vnni · load average 1.50"
    assert "best short: vecembed openvino-int8 vs sentence-transformers' st-openvino: 2.00x" in report
    assert "best long: vecembed openvino-int8 vs sentence-transformers' st-openvino: 1.50x" in report
    assert "best query p50: vecembed openvino-int8 vs sentence-transformers' st-openvino: 2.00x" in report
    assert "skipped st-onnx: ImportError: no" in report


def test_backend_options_and_unknown_names() -> None:
    run = _load()
    assert run.backend_options("openvino-int8", "m") == {"model": "m", "quantize": "int8", "device": "cpu"}
    assert run.backend_options("openvino", "m") == {"model": "m", "device": "cpu"}
    with pytest.raises(SystemExit):
        run.main(["--st-backends", "st-tensorflow"])
    with pytest.raises(SystemExit):
        run.main(["--backends", "tensorflow"])
