"""Every Python block in README.md runs as written (in a scratch folder), so the docs cannot rot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from qdrant_fixtures import qdrant_server_url  # noqa: F401
from server_fixtures import README_URL, readme_server  # noqa: F401

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: the served model's ONNX graph in the session's cache
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a subprocess per README block

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, tmp_path: Path, minilm_path: Path,
                                  request: pytest.FixtureRequest) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VECEMBED_OFFLINE": "1"}
    env.pop("VECEMBED_CHROMA_URL", None)
    env.pop("VECEMBED_QDRANT_URL", None)
    code = _on_test_servers(BLOCKS[index], request)
    if 'load_provider("gguf"' in code:  # the GGUF block: llama.cpp, converting into the session's private cache
        pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")
        env["VECEMBED_CACHE"] = str(request.getfixturevalue("vecembed_cache"))
    if "import ray" in code:  # the Scaling out block starts a local Ray cluster: in a private temp dir
        env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="vr-", dir="/tmp")  # short: Ray's socket paths are limited
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if "RAY_TMPDIR" in env:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert proc.returncode == 0, f"README python block {index} failed:\n{BLOCKS[index]}\n{proc.stderr[-3000:]}"
    if "[['1']]" in BLOCKS[index]:
        assert "[['1']]" in proc.stdout  # the Chroma example's promised answer
    if "faq-1" in BLOCKS[index]:  # the store example: the report, the re-run skipping both, the promised hit
        lines = proc.stdout.splitlines()
        assert "2 written" in lines[0] and lines[1] == "2" and lines[2].startswith("faq-1 ")
    if "scaled-docs" in BLOCKS[index]:  # the Ray example: every document written once
        assert proc.stdout.splitlines()[-1] == "1000 1000"
    if "server-docs" in BLOCKS[index]:  # the server examples: two documents, found again through a second client
        assert proc.stdout.splitlines() == ["2", "a"]
    if "async-client-docs" in BLOCKS[index]:  # the native async client example: the promised hit
        assert proc.stdout.splitlines() == ["plane"]
    if "gguf-docs" in BLOCKS[index]:  # the GGUF block: MiniLM converted to Q8_0, one 384-d vector
        assert proc.stdout.splitlines() == ["q8_0 384 (1, 384)"]
    if "served-docs" in BLOCKS[index]:  # the `vecembed serve` clients: OpenAI's, then the remote provider in a store
        assert proc.stdout.splitlines() == ["384 4", "True", "a"]


def _on_test_servers(code: str, request: pytest.FixtureRequest) -> str:
    """The block with the README's server addresses replaced by the test servers' (a Chroma server started
    here; a Qdrant server from VECEMBED_QDRANT_URL or testcontainers, else the test skips with the reason;
    `vecembed serve` as the README runs it)."""
    chroma_url, qdrant_url = "http://localhost:8000", "http://localhost:6333"
    if chroma_url in code:
        endpoint = request.getfixturevalue("chroma_server")
        code = code.replace(chroma_url, endpoint.url).replace(
            'HttpClient(host="localhost", port=8000)', f'HttpClient(host="{endpoint.host}", port={endpoint.port})')
    if qdrant_url in code:
        code = code.replace(qdrant_url, request.getfixturevalue("qdrant_server_url"))
    if README_URL in code:  # the `vecembed serve` block: the README's own command, on a free port
        code = code.replace(README_URL, request.getfixturevalue("readme_server"))
    return code
