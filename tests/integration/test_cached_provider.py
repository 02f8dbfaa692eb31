"""CachedProvider with the real model and real processes.

* byte-identical vectors to the wrapped onnx provider, on a miss and on a hit;
* the onnx fp32 and int8 variants, and two revisions of a model directory, never read each other's entries;
* a process killed (SIGKILL) in the middle of writing leaves a cache that opens, checks and keeps working;
* two processes sharing one cache directory at once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.embedding_cache import DB_NAME, ENTRY_OVERHEAD, CachedProvider, text_key
from vecembed.providers.mock import MockProvider

pytest_plugins = ["backend_fixtures"]

pytestmark = pytest.mark.integration


def test_onnx_vectors_are_byte_identical_miss_and_hit(onnx_provider: Any, sts_sentences: list[str],
                                                      tmp_path: Path) -> None:
    texts = sts_sentences[:48]
    with CachedProvider(onnx_provider, tmp_path, close_provider=False) as cached:
        cold = cached.embed_documents(texts)
        assert cold.tobytes() == onnx_provider.embed_documents(texts).tobytes()
        warm = cached.embed_documents(texts)
        assert warm.tobytes() == cold.tobytes() and cached.hits == 48
        query = cached.embed_query(texts[0])
        assert query.tobytes() == onnx_provider.embed_query(texts[0]).tobytes()
        assert cached.embed_query(texts[0]).tobytes() == query.tobytes()


def test_fp32_and_int8_never_read_each_other(onnx_provider: Any, onnx_int8_provider: Any, sts_sentences: list[str],
                                             tmp_path: Path) -> None:
    assert onnx_provider.info.fingerprint != onnx_int8_provider.info.fingerprint
    texts = sts_sentences[:24]
    with CachedProvider(onnx_provider, tmp_path, close_provider=False) as fp32:
        fp32_vectors = fp32.embed_documents(texts)
    with CachedProvider(onnx_int8_provider, tmp_path, close_provider=False) as int8:
        int8_vectors = int8.embed_documents(texts)
        assert int8.hits == 0 and int8.misses == 24
        assert int8_vectors.tobytes() == onnx_int8_provider.embed_documents(texts).tobytes()
        assert not np.array_equal(int8_vectors, fp32_vectors)
        assert int8.embed_documents(texts).tobytes() == int8_vectors.tobytes() and int8.hits == 24
        assert sorted(int8.cache.fingerprints().items()) == sorted(
            {onnx_provider.info.fingerprint: 24, onnx_int8_provider.info.fingerprint: 24}.items())
    with CachedProvider(onnx_provider, tmp_path, close_provider=False) as fp32_again:
        assert fp32_again.embed_documents(texts).tobytes() == fp32_vectors.tobytes() and fp32_again.hits == 24


def _revision(src: Path, dest: Path, *, perturb: bool) -> Path:
    """A copy of the model directory; ``perturb``: the next revision, with other weights."""
    dest.mkdir()
    for item in src.iterdir():
        if item.is_dir():
            (dest / item.name).mkdir()
            for f in item.iterdir():
                (dest / item.name / f.name).write_bytes(f.read_bytes())
        elif item.name != "model.safetensors":
            (dest / item.name).write_bytes(item.read_bytes())
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(src / "model.safetensors"))
    if perturb:
        key = next(k for k in weights if k.endswith("word_embeddings.weight"))
        noise = np.random.default_rng(0).normal(0, 0.02, weights[key].shape).astype(weights[key].dtype)
        weights[key] = weights[key] + noise
    save_file(weights, str(dest / "model.safetensors"))
    return dest


def test_two_revisions_of_a_model_directory_never_read_each_other(minilm_path: Path, tmp_path: Path,
                                                                  sts_sentences: list[str]) -> None:
    pytest.importorskip("torch", reason="pip install 'vecembed[torch]'")
    first = _revision(minilm_path, tmp_path / "rev1", perturb=False)
    second = _revision(minilm_path, tmp_path / "rev2", perturb=True)
    texts = sts_sentences[:16]
    cache = tmp_path / "cache"
    with vecembed.load_provider("torch", model=str(first), device="cpu", cache=cache) as one:
        v1 = one.embed_documents(texts)
    with vecembed.load_provider("torch", model=str(second), device="cpu", cache=cache) as two:
        assert isinstance(two, CachedProvider)
        assert two.info.fingerprint != one.info.fingerprint
        v2 = two.embed_documents(texts)
        assert two.misses == 16 and two.hits == 0
        assert v2.tobytes() == two.provider.embed_documents(texts).tobytes()
        assert not np.allclose(v1, v2, atol=1e-3)
    with vecembed.load_provider("torch", model=str(first), device="cpu", cache=cache) as one_again:
        assert one_again.embed_documents(texts).tobytes() == v1.tobytes() and one_again.hits == 16


# -- processes ------------------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    from vecembed.embedding_cache import CachedProvider
    from vecembed.providers.mock import MockProvider

    import os, time

    path, tag, rounds, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    go = sys.argv[5] if len(sys.argv) > 5 else None
    with CachedProvider(MockProvider(dimension=64), path) as p:
        if go:  # start together with the other writer
            print("ready", flush=True)
            while not os.path.exists(go):
                time.sleep(0.001)
        for r in range(rounds):
            p.embed_documents([f"{tag} text {r * size + i} of the corpus" for i in range(size)])
            print(f"round {r} {p.hits} {p.misses}", flush=True)
""")


