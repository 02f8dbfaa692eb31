"""vecembed.artifact_cache: where the cache lives, atomic writes, checksums that catch damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecembed import artifact_cache as cache


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    entry = cache.entry_dir("onnx", "ab/c d")
    assert entry == tmp_path / "c" / "onnx" / "ab_c_d" and entry.is_dir()


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VECEMBED_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir().name == "vecembed"


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), cache.atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no temporary left behind
    with cache.atomic_path(dest) as tmp:
        tmp.write_bytes(b"new")
        assert dest.read_bytes() == b"old"  # readers see the old file until the block ends
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_dir(tmp_path: Path) -> None:
    dest = tmp_path / "entry"
    with cache.atomic_dir(dest) as tmp:
        (tmp / "a").write_text("1")
    assert (dest / "a").read_text() == "1"
    with cache.atomic_dir(dest) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    with pytest.raises(ValueError), cache.atomic_dir(dest) as tmp:
        (tmp / "c").write_text("3")
        raise ValueError("failed build")
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_checksum_catches_truncation_and_changes(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x" * 1000)
    assert cache.is_verified(f) is None  # no sidecar yet: unfinished
    cache.write_checksum(f, agreement=0.99)
    record = cache.is_verified(f)
    assert record is not None and record["agreement"] == 0.99 and record["size"] == 1000
    f.write_bytes(b"x" * 500)
    assert cache.is_verified(f) is None  # truncated
    f.write_bytes(b"y" * 1000)
    assert cache.is_verified(f) is None  # same size, other content
    (tmp_path / "model.onnx.sha256").write_text("{not json")
    assert cache.is_verified(f) is None
    f.unlink()
    assert cache.is_verified(f) is None


def test_read_json(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    assert cache.read_json(p) is None
    p.write_text(json.dumps([1, 2]))
    assert cache.read_json(p) is None  # not an object
    cache.atomic_write_text(p, json.dumps({"a": 1}))
    assert cache.read_json(p) == {"a": 1}
