"""The static backend's previous implementation (before its word cache), written plainly, for parity tests.

One copy: ``previous_vectors`` of ``benchmarks/static_speed.py``, which measures the same parity.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "static_speed.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("vecembed_bench_static_speed", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


previous_vectors = _load().previous_vectors
