"""The ONNX backend against sentence-transformers: parity, int8 quality, the export cache, threads, imports."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# session fixtures (one private cache, one export) shared by every module that names them
pytest_plugins = ["backend_fixtures"]
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
pytestmark = pytest.mark.integration
pytest.importorskip("onnxruntime", reason="pip install 'vecembed[onnx]'")

import vecembed  # noqa: E402
from vecembed.errors import InvalidInputError, MissingDependencyError  # noqa: E402
from vecembed.providers import onnx_build  # noqa: E402

#: Sentences compared with sentence-transformers (its encode dominates this module's time; 1,000 suffice).
PARITY_SENTENCES = 1000


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many ONNX exports and int8 quantisations run during the test (the cache exists to avoid them)."""
    counts = {"export": 0, "quantize": 0}

    def counting(kind: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[kind] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(onnx_build, "export_onnx", counting("export", onnx_build.export_onnx))
    monkeypatch.setattr(onnx_build, "quantize_int8", counting("quantize", onnx_build.quantize_int8))
    return counts


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    """Each file of ``folder`` with its inode and mtime: a rewrite (atomic replace) changes both."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def fp32_vectors(onnx_provider: Any, sts_sentences: list[str]) -> np.ndarray:
    vectors: np.ndarray = onnx_provider.embed_documents(sts_sentences)
    return vectors


@pytest.fixture(scope="module")
def int8_vectors(onnx_int8_provider: Any, sts_sentences: list[str]) -> np.ndarray:
    vectors: np.ndarray = onnx_int8_provider.embed_documents(sts_sentences)
    return vectors


def _spearman(vectors: np.ndarray, sentences: list[str], rows: list[tuple[float, str, str]]) -> float:
    from scipy.stats import spearmanr

    index = {s: i for i, s in enumerate(sentences)}
    a = vectors[[index[r[1]] for r in rows]]
    b = vectors[[index[r[2]] for r in rows]]
    return float(spearmanr(np.sum(a * b, axis=1), [r[0] for r in rows]).statistic)


def test_fp32_matches_sentence_transformers(onnx_provider: Any, st_parity_vectors: np.ndarray,
                                            sts_sentences: list[str]) -> None:
    texts = sts_sentences[:PARITY_SENTENCES]
    want = st_parity_vectors[: len(texts)]
    got = onnx_provider.embed_documents(texts)
    assert got.shape == want.shape == (len(texts), 384)
    assert got.dtype == np.float32
    cosine = np.sum(got * want, axis=1)
    assert cosine.min() >= 0.9999, f"min cosine {cosine.min()}"


@pytest.mark.slow  # both graphs over the whole STS-B dev split (2,909 sentences): the Spearman figure
def test_int8_stays_close_to_fp32(fp32_vectors: np.ndarray, int8_vectors: np.ndarray, sts_sentences: list[str],
                                  sts_rows: list[tuple[float, str, str]]) -> None:
    # The recipe (7-bit weights, FFN output projections in fp32) cannot saturate the int16 sums of CPUs without
    # VNNI, so these bounds hold on AVX2-only CPUs as on VNNI/AMX ones (measured 0.9959 and +0.0009 on both).
    cosine = np.sum(fp32_vectors * int8_vectors, axis=1)
    assert cosine.mean() >= 0.995, f"mean cosine {cosine.mean()}"
    assert cosine.min() < 0.9999  # it really is another graph, not the fp32 one again
    rho32 = _spearman(fp32_vectors, sts_sentences, sts_rows)
    rho8 = _spearman(int8_vectors, sts_sentences, sts_rows)
    assert rho32 > 0.8  # all-MiniLM-L6-v2 scores ~0.87 on STS-B dev
    assert abs(rho32 - rho8) <= 0.002, f"STS-B Spearman fp32 {rho32:.4f} vs int8 {rho8:.4f}"


def test_int8_keeps_the_down_projections_in_fp32(onnx_int8_provider: Any) -> None:
    import onnx

    fp32 = onnx_int8_provider.model_file.with_name("model.onnx")
    down = onnx_build.down_projections(fp32)
    assert len(down) == 6  # one feed-forward output projection per layer of all-MiniLM-L6-v2
    graph = onnx.load(str(onnx_int8_provider.model_file)).graph
    kept = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert set(down) <= kept
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 30  # the other 5 weights per layer are int8
    # the recipe is part of the fingerprint: another recipe's vectors are another space
    assert onnx_build.INT8_METHOD in repr(onnx_int8_provider._fingerprint_extra())


def test_info_records_quantisation_and_agreement(onnx_provider: Any, onnx_int8_provider: Any,
                                                 torch_provider: Any) -> None:
    assert onnx_provider.info.backend == "onnx" and onnx_provider.info.quantization is None
    assert onnx_provider.info.fingerprint == torch_provider.info.fingerprint  # same vector space
    info = onnx_int8_provider.info
    assert info.quantization == "int8" and info.fingerprint != onnx_provider.info.fingerprint
    assert info.agreement is not None and 0.95 <= info.agreement < 1.0
    assert onnx_int8_provider.model_file.name == "model-int8-v2.onnx"


def test_second_load_reuses_the_cache(onnx_int8_provider: Any, vecembed_cache: Path, builds: dict[str, int]) -> None:
    fp32 = onnx_int8_provider.model_file.with_name("model.onnx")
    assert fp32.is_relative_to(vecembed_cache)
    files = _files(fp32.parent)
    for quantize in (None, "int8"):
        with vecembed.load_provider("onnx", model=MODEL_ID, quantize=quantize, device="cpu") as p:
            assert p.model_file.parent == fp32.parent
    assert builds == {"export": 0, "quantize": 0}
    assert _files(fp32.parent) == files


@pytest.mark.slow  # a real int8 quantisation of the rebuilt graph (~4 s)
def test_corrupt_cached_graph_is_rebuilt(onnx_int8_provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         sts_sentences: list[str], builds: dict[str, int],
                                         caplog: pytest.LogCaptureFixture) -> None:
    # a copy of the session cache, so the rebuild here does not disturb other tests
    entry = onnx_int8_provider.model_file.parent
    copy = tmp_path / "cache" / "onnx" / entry.name
    shutil.copytree(entry, copy)
    damaged = copy / "model-int8-v2.onnx"
    with open(damaged, "r+b") as fh:  # truncated, as by a crash mid-write without atomic writes
        fh.truncate(damaged.stat().st_size // 2)
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "cache"))
    fp32 = _files(copy)[copy / "model.onnx"]
    with caplog.at_level(logging.INFO, logger="vecembed"), \
            vecembed.load_provider("onnx", model=MODEL_ID, quantize="int8", device="cpu") as p:
        assert p.model_file == damaged
        rebuilt = p.embed_documents(sts_sentences[:50])
    assert builds == {"export": 0, "quantize": 1}
    # the one-off build says what it does, how long it takes, and where it is kept (the CLI shows this line)
    assert re.search(r"quantising .* to int8 once: about \d+ s on 2 CPU cores, then every load reuses", caplog.text)
    assert _files(copy)[copy / "model.onnx"] == fp32  # the intact fp32 graph was re-used, untouched
    assert damaged.stat().st_size == (entry / "model-int8-v2.onnx").stat().st_size
    np.testing.assert_allclose(rebuilt, onnx_int8_provider.embed_documents(sts_sentences[:50]), atol=1e-6)


@pytest.mark.slow  # a real int8 quantisation of the rebuilt graph (~4 s)
def test_missing_sidecar_means_rebuild(onnx_provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       builds: dict[str, int]) -> None:
    entry = onnx_provider.model_file.parent
    copy = tmp_path / "cache" / "onnx" / entry.name
    copy.mkdir(parents=True)
    shutil.copy(entry / "model.onnx", copy / "model.onnx")  # no .sha256: an unfinished write
    shutil.copy(entry / "model.onnx.sha256", copy / "model.onnx.sha256")
    (copy / "model-int8-v2.onnx").write_bytes(b"not an onnx graph")
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "cache"))
    with vecembed.load_provider("onnx", model=MODEL_ID, quantize="int8", device="cpu") as p:
        assert p.health_check().ok
    assert builds == {"export": 0, "quantize": 1}
    assert (copy / "model-int8-v2.onnx.sha256").is_file()


def test_threads_get_the_same_vectors_as_one_thread(onnx_provider: Any, sts_sentences: list[str]) -> None:
    texts = sts_sentences[:160]
    expected = onnx_provider.embed_documents(texts)
    results: list[np.ndarray | None] = [None] * 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = onnx_provider.embed_documents(texts)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        assert got is not None
        np.testing.assert_array_equal(got, expected)


def test_cached_graph_loads_and_embeds_without_torch(onnx_provider: Any, vecembed_cache: Path) -> None:
    code = (
        "import sys, vecembed\n"
        f"p = vecembed.load_provider('onnx', model={MODEL_ID!r}, device='cpu')\n"
        "v = p.embed_documents(['hello world', ''])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(v.shape, heavy)\n"
    )
    env = {**os.environ, "VECEMBED_CACHE": str(vecembed_cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(2, 384) []"


def test_export_without_torch_names_the_extra(vecembed_cache: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, minilm_path: Path) -> None:
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"vecembed\[torch\]"):
        vecembed.load_provider("onnx", model=MODEL_ID, device="cpu")
    assert not list((tmp_path / "empty-cache").rglob("*.onnx"))


def test_shipped_graph_is_used_as_is(onnx_provider: Any, tmp_path: Path, minilm_path: Path,
                                     sts_sentences: list[str], builds: dict[str, int]) -> None:
    model_dir = tmp_path / "shipped"
    model_dir.mkdir()
    for item in minilm_path.iterdir():
        if item.name != "model.safetensors":  # a model that ships only ONNX weights
            (model_dir / item.name).symlink_to(item)
    (model_dir / "onnx").mkdir()
    shutil.copy(onnx_provider.model_file, model_dir / "onnx" / "model.onnx")
    with vecembed.load_provider("onnx", model=model_dir, device="cpu") as p:
        assert p.model_file == model_dir / "onnx" / "model.onnx"
        got = p.embed_documents(sts_sentences[:40])
    assert builds == {"export": 0, "quantize": 0}
    np.testing.assert_allclose(got, onnx_provider.embed_documents(sts_sentences[:40]), atol=1e-6)


def test_bad_options_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="quantize"):
        vecembed.load_provider("onnx", model=MODEL_ID, quantize="int4")
    with pytest.raises(InvalidInputError, match="device"):
        vecembed.load_provider("onnx", model=MODEL_ID, device="tpu")
    for threads in (0, True, 1.5):  # one rule with the openvino backend: True is not a thread count
        with pytest.raises(InvalidInputError, match="threads must be a positive int"):
            vecembed.load_provider("onnx", model=MODEL_ID, threads=threads)


def test_another_runtime_gets_the_cached_graph(onnx_provider: Any, onnx_int8_provider: Any, minilm_path: Path,
                                               builds: dict[str, int]) -> None:
    graph = onnx_build.ensure_onnx_graph(minilm_path)  # a model directory is enough: no provider, no session
    assert graph == onnx_build.OnnxGraph(onnx_provider.model_file, None, cached=True, agreement=None)
    int8 = onnx_build.ensure_onnx_graph(minilm_path, quantize="int8")
    assert int8.path == onnx_int8_provider.model_file and int8.quantization == "int8"
    assert int8.agreement == onnx_int8_provider.info.agreement
    assert builds == {"export": 0, "quantize": 0}
    with pytest.raises(InvalidInputError, match="quantize"):
        onnx_build.ensure_onnx_graph(minilm_path, quantize="int4")
