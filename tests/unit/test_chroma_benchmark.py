"""benchmarks/adapters.py's Chroma counterpart runs end to end on the mock provider (numbers are not asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ADAPTERS = Path(__file__).resolve().parents[2] / "benchmarks" / "adapters.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vecembed_bench_adapters", ADAPTERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["memory", "path"])
def test_bench_chroma_ingest_counts_and_shape(mode: str) -> None:
    pytest.importorskip("chromadb")
    import vecembed

    bench = _load()
    texts = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "stocks", "rain"] * 10)]
    with vecembed.load_provider("mock", dimension=32) as provider:
        result: dict[str, Any] = bench.bench_chroma_ingest(provider, [*texts, texts[0]], batch_size=16, repeats=2,
                                                           mode=mode)
    assert result["benchmark"] == "chroma_ingest" and result["chroma_mode"] == mode
    assert result["texts"] == len(texts)  # duplicates collapsed
    assert all(len(runs) == 2 for runs in result["runs_s"].values())
    assert result["ingest_vs_embed"] > 0 and result["write_share_of_ingest"] > 0
    with pytest.raises(ValueError, match="mode must be"):
        bench.bench_chroma_ingest(provider, texts, mode="server")


def test_chroma_is_registered_beside_qdrant() -> None:
    bench = _load()
    registered: dict[str, Any] = {}
    bench.register_all(lambda name, fn: registered.__setitem__(name, fn))
    assert registered["chroma"] is bench.chroma_adapter_benchmark
    assert "qdrant" in registered
