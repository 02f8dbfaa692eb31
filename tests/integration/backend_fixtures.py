"""Session fixtures for the onnx and static backends (imported by their test modules).

Exports and quantisations are slow, so the whole session shares one private
vecembed cache (``VECEMBED_CACHE`` pointed at a temporary folder): the first
test that needs the ONNX graph exports it, every later one re-uses it.
The static model for parity and conformance is built in code from MiniLM's
own token-embedding matrix and tokenizer (a valid model2vec directory, made in
a second); real distillation is tested on a tiny transformer built in code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: llama.cpp's threads wait for each other by spinning: on a loaded 2-core machine (other jobs, the test's own
#: threads) two of them took 24 s for what one thread does in 1.4 s, with the same vectors to the last bit.
#: The session's GGUF providers therefore run on one thread; the thread count is not what their tests check.
GGUF_THREADS = 1


@pytest.fixture(scope="session")
def vecembed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private vecembed cache for the session (exports happen once per session, never in the user's cache)."""
    root = tmp_path_factory.mktemp("vecembed-cache")
    old = os.environ.get("VECEMBED_CACHE")
    os.environ["VECEMBED_CACHE"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("VECEMBED_CACHE", None)
        else:
            os.environ["VECEMBED_CACHE"] = old


@pytest.fixture(scope="session")
def onnx_provider(vecembed_cache: Path, minilm_path: Path) -> Iterator[Any]:
    pytest.importorskip("onnxruntime", reason="pip install 'vecembed[onnx]'")
    import vecembed

    with vecembed.load_provider("onnx", model=MODEL_ID, device="cpu") as provider:
        yield provider


@pytest.fixture(scope="session")
def onnx_int8_provider(onnx_provider: Any) -> Iterator[Any]:
    import vecembed

    with vecembed.load_provider("onnx", model=MODEL_ID, device="cpu", quantize="int8") as provider:
        yield provider


@pytest.fixture(scope="session")
def openvino_provider(vecembed_cache: Path, minilm_path: Path) -> Iterator[Any]:
    pytest.importorskip("openvino", reason="pip install 'vecembed[openvino]'")
    import vecembed

    with vecembed.load_provider("openvino", model=MODEL_ID, device="cpu") as provider:
        yield provider


@pytest.fixture(scope="session")
def openvino_int8_provider(openvino_provider: Any) -> Iterator[Any]:
    """The NNCF int8 model, quantised once per session (~25 s on 2 cores) into the session's cache."""
    pytest.importorskip("nncf", reason="pip install 'vecembed[openvino]'")
    import vecembed

    with vecembed.load_provider("openvino", model=MODEL_ID, device="cpu", quantize="int8") as provider:
        yield provider


@pytest.fixture(scope="session")
def gguf_provider(vecembed_cache: Path, minilm_path: Path) -> Iterator[Any]:
    """MiniLM converted to GGUF F16 once per session (under a second) and run on llama.cpp."""
    pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")
    import vecembed

    with vecembed.load_provider("gguf", model=MODEL_ID, quantize="f16", n_threads=GGUF_THREADS) as provider:
        yield provider


@pytest.fixture(scope="session")
def gguf_q8_provider(vecembed_cache: Path, minilm_path: Path) -> Iterator[Any]:
    pytest.importorskip("llama_cpp", reason="pip install 'vecembed[gguf]'")
    import vecembed

    with vecembed.load_provider("gguf", model=MODEL_ID, quantize="q8_0", n_threads=GGUF_THREADS) as provider:
        yield provider


def write_static_model(path: Path, vectors: np.ndarray, tokenizer_json: str, *, normalize: bool = True,
                       max_length: int | None = 512, extra_tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A model2vec-format directory: model.safetensors ("embeddings"), tokenizer.json, config.json."""
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": np.ascontiguousarray(vectors), **(extra_tensors or {})}, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "hidden_dim": int(vectors.shape[1]),
              "normalize": normalize, "max_length": max_length}
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def static_model_dir(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A static model from MiniLM's token embeddings (float16, as model2vec stores them) and its tokenizer."""
    pytest.importorskip("safetensors", reason="pip install 'vecembed[static]'")
    from safetensors.numpy import load_file

    weights = load_file(str(minilm_path / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    vectors = weights[key].astype(np.float16)
    tokenizer_json = (minilm_path / "tokenizer.json").read_text(encoding="utf-8")
    return write_static_model(tmp_path_factory.mktemp("static") / "minilm-static", vectors, tokenizer_json)


@pytest.fixture(scope="session")
def static_provider(static_model_dir: Path) -> Iterator[Any]:
    import vecembed

    with vecembed.load_provider("static", model=static_model_dir) as provider:
        yield provider
