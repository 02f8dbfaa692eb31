"""benchmarks/stores.py runs end to end on the mock provider for every store (numbers are not asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import vecembed

ADAPTERS = Path(__file__).resolve().parents[2] / "benchmarks" / "stores.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vecembed_bench_adapters", ADAPTERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
@pytest.mark.parametrize("mode", ["memory", "path"])
def test_bench_store_ingest_counts_and_shape(db: str, mode: str) -> None:
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    bench = _load()
    texts = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "stocks", "rain"] * 10)]
    with vecembed.load_provider("mock", dimension=32) as provider:
        result: dict[str, Any] = bench.bench_store_ingest(provider, [*texts, texts[0]], db=db, mode=mode,
                                                          batch_size=16, repeats=2)
        with pytest.raises(ValueError, match="mode must be"):
            bench.bench_store_ingest(provider, texts, db=db, mode="server")
    assert result["benchmark"] == "store_ingest" and (result["db"], result["mode"]) == (db, mode)
    assert result["texts"] == len(texts)  # duplicates collapsed
    assert all(len(runs) == 2 for runs in result["runs_s"].values())
    assert result["ingest_vs_embed"] > 0 and result["write_share_of_ingest"] > 0


@pytest.mark.parametrize("db", ["chroma", "qdrant"])
def test_check_store_reports_idempotence_recall_and_the_guard(db: str) -> None:
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    bench = _load()
    corpus = [f"document {i} about {w}" for i, w in enumerate(["cats", "dogs", "stocks", "rain"] * 30)]
    with vecembed.load_provider("mock", dimension=32) as p, vecembed.load_provider("mock", dimension=32, seed=4) as o:
        result = bench.check_store(p, o, db, corpus, corpus[:10])
    assert (result["first_written"], result["reingest_written"], result["reingest_skipped"]) == (120, 0, 120)
    assert result["recall_at_10_vs_exact"] >= 0.99
    assert result["other_model_refused"] == "ModelMismatchError" and result["count_after_refusal"] == 120


@pytest.mark.slow  # the benchmark's child interpreter, ingesting 3,000 documents
def test_memory_child_measures_a_generator_ingest() -> None:
    pytest.importorskip("qdrant_client")
    bench = _load()
    result = bench.ingest_memory("qdrant", 3000, dimension=16)
    assert result["written"] == result["count"] - 1 == 3000  # plus the warm-up document
    assert result["rss_peak_mb"] >= result["rss_after_mb"] > 0


def test_a_benchmark_is_registered_per_store() -> None:
    bench = _load()
    registered: dict[str, Any] = {}
    bench.register_all(lambda name, fn: registered.__setitem__(name, fn))
    assert set(registered) == set(vecembed.available_stores())
