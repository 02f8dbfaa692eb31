"""CachedProvider on the mock backend: hits, misses, one batch of misses in input order, eviction, roles, errors."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.embedding_cache import DB_NAME, CachedProvider, EmbeddingCache, text_key
from vecembed.providers.mock import MockProvider
from vecembed.types import Embeddings


class Recording(MockProvider):
    """The mock provider, remembering every batch it was asked to embed."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[tuple[str, list[str]]] = []

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(("documents", list(texts)))
        return super().embed_documents(texts)

    def embed_documents_counted(self, texts: Sequence[str]) -> Any:
        self.calls.append(("documents", list(texts)))
        return super().embed_documents_counted(texts)

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(("queries", list(texts)))
        return super().embed_queries(texts)


@pytest.fixture
def recording() -> Recording:
    return Recording(dimension=16, query_prompt="query: ")


@pytest.fixture
def cached(recording: Recording, tmp_path: Path) -> Iterator[CachedProvider]:
    with CachedProvider(recording, tmp_path / "cache") as provider:
        yield provider


def test_misses_are_embedded_once_in_one_batch_in_input_order(cached: CachedProvider, recording: Recording) -> None:
    first = cached.embed_documents(["alpha", "beta"])
    recording.calls.clear()
    texts = ["gamma", "alpha", "delta", "gamma", "beta", "epsilon"]
    out = cached.embed_documents(texts)
    # one call, each distinct miss once, in first-seen order
    assert recording.calls == [("documents", ["gamma", "delta", "epsilon"])]
    assert out.dtype == np.float32 and out.shape == (6, 16) and out.flags.c_contiguous
    assert out[1].tobytes() == first[0].tobytes() and out[4].tobytes() == first[1].tobytes()
    assert out[0].tobytes() == out[3].tobytes()
    assert out.tobytes() == recording.embed_documents(texts).tobytes()
    assert (cached.hits, cached.misses) == (2, 6)
    stats = cached.cache_stats()
    assert stats.entries == 5 and stats.hits == 2 and stats.bytes > 5 * 16 * 4
    assert stats.hit_rate == pytest.approx(2 / 8)


def test_all_hits_never_call_the_provider_and_are_byte_identical(cached: CachedProvider, recording: Recording) -> None:
    texts = [f"text number {i}" for i in range(40)] + [""]
    cold = cached.embed_documents(texts)
    recording.calls.clear()
    warm = cached.embed_documents(texts)
    assert recording.calls == []
    assert warm.tobytes() == cold.tobytes()
    counted = cached.embed_documents_counted(texts)
    assert counted.tokens == 0 and counted.truncated == 0
    assert cached.embed_documents([]).shape == (0, 16)


def test_queries_and_documents_are_kept_apart(cached: CachedProvider, recording: Recording) -> None:
    doc = cached.embed_documents(["same words"])[0]
    query = cached.embed_query("same words")
    assert recording.calls == [("documents", ["same words"]), ("queries", ["same words"])]
    assert not np.array_equal(doc, query)  # the query prompt makes them differ
    assert cached.embed_queries(["same words"])[0].tobytes() == query.tobytes()
    assert cached.hits == 1


