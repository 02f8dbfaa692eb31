"""Every Python block of README.md and of the docs site runs as written (in a scratch folder), so the docs cannot rot.

A block shown on several pages (the quickstart) runs once. What a block promises to print is checked where it is
promised: :data:`PROMISES` names the page and a word only that page's block holds, and a test makes sure each
promise still finds its block, so moving a block without its check fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_pages import Block, code_blocks
from qdrant_fixtures import qdrant_server_url  # noqa: F401
from server_fixtures import README_URL, readme_server  # noqa: F401

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: the served model's ONNX graph in the session's cache
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a subprocess per block

#: Each distinct Python block, with every place it is shown.
BLOCKS: dict[str, list[Block]] = {}
for _block in code_blocks("python"):
    BLOCKS.setdefault(_block.code, []).append(_block)
CODES = list(BLOCKS)


@dataclass(frozen=True)
class Promise:
    """What the block on ``page`` that contains ``marker`` prints (``check`` gets its stdout lines)."""

    page: str
    marker: str
    check: Callable[[list[str]], bool]


PROMISES = [
    # the quickstart: the shape and dtype, then the promised hit
    Promise("README.md", '"quickstart"', lambda out: out == ["(2, 384) float32", "pasta"]),
    Promise("docs/index.md", '"quickstart"', lambda out: out == ["(2, 384) float32", "pasta"]),
    # the provider walk-through: shape and dtype, then a fingerprint and a passing health check
    Promise("docs/getting-started.md", "where do my vectors live?",
            lambda out: out[0] == "(2, 384) float32" and out[2].startswith("ve1-") and out[2].endswith(" True")),
    # the store example: the report, the re-run skipping both, the promised hit
    Promise("docs/stores.md", '"faq-1"',
            lambda out: "2 written" in out[0] and out[1] == "2" and out[2].startswith("faq-1 ")),
    # the server examples (Chroma and Qdrant): two documents, found again through a second client
    Promise("docs/stores.md", '"server-docs"', lambda out: out == ["2", "a"]),
    # chromadb's own API: the promised answer
    Promise("docs/stores.md", "[['1']]", lambda out: "[['1']]" in out),
    # hybrid search: BM25 finds the aspirin trial, alone and fused with the dense leg
    Promise("docs/stores.md", '"hybrid-docs"', lambda out: out == ["a a 2"]),
    # the native async client: the promised hit
    Promise("docs/stores.md", '"async-client-docs"', lambda out: out == ["plane"]),
    # aliases: the follower moves from static to onnx with the alias; the pinned store refuses after the move
    Promise("docs/stores.md", '"docs-v1"', lambda out: out == [
        "{'docs': 'docs-v1'}", "docs-v1 static a", "docs-v2 onnx a",
        "ModelMismatchError alias 'docs' moved from collection 'docs-v1' to 'docs-v2"]),
    # GGUF: MiniLM converted to Q8_0, one 384-d vector
    Promise("docs/providers.md", "gguf-docs", lambda out: out == ["q8_0 384 (1, 384)"]),
    # the `vecembed serve` clients: OpenAI's, then the remote provider in a store
    Promise("docs/server.md", '"served-docs"', lambda out: out == ["384 4", "True", "a"]),
    # Ray: every document written once
    Promise("docs/scaling-out.md", '"scaled-docs"', lambda out: out[-1] == "1000 1000"),
    # Ray with BM25: all three written, the hybrid search finds the aspirin document
    Promise("docs/scaling-out.md", '"ray-hybrid-docs"', lambda out: out[-1] == "3 ['a']"),
]


def test_the_docs_have_python_examples() -> None:
    assert len(CODES) >= 10
    assert any(block.page == "README.md" for blocks in BLOCKS.values() for block in blocks)


@pytest.mark.parametrize("promise", PROMISES, ids=lambda p: f"{p.page}:{p.marker}")
def test_every_promise_finds_its_block(promise: Promise) -> None:
    on_page = [code for code, blocks in BLOCKS.items()
               if promise.marker in code and any(b.page == promise.page for b in blocks)]
    assert on_page, f"no Python block on {promise.page} contains {promise.marker!r}: move its check with it"


@pytest.mark.parametrize("code", CODES, ids=[BLOCKS[code][0].where for code in CODES])
def test_doc_python_block_runs(code: str, tmp_path: Path, minilm_path: Path,
                               request: pytest.FixtureRequest) -> None:
    where = ", ".join(block.where for block in BLOCKS[code])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VECEMBED_OFFLINE": "1"}
    env.pop("VECEMBED_CHROMA_URL", None)
    env.pop("VECEMBED_QDRANT_URL", None)
    runnable = _on_test_servers(code, request)
    if 'load_provider("gguf"' in runnable:  # the GGUF block: llama.cpp, converting into the session's private cache
        pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")
        env["VECEMBED_CACHE"] = str(request.getfixturevalue("vecembed_cache"))
    if "import ray" in runnable:  # the Scaling out block starts a local Ray cluster: in a private temp dir
        env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="vr-", dir="/tmp")  # short: Ray's socket paths are limited
    proc = subprocess.run([sys.executable, "-c", runnable], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if "RAY_TMPDIR" in env:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert proc.returncode == 0, f"Python block at {where} failed:\n{code}\n{proc.stderr[-3000:]}"
    out = proc.stdout.splitlines()
    for promise in PROMISES:
        if promise.marker in code and any(block.page == promise.page for block in BLOCKS[code]):
            assert promise.check(out), f"the block at {where} printed what {promise.page} does not promise:\n" \
                                       f"{proc.stdout}"


def _on_test_servers(code: str, request: pytest.FixtureRequest) -> str:
    """The block with the docs' server addresses replaced by the test servers' (a Chroma server started
    here; a Qdrant server from VECEMBED_QDRANT_URL or testcontainers, else the test skips with the reason;
    `vecembed serve` as the docs run it)."""
    chroma_url, qdrant_url = "http://localhost:8000", "http://localhost:6333"
    if chroma_url in code:
        endpoint = request.getfixturevalue("chroma_server")
        code = code.replace(chroma_url, endpoint.url).replace(
            'HttpClient(host="localhost", port=8000)', f'HttpClient(host="{endpoint.host}", port={endpoint.port})')
    if qdrant_url in code:
        code = code.replace(qdrant_url, request.getfixturevalue("qdrant_server_url"))
    if README_URL in code:  # the `vecembed serve` block: the docs' own command, on a free port
        code = code.replace(README_URL, request.getfixturevalue("readme_server"))
    return code
