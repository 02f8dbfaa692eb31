"""The OpenVINO backend against sentence-transformers: fp32 parity, NNCF int8 quality, its cache, threads, extras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sts_helpers import sts_spearman

pytest_plugins = ["backend_fixtures"]
pytestmark = pytest.mark.integration
pytest.importorskip("openvino", reason="pip install 'vecembed[openvino]'")

import vecembed  # noqa: E402
from vecembed import artifact_cache as cache  # noqa: E402
from vecembed.cpu import CpuInfo, onednn_cpu_info  # noqa: E402
from vecembed.errors import (  # noqa: E402
    InvalidInputError,
    MissingDependencyError,
    ProviderUnavailableError,
)
from vecembed.providers import openvino as ov_backend  # noqa: E402

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: Sentences compared with sentence-transformers (its encode dominates the time; 1,000 suffice).
PARITY_SENTENCES = 1000
#: The tests that need the NNCF int8 model, quantised once per session (~25 s on 2 cores): run with -m slow.
SLOW_INT8 = pytest.mark.slow
LONG_TEXTS = [
    "Embeddings turn text into vectors so that similar meanings end up close together. " * 12,
    "The quick brown fox jumps over the lazy dog; " * 40,  # truncated at 256 tokens
]


@pytest.fixture(scope="module")
def ov_fp32_vectors(openvino_provider: Any, sts_sentences: list[str]) -> np.ndarray:
    vectors: np.ndarray = openvino_provider.embed_documents(sts_sentences)
    return vectors


@pytest.fixture(scope="module")
def ov_int8_vectors(openvino_int8_provider: Any, sts_sentences: list[str]) -> np.ndarray:
    vectors: np.ndarray = openvino_int8_provider.embed_documents(sts_sentences)
    return vectors


@pytest.fixture
def int8_builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders NNCF quantises into during the test (the cache exists to avoid any)."""
    built: list[Path] = []
    real = ov_backend.quantize_int8_openvino

    def counting(provider: Any, fp32: Path, folder: Path) -> float:
        built.append(folder)
        return real(provider, fp32, folder)

    monkeypatch.setattr(ov_backend, "quantize_int8_openvino", counting)
    return built


def test_fp32_matches_sentence_transformers(openvino_provider: Any, st_model: Any, st_parity_vectors: np.ndarray,
                                            sts_sentences: list[str]) -> None:
    texts = sts_sentences[:PARITY_SENTENCES]
    want = np.concatenate([st_parity_vectors[: len(texts)],
                           st_model.encode(LONG_TEXTS, normalize_embeddings=True, convert_to_numpy=True)])
    got = openvino_provider.embed_documents(texts + LONG_TEXTS)
    assert got.shape == want.shape == (len(texts) + len(LONG_TEXTS), 384) and got.dtype == np.float32
    cosine = np.sum(got * want, axis=1)
    assert cosine.min() >= 0.9999, f"min cosine {cosine.min()}"


@SLOW_INT8
def test_int8_stays_close_to_fp32(ov_fp32_vectors: np.ndarray, ov_int8_vectors: np.ndarray,
                                  sts_sentences: list[str], sts_rows: list[tuple[float, str, str]]) -> None:
    cosine = np.sum(ov_fp32_vectors * ov_int8_vectors, axis=1)
    assert cosine.mean() >= 0.99, f"mean cosine {cosine.mean()}"
    assert cosine.min() < 0.9999  # it really is another model, not the fp32 one again
    rho32 = sts_spearman(ov_fp32_vectors, sts_sentences, sts_rows)
    rho8 = sts_spearman(ov_int8_vectors, sts_sentences, sts_rows)
    assert rho32 > 0.8  # all-MiniLM-L6-v2 scores ~0.87 on STS-B dev
    assert abs(rho32 - rho8) <= 0.003, f"STS-B Spearman fp32 {rho32:.4f} vs int8 {rho8:.4f}"


@SLOW_INT8
def test_info_and_fingerprints(openvino_provider: Any, openvino_int8_provider: Any, onnx_provider: Any,
                               onnx_int8_provider: Any) -> None:
    info = openvino_provider.info
    assert (info.backend, info.device, info.quantization, info.agreement) == ("openvino", "cpu", None, None)
    assert info.fingerprint == onnx_provider.info.fingerprint  # fp32: the same vector space on every runtime
    int8 = openvino_int8_provider.info
    assert int8.quantization == "int8" and int8.agreement is not None and 0.9 <= int8.agreement < 1.0
    # NNCF's static int8 and onnxruntime's dynamic int8 are two different approximations
    assert len({int8.fingerprint, info.fingerprint, onnx_int8_provider.info.fingerprint}) == 3
    # the int8 IR lives in the cache folder of the ONNX graph it was built from
    assert openvino_int8_provider.model_file.parent.parent == onnx_provider.model_file.parent
    assert openvino_provider.model_file == onnx_provider.model_file