def test_persists_across_instances_and_the_fingerprint_separates(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with CachedProvider(Recording(dimension=16), path) as a:
        va = a.embed_documents(["persisted"])
    other_seed = Recording(dimension=16, seed=1)
    with CachedProvider(Recording(dimension=16), path) as again, CachedProvider(other_seed, path) as b:
        assert again.embed_documents(["persisted"]).tobytes() == va.tobytes() and again.hits == 1
        vb = b.embed_documents(["persisted"])
        assert b.misses == 1 and other_seed.calls == [("documents", ["persisted"])]
        assert vb.tobytes() == other_seed.embed_documents(["persisted"]).tobytes()
        assert vb.tobytes() != va.tobytes()
        assert sorted(b.cache.fingerprints().values()) == [1, 1]


def test_evicts_least_recently_used_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vecembed.embedding_cache as ec

    clock = [1_000_000.0]
    monkeypatch.setattr(ec.time, "time", lambda: clock[0])
    per_entry = 16 * 4 + ec.ENTRY_OVERHEAD
    with CachedProvider(MockProvider(dimension=16), tmp_path / "c", max_bytes=10 * per_entry) as p:
        p.embed_documents([f"old {i}" for i in range(5)])
        clock[0] += 10 * ec.TOUCH_AFTER_S
        p.embed_documents([f"new {i}" for i in range(5)])
        clock[0] += 10 * ec.TOUCH_AFTER_S
        p.embed_documents(["old 0"])  # a hit: refreshed, so it outlives the other old ones
        clock[0] += 10 * ec.TOUCH_AFTER_S
        p.embed_documents(["newest"])
        entries, size = p.cache.size()
        assert size <= 10 * per_entry and entries == size // per_entry
        before = p.hits
        p.embed_documents(["old 0", "newest", "new 4"])
        assert p.hits - before == 3
        p.embed_documents(["old 1"])
        assert p.misses == 10 + 1 + 1  # "old 1" was evicted


def test_invalid_input_is_refused_before_anything(cached: CachedProvider, recording: Recording) -> None:
    with pytest.raises(vecembed.InvalidInputError, match=r"\[1\]"):
        cached.embed_documents(["ok", None])  # type: ignore[list-item]
    with pytest.raises(vecembed.InvalidInputError):
        cached.embed_query(["not", "one"])  # type: ignore[arg-type]
    assert recording.calls == [] and cached.cache_stats().entries == 0


def test_wrong_shape_from_the_provider_is_not_cached(tmp_path: Path) -> None:
    class Short(MockProvider):
        def embed_documents_counted(self, texts: Sequence[str]) -> Any:
            return vecembed.EmbedResult(np.zeros((len(texts), 3), dtype=np.float32))

    with CachedProvider(Short(dimension=8), tmp_path) as p:
        with pytest.raises(vecembed.DimensionMismatchError):
            p.embed_documents(["x"])
        assert p.cache_stats().entries == 0


def test_threads_share_one_cache(cached: CachedProvider, recording: Recording) -> None:
    texts = [f"shared {i}" for i in range(30)]
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        out = cached.embed_documents(texts)
        with lock:
            results.append(out.tobytes())

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 6
    assert cached.cache_stats().entries == 30
    assert cached.hits + cached.misses == 180


def test_async_methods_and_closing(tmp_path: Path) -> None:
    inner = Recording(dimension=16)
    p = CachedProvider(inner, tmp_path)

    async def main() -> tuple[Embeddings, Embeddings, Embeddings]:
        docs, queries = await asyncio.gather(p.aembed_documents(["a", "b"]), p.aembed_queries(["a"]))
        return docs, queries, await p.aembed_query("a")

    docs, queries, query = asyncio.run(main())
    assert docs.shape == (2, 16) and queries[0].tobytes() == query.tobytes()
    report = p.health_check()
    assert report.ok and set(report.checks) == {"provider", "embedding-cache"}
    p.close()
    p.close()
    assert inner.closed and not p.health_check().ok
    with pytest.raises(vecembed.ProviderUnavailableError):
        p.embed_documents(["a"])


def test_close_provider_false_leaves_it_open(tmp_path: Path) -> None:
    inner = MockProvider(dimension=8)
    with CachedProvider(inner, tmp_path, close_provider=False) as p:
        p.embed_documents(["x"])
    assert not inner.closed and "CachedProvider" in repr(p)


def test_load_provider_cache_shortcut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = vecembed.load_provider("mock", dimension=8, cache=tmp_path / "dir", cache_max_bytes=1 << 20)
    assert isinstance(p, vecembed.CachedProvider) and p.path == tmp_path / "dir"
    assert p.info.fingerprint == p.provider.info.fingerprint and p.cache.max_bytes == 1 << 20
    p.close()
    monkeypatch.setenv("VECEMBED_CACHE", str(tmp_path / "root"))
    with vecembed.load_provider("mock", dimension=8, cache=True) as q:
        assert q.path == tmp_path / "root" / "embeddings"
    assert not isinstance(vecembed.load_provider("mock", cache=None), CachedProvider)
    with pytest.raises(vecembed.InvalidInputError):
        vecembed.load_provider("mock", cache=tmp_path, cache_max_bytes=0)
    with pytest.raises(vecembed.InvalidInputError):
        CachedProvider(object(), tmp_path)  # type: ignore[arg-type]


def test_an_unreadable_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database file" * 200)
    with caplog.at_level(logging.WARNING), CachedProvider(MockProvider(dimension=8), tmp_path) as p:
        assert p.embed_documents(["x"]).shape == (1, 8)
        assert p.embed_documents(["x"]).shape == (1, 8) and p.hits == 1
    assert "unreadable" in caplog.text
    assert len(list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))) == 1


def test_a_failing_cache_falls_back_to_the_provider(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with CachedProvider(MockProvider(dimension=8), tmp_path) as p:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(p.cache, "get_many", broken)
        monkeypatch.setattr(p.cache, "put_many", broken)
        with caplog.at_level(logging.WARNING):
            out = p.embed_documents(["x", "y"])
        assert out.tobytes() == p.provider.embed_documents(["x", "y"]).tobytes()
        assert caplog.text.count("embedding without it") == 2


def test_cache_clear_and_a_dimension_clash(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    a, b = MockProvider(dimension=8), MockProvider(dimension=8, seed=3)
    key = text_key(b"d", "x")
    cache.put_many(a.info, [(key, np.ones(8, dtype="<f4").tobytes())])
    cache.put_many(b.info, [(key, np.zeros(8, dtype="<f4").tobytes())])
    assert np.frombuffer(cache.get_many(a.info, [key])[key], "<f4").tolist() == [1.0] * 8
    assert cache.clear(a.info.fingerprint) == 1 and cache.get_many(a.info, [key]) == {}
    assert cache.size()[0] == 1 and cache.clear() == 1 and cache.size() == (0, 0)
    import dataclasses

    clash = dataclasses.replace(a.info, dimension=4)
    with pytest.raises(vecembed.DimensionMismatchError):
        cache.get_many(clash, [key])
    cache.close()
    cache.close()
    assert cache.size() == (0, 0)  # reopens


def test_storing_a_stored_key_again_keeps_the_size_right(tmp_path: Path) -> None:
    # Two processes may store the same text at once: the second write must not count it twice.
    cache = EmbeddingCache(tmp_path)
    info = MockProvider(dimension=8).info
    key = text_key(b"d", "twice")
    cache.put_many(info, [(key, np.ones(8, dtype="<f4").tobytes())])
    once = cache.size()
    cache.put_many(info, [(key, np.full(8, 2.0, dtype="<f4").tobytes())])
    assert cache.size() == once and once[0] == 1
    assert np.frombuffer(cache.get_many(info, [key])[key], "<f4").tolist() == [2.0] * 8
    cache.close()
