"""benchmarks/static_speed.py's own logic (no model): the report's CPU line, ratios and targets, the cosine check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "static_speed.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vecembed_bench_static_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _results(ours: float, theirs: float, cosine: float) -> dict[str, Any]:
    def entry(rate: float) -> dict[str, float]:
        return {"texts_per_s": rate, "best_texts_per_s": rate * 1.2, "cpu_texts_per_s": rate * 2,
                "ratio_vs_model2vec": rate / theirs, "cpu_ratio_vs_model2vec": rate / theirs}

    return {
        "machine": {"cpu": "Example CPU 9000", "cpu_flags": ["avx2", "avx512f"], "cpus": 2, "load_average": [1.5, 2.0]},
        "contenders": {"vecembed": entry(ours), "model2vec": entry(theirs)},
        "min_cosine": {"vs_model2vec": 0.9999998, "vs_model2vec_float32": 1.0, "vs_previous_implementation": cosine,
                       "threads_identical": True, "cache_off_identical": True},
    }


def test_report_names_the_cpu_and_checks_each_target() -> None:
    bench = _load()
    good = bench.format_report(_results(150_000, 25_000, 0.9999999))
    assert good.splitlines()[0] == "CPU: Example CPU 9000 · 2 CPUs · flags: avx2 avx512f · load average 1.50 -> 2.00"
    assert "6.00" in good  # the ratio to model2vec
    assert "(>= 50,000: yes)" in good and "(>= 2.5: yes)" in good and "(>= 0.99999: yes)" in good
    bad = bench.format_report(_results(40_000, 20_000, 0.9998))
    assert "(>= 50,000: no)" in bad and "(>= 2.5: no)" in bad and "(>= 0.99999: no)" in bad


def test_min_cosine_leaves_out_model2vecs_zero_rows() -> None:
    bench = _load()
    a = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    b = np.array([[2.0, 0.0], [0.8, 0.6], [0.0, 0.0]], dtype=np.float32)  # last: no known token in model2vec
    assert abs(bench._min_cosine(a, b) - 0.96) < 1e-6