@SLOW_INT8
def test_second_int8_load_reuses_the_cache_without_nncf(openvino_int8_provider: Any, int8_builds: list[Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = openvino_int8_provider.model_file.parent
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    monkeypatch.setitem(sys.modules, "nncf", None)  # loading a cached int8 model needs no nncf
    with vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8", threads=1) as again:
        assert again.model_file == openvino_int8_provider.model_file
        np.testing.assert_allclose(again.embed_documents(LONG_TEXTS),
                                   openvino_int8_provider.embed_documents(LONG_TEXTS), atol=1e-5)
    assert int8_builds == []
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    record = cache.is_verified(folder / "model.bin")
    assert record is not None and record["mean_agreement"] >= ov_backend.INT8_MIN_MEAN_COSINE


@SLOW_INT8
def test_int8_on_a_cpu_without_vnni_points_to_onnx(openvino_int8_provider: Any, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # the warning only: keep the recipe the fixture built for this CPU, whatever CPU the test pretends to be
    monkeypatch.setattr(ov_backend, "int8_recipe", lambda device="CPU", cpu=None: openvino_int8_provider._recipe)
    monkeypatch.setattr(ov_backend, "onednn_cpu_info", lambda: _cpu({"avx", "avx2", "fma"}))
    with caplog.at_level("WARNING", logger="vecembed.providers.openvino"):
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8").close()
    assert "quantize='int8'" in caplog.text and "avx512_vnni" in caplog.text
    caplog.clear()
    monkeypatch.setattr(ov_backend, "onednn_cpu_info", lambda: _cpu({"avx2", "avx512_vnni"}))
    with caplog.at_level("WARNING", logger="vecembed.providers.openvino"):
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8").close()
    assert "dot-product" not in caplog.text


def _cpu(flags: set[str]) -> CpuInfo:
    return CpuInfo(model="test CPU", flags=frozenset(flags), source="test", machine="x86_64")


@SLOW_INT8
def test_int8_recipe_follows_the_cpu(openvino_int8_provider: Any) -> None:
    """7-bit weights (NNCF's overflow fix) exactly where int8 sums saturate: no VNNI/AMX, or flags unknown."""
    assert ov_backend.int8_recipe("CPU", _cpu({"avx2", "fma"})) == ov_backend.RECIPE_OVERFLOW_FIX
    assert ov_backend.int8_recipe("CPU", _cpu({"avx2", "avx512f", "avx512bw", "avx512vl"})) == \
        ov_backend.RECIPE_OVERFLOW_FIX
    assert ov_backend.int8_recipe("CPU", _cpu(set())) == ov_backend.RECIPE_OVERFLOW_FIX
    for flags in ({"avx2", "avx512_vnni"}, {"avx2", "avx_vnni"}, {"avx2", "amx_int8"}):
        assert ov_backend.int8_recipe("CPU", _cpu(flags)) == ov_backend.RECIPE_DEFAULT
    assert ov_backend.int8_recipe("GPU", _cpu({"avx2"})) == ov_backend.RECIPE_DEFAULT
    # the provider built the recipe of the CPU it runs on, in a folder named for it, with it in the fingerprint
    here = onednn_cpu_info()
    recipe = openvino_int8_provider._recipe
    assert recipe == (ov_backend.RECIPE_DEFAULT if here.int8_dot_product else ov_backend.RECIPE_OVERFLOW_FIX)
    folder = openvino_int8_provider.model_file.parent.name
    assert folder.endswith("-overflow-fix") == (recipe == ov_backend.RECIPE_OVERFLOW_FIX)
    assert recipe in repr(openvino_int8_provider._fingerprint_extra())


def test_concurrent_callers_get_single_thread_vectors(openvino_provider: Any, sts_sentences: list[str]) -> None:
    texts = sts_sentences[:160]
    want = openvino_provider.embed_documents(texts)
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(3):
                got[k] = openvino_provider.embed_documents(texts[k::4])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        np.testing.assert_allclose(got[k], want[k::4], atol=1e-5)


def test_calibration_set_is_train_data_not_the_dev_set(sts_sentences: list[str]) -> None:
    texts = ov_backend.calibration_texts()
    assert len(texts) == ov_backend.CALIBRATION_SENTENCES + ov_backend.CALIBRATION_PARAGRAPHS
    assert not set(texts) & set(sts_sentences)  # never calibrate on what the quality is measured on
    assert max(len(t) for t in texts) > 600 and min(len(t) for t in texts) < 60  # short and long inputs


def test_bad_options_are_refused(minilm_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="quantize"):
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int4")
    for threads in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError, match="threads"):
            vecembed.load_provider("openvino", model=MODEL_ID, threads=threads)
    with pytest.raises(InvalidInputError, match="device"):
        vecembed.load_provider("openvino", model=MODEL_ID, device="tpu")


def test_a_missing_gpu_is_named() -> None:
    import openvino

    if "GPU" in openvino.Core().available_devices:
        pytest.skip("this machine has a GPU that OpenVINO can use")
    with pytest.raises(ProviderUnavailableError, match="GPU"):
        vecembed.load_provider("openvino", model=MODEL_ID, device="gpu")


def test_missing_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"vecembed\[openvino\]"):
        vecembed.load_provider("openvino", model=MODEL_ID)


@pytest.mark.slow
def test_a_refused_int8_model_is_not_cached(openvino_provider: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate: an int8 model below the agreement bar raises and leaves no cache entry (a fresh cache)."""
    shutil_copy_graph(openvino_provider.model_file, tmp_path)
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path))
    monkeypatch.setattr(ov_backend, "INT8_MIN_MEAN_COSINE", 1.01)
    with pytest.raises(ProviderUnavailableError, match="nothing was cached"):
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8")
    assert not [p for p in tmp_path.rglob("openvino-int8-*") if not p.name.endswith(".refused.json")]
    assert not list(tmp_path.rglob("*.tmp"))
    # the verdict is recorded: the next load refuses at once instead of quantising again to the same end
    monkeypatch.setattr(ov_backend, "quantize_int8_openvino", lambda *a: pytest.fail("quantised again"))
    with pytest.raises(ProviderUnavailableError, match="refused on this CPU before") as refused:
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8")
    assert ".refused.json to try again" in str(refused.value)
    # another NNCF might do better: a record of another version does not stand
    record = next(tmp_path.rglob("*.refused.json"))
    record.write_text(record.read_text().replace('"nncf": "', '"nncf": "0.0-'))
    with pytest.raises(pytest.fail.Exception, match="quantised again"):
        vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8")


@pytest.mark.slow
def test_int8_under_avx2_emulation_loads_and_agrees(openvino_provider: Any, tmp_path: Path,
                                                    sts_sentences: list[str]) -> None:
    """oneDNN capped to AVX2 (no VNNI/AMX), as on an AVX2-only CPU: the overflow-fix recipe is built and passes."""
    shutil_copy_graph(openvino_provider.model_file, tmp_path)
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(sts_sentences[:400]))
    code = (
        "import json, sys, numpy as np, vecembed\n"
        "texts = json.loads(open(sys.argv[1], encoding='utf-8').read())\n"
        f"with vecembed.load_provider('openvino', model={MODEL_ID!r}) as fp32, "
        f"vecembed.load_provider('openvino', model={MODEL_ID!r}, quantize='int8') as int8:\n"
        "    cos = np.sum(fp32.embed_documents(texts) * int8.embed_documents(texts), axis=1)\n"
        "    print(json.dumps({'recipe': int8._recipe, 'mean': float(cos.mean()),\n"
        "                      'folder': int8.model_file.parent.name}))\n"
    )
    env = {**os.environ, "VECEMBED_CACHE": str(tmp_path), "ONEDNN_MAX_CPU_ISA": "AVX2"}
    proc = subprocess.run([sys.executable, "-c", code, str(texts)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["recipe"] == ov_backend.RECIPE_OVERFLOW_FIX and got["folder"].endswith("-overflow-fix")
    assert got["mean"] >= 0.99, got


@pytest.mark.slow
def test_damaged_int8_cache_is_rebuilt(openvino_int8_provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       int8_builds: list[Path]) -> None:
    shutil_copy_graph(openvino_int8_provider.model_file.parent.parent / "model.onnx", tmp_path)
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path))
    folder = next(tmp_path.rglob("model.onnx")).parent / f"openvino-int8-v{ov_backend.INT8_VERSION}"
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")  # an interrupted build by an older, non-atomic writer
    with vecembed.load_provider("openvino", model=MODEL_ID, quantize="int8") as rebuilt:
        assert rebuilt.model_file == folder / "model.xml"
        assert rebuilt.health_check().ok
    assert int8_builds == [folder]


@pytest.mark.slow
def test_export_through_openvino_needs_no_onnxruntime(tmp_path: Path, minilm_path: Path) -> None:
    """A fresh cache: the graph is exported (torch) and checked on OpenVINO with onnxruntime unimportable."""
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "import vecembed, numpy as np\n"
        f"p = vecembed.load_provider('openvino', model={MODEL_ID!r})\n"
        "v = p.embed_documents(['A man is playing a guitar.'])\n"
        "print(v.shape, round(float(np.linalg.norm(v)), 4), p.model_file.name)\n"
    )
    env = {**os.environ, "VECEMBED_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["(1,", "384)", "1.0", "model.onnx"]
    assert cache.is_verified(next(tmp_path.rglob("model.onnx"))) is not None


def shutil_copy_graph(graph: Path, cache_root: Path) -> None:
    """Copy a cached fp32 graph (and its sidecar) into another cache root at the same relative place."""
    import shutil

    entry = cache_root / "onnx" / graph.parent.name
    entry.mkdir(parents=True)
    for name in (graph.name, graph.name + ".sha256"):
        shutil.copy2(graph.parent / name, entry / name)
