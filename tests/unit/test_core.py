"""Errors, value types, the registry and the import-time promise of ``import vecembed``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import vecembed
from vecembed import (
    DimensionMismatchError,
    HealthReport,
    InvalidInputError,
    MissingDependencyError,
    ModelInfo,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
    ProviderUnavailableError,
    UnknownProviderError,
    VecembedError,
)
from vecembed._deps import require
from vecembed.types import make_fingerprint

# the stemmer and hash of the bm25 sparse provider too: sparse.py registers it by import string only
HEAVY = ("torch", "onnxruntime", "transformers", "chromadb", "qdrant_client", "sentence_transformers",
         "py_rust_stemmers", "mmh3")


def test_import_vecembed_loads_no_heavy_module() -> None:
    code = (
        "import sys, vecembed; vecembed.load_provider('mock').embed_documents(['x']);"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ModelNotFoundError, LookupError),
        (ModelLoadError, OSError),
        (UnknownProviderError, KeyError),
        (MissingDependencyError, ImportError),
        (InvalidInputError, ValueError),
        (DimensionMismatchError, ValueError),
        (ModelMismatchError, ValueError),
        (ProviderUnavailableError, RuntimeError),
    ],
)
def test_every_error_is_a_vecembed_error_and_its_builtin(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, VecembedError) and issubclass(cls, builtin)


def test_model_not_found_lists_every_place_tried() -> None:
    err = ModelNotFoundError("x/y", ["first place", "second place"])
    assert "1. first place" in str(err) and "2. second place" in str(err)
    assert err.tried == ["first place", "second place"]


def test_unknown_backend_lists_valid_ones() -> None:
    valid = "valid backends: gguf, mock, onnx, openvino, remote, static, torch"
    with pytest.raises(UnknownProviderError, match=valid) as err:
        vecembed.load_provider("tensorflow")
    assert isinstance(err.value, KeyError) and not str(err.value).startswith("'")  # not KeyError's quoting


def test_model_load_error_is_one_message_and_keeps_the_path() -> None:
    err = ModelLoadError("config.json: not valid JSON", path="/m/config.json")
    assert str(err) == "config.json: not valid JSON" and err.path == "/m/config.json"
    assert isinstance(err, OSError) and err.errno is None


def test_model_errors_are_exported_at_the_top() -> None:
    assert {"ModelLoadError", "ModelNotFoundError", "UnknownProviderError"} <= set(vecembed.__all__)
    assert vecembed.UnknownProviderError is vecembed.registry.UnknownProviderError


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecembed\[torch\]'"):
        require("torch", "torch", "the torch backend")
    with pytest.raises(MissingDependencyError, match=r"vecembed\[torch\]"):
        vecembed.load_provider("torch")


def test_model_info_is_frozen_and_validated() -> None:
    info = ModelInfo(name="m", dimension=3, max_tokens=8, pooling="mean", normalized=True, backend="b", fingerprint="f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.dimension = 4  # type: ignore[misc]
    with pytest.raises(ValueError, match="pooling"):
        ModelInfo(name="m", dimension=3, max_tokens=8, pooling="avg", normalized=True, backend="b", fingerprint="f")
    with pytest.raises(ValueError, match="dimension"):
        ModelInfo(name="m", dimension=0, max_tokens=8, pooling="mean", normalized=True, backend="b", fingerprint="f")
    assert info.to_dict()["dimension"] == 3


def test_fingerprint_depends_on_the_vector_space_only() -> None:
    base = {"weights_id": "sha256:abc", "pooling": "mean", "normalized": True, "dimension": 384}
    assert make_fingerprint(**base) == make_fingerprint(**base)
    assert make_fingerprint(**base) != make_fingerprint(**{**base, "pooling": "cls"})
    assert make_fingerprint(**base) != make_fingerprint(**base, quantization="int8")
    assert make_fingerprint(**base) != make_fingerprint(**{**base, "weights_id": "sha256:abd"})


def test_health_report_combine_is_ok_only_when_every_part_is() -> None:
    good = HealthReport(ok=True, latency_ms=1.0, detail="fine", component="a")
    bad = HealthReport(ok=False, latency_ms=2.0, detail="down", component="b")
    both = HealthReport.combine("all", [good, bad])
    assert not both.ok and both.checks == {"a": True, "b": False} and both.latency_ms == 3.0
    assert "b: down" in both.detail
    assert HealthReport.combine("all", [good, good]).ok


def test_a_misspelt_option_names_the_valid_ones() -> None:
    # Issue 10 #9: load_provider("onnx", modle=...) raised a bare TypeError.
    import vecembed

    with pytest.raises(vecembed.InvalidInputError, match=r"'mock' has no option 'dimenson'; its options: dimension"):
        vecembed.load_provider("mock", dimenson=3)
    # Options a backend passes on to its base class (**kwargs) count as valid, and a bad one is still named.
    pytest.importorskip("onnxruntime")
    with pytest.raises(vecembed.InvalidInputError, match=r"no option 'modle'; its options: .*model.*quantize"):
        vecembed.load_provider("onnx", modle="x")