def _writer(path: Path, tag: str, rounds: int, size: int, go: Path | None = None) -> subprocess.Popen[str]:
    extra = [str(go)] if go is not None else []
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(rounds), str(size), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(path: Path, dimension: int) -> int:
    """The file passes SQLite's integrity check and its size counter matches its rows; returns the entries."""
    conn = sqlite3.connect(path / DB_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        entries = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        size = conn.execute("SELECT value FROM meta WHERE name = 'bytes'").fetchone()[0]
        widths = {w for (w,) in conn.execute("SELECT DISTINCT length(vector) FROM vectors")}
    finally:
        conn.close()
    assert size == entries * (dimension * 4 + ENTRY_OVERHEAD)
    assert widths <= {dimension * 4}
    return int(entries)


def test_a_writer_killed_mid_write_leaves_a_usable_cache(tmp_path: Path) -> None:
    for attempt in range(3):
        proc = _writer(tmp_path, f"kill{attempt}", rounds=10_000, size=500)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # one batch committed: now it is writing, round after round
        assert line.startswith("round 0"), proc.stderr.read() if proc.stderr else line
        time.sleep(0.05 + 0.1 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    entries = _check_consistent(tmp_path, 64)
    assert entries >= 3 * 500
    mock = MockProvider(dimension=64)
    with CachedProvider(MockProvider(dimension=64), tmp_path) as p:
        texts = [f"kill0 text {i} of the corpus" for i in range(500)]
        # every entry that survived is the vector of its text; the rest are embedded again
        assert p.embed_documents(texts).tobytes() == mock.embed_documents(texts).tobytes()
        assert p.hits == 500
        p.embed_documents(["written after the kills"])
    assert _check_consistent(tmp_path, 64) == entries + 1


def test_two_processes_share_one_cache_directory(tmp_path: Path) -> None:
    # The same texts from both at once: each embeds what the other has not stored yet; nothing fails or doubles.
    go = tmp_path / "go"
    procs = [_writer(tmp_path, "shared", rounds=6, size=300, go=go) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "embedding without it" not in err  # no lock timeouts, no failed writes
        assert out.count("round ") == 6
    assert _check_consistent(tmp_path, 64) == 6 * 300
    mock = MockProvider(dimension=64)
    texts = [f"shared text {i} of the corpus" for i in range(6 * 300)]
    with CachedProvider(MockProvider(dimension=64), tmp_path) as p:
        assert p.embed_documents(texts).tobytes() == mock.embed_documents(texts).tobytes()
        assert p.hits == len(texts)
    keys = {text_key(b"d", t) for t in texts}
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        stored = {k for (k,) in conn.execute("SELECT key FROM vectors")}
    finally:
        conn.close()
    assert stored == keys
    assert json.dumps(sorted(p.cache.fingerprints().values())) == "[1800]"


def _embed_in_child(provider: CachedProvider, texts: list[str], queue: Any) -> None:
    queue.put((provider.embed_documents(texts).tobytes(), provider.hits))


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    ctx = multiprocessing.get_context("fork")
    with CachedProvider(MockProvider(dimension=16), tmp_path) as parent:
        stored = parent.embed_documents(["made by the parent"])
        queue = ctx.Queue()
        child = ctx.Process(target=_embed_in_child, args=(parent, ["made by the parent", "made by the child"], queue))
        child.start()
        vectors, hits = queue.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0 and hits == 1
        assert vectors[: len(stored.tobytes())] == stored.tobytes()
        # the parent's connection still works, and sees the child's write
        assert parent.embed_documents(["made by the child"]).tobytes() == vectors[len(stored.tobytes()):]
        assert parent.hits == 1
    assert _check_consistent(tmp_path, 16) == 2
