"""Vectors checked at the boundary (issue 22): what a provider returns is refused before any store or cache
keeps it; the remote provider's protocol; clear errors for bad names and filters; the cache's size on disk;
the DelegatingProvider base that wrappers share."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.embedding_cache import DB_NAME, CachedProvider
from vecembed.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError, ProviderUnavailableError
from vecembed.providers.mock import MockProvider
from vecembed.types import Embeddings, EmbedResult
from vecembed.vectors import NORM_TOLERANCE, check_embeddings

DIM = 16

#: What a broken provider does to one row: the ways issue 22 saw bad vectors reach the stores.
BREAKAGES: dict[str, Callable[[Embeddings], Embeddings]] = {
    "nan": lambda v: np.where(np.arange(len(v)) == 3, np.float32("nan"), v),
    "inf": lambda v: np.where(np.arange(len(v)) == 0, np.float32("inf"), v),
    "zero": lambda v: np.zeros_like(v),
    "huge": lambda v: v * np.float32(1000),
}


class Poisoned(vecembed.DelegatingProvider):
    """The mock provider, except that the text "poison" gets a broken vector."""

    def __init__(self, breakage: str) -> None:
        super().__init__(MockProvider(dimension=DIM))
        self.breakage = BREAKAGES[breakage]
        self.calls = 0

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        self.calls += 1
        result = super().embed_documents_counted(texts)
        vectors = result.vectors.copy()
        for i, text in enumerate(texts):
            if text == "poison":
                vectors[i] = self.breakage(vectors[i])
        return EmbedResult(vectors, tokens=result.tokens, truncated=result.truncated)


# -- the one check --------------------------------------------------------------------------------


def test_the_check_names_the_first_bad_row_and_the_provider() -> None:
    good = MockProvider(dimension=4).embed_documents(["a", "b", "c"])
    kw: dict[str, Any] = {"expected_rows": 3, "dimension": 4, "where": "provider 'm' (x)", "provider": "m"}
    assert check_embeddings(good.astype(np.float64), normalized=True, **kw).dtype == np.float32
    for broken, row, words in ((np.float32("nan"), 1, "NaN or inf"), (np.float32("-inf"), 2, "NaN or inf")):
        bad = good.copy()
        bad[row, 0] = broken
        with pytest.raises(InvalidVectorsError, match=rf"provider 'm' \(x\) returned a vector with {words} for text "
                           rf"{row}; nothing was written") as info:
            check_embeddings(bad, **kw)
        assert (info.value.index, info.value.provider) == (row, "m")
    zero, huge = good.copy(), good.copy()
    zero[2] = 0
    huge[1] *= 1000
    with pytest.raises(InvalidVectorsError, match="an all-zero vector for text 2, but its vectors are unit norm"):
        check_embeddings(zero, normalized=True, **kw)
    with pytest.raises(InvalidVectorsError, match=r"a vector of norm 1000 for text 1"):
        check_embeddings(huge, normalized=True, **kw)
    # a provider that does not normalise may return any finite vector
    assert check_embeddings(huge, normalized=False, **kw)[1] == pytest.approx(good[1] * 1000)
    nearly = good * np.float32(1 + NORM_TOLERANCE / 2)  # half precision's rounding passes
    assert check_embeddings(nearly, normalized=True, **kw).shape == (3, 4)
    float64_beyond_float32 = good.astype(np.float64)
    float64_beyond_float32[0, 0] = 1e300
    with pytest.raises(InvalidVectorsError, match="NaN or inf for text 0"):
        check_embeddings(float64_beyond_float32, **kw)


def test_the_check_refuses_wrong_shapes_and_things_that_are_not_numbers() -> None:
    kw: dict[str, Any] = {"expected_rows": 2, "dimension": 3, "where": "provider 'm' (x)"}
    with pytest.raises(DimensionMismatchError, match=r"shape \(2, 4\) for 2 texts, expected \(2, 3\)") as info:
        check_embeddings(np.ones((2, 4)), **kw)
    assert (info.value.expected, info.value.got) == (3, 4)
    for shape in ((3, 3), (6,), (2, 3, 1)):
        with pytest.raises(DimensionMismatchError, match="expected"):
            check_embeddings(np.ones(shape), **kw)
    with pytest.raises(InvalidVectorsError, match="<U3 values where float32 vectors were expected"):
        check_embeddings([["1.0", "2.0", "abc"]] * 2, **kw)
    with pytest.raises(InvalidVectorsError, match="not an array of vectors"):
        check_embeddings([[1.0, 2.0, 3.0], [1.0]], **kw)
    with pytest.raises(InvalidVectorsError, match="object values"):
        check_embeddings(np.array([[None] * 3] * 2), **kw)
    assert check_embeddings([], expected_rows=0, dimension=3, where="p").shape == (0, 3)


# -- nothing written, in every store the unit tests have ----------------------------------------------


def _store_options(db: str, tmp_path: Path) -> dict[str, Any]:
    if db == "memory":
        return {}
    if db == "qdrant-edge":
        pytest.importorskip("qdrant_edge", reason="pip install 'vecembed[qdrant-edge]'")
        return {"path": str(tmp_path / "edge")}
    pytest.importorskip("qdrant_client" if db == "qdrant" else "chromadb", reason=f"pip install 'vecembed[{db}]'")
    return {}


STORES = ["memory", "qdrant", "chroma", "qdrant-edge"]


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("db", STORES)
def test_a_bad_vector_writes_nothing(db: str, breakage: str, tmp_path: Path) -> None:
    provider = Poisoned(breakage)
    name = f"bad-{breakage}-{os.getpid()}-{id(provider)}"
    docs = [("1", "first text"), ("2", "poison"), ("3", "third text here")]
    with vecembed.open_store(db, name, provider, **_store_options(db, tmp_path)) as store:
        with pytest.raises(InvalidVectorsError, match=r"document '2' \(text 0 of the embed call\)") as info:
            store.ingest(docs)
        assert info.value.provider == provider.info.name and "nothing of this batch was written" in str(info.value)
        assert store.count() == 0
        # the same documents without the poison go in: the refusal was about the vector, not the collection
        assert store.ingest([d for d in docs if d[1] != "poison"]).written == 2
        assert store.count() == 2


def test_a_bad_vector_in_a_later_chunk_keeps_the_earlier_ones_committed(tmp_path: Path) -> None:
    provider = Poisoned("nan")
    docs = [(str(i), f"text number {i}") for i in range(10)] + [("bad", "poison")]
    with vecembed.open_store("qdrant", "later", provider) as store:
        with pytest.raises(vecembed.IngestError, match="InvalidVectorsError") as info:
            store.ingest(iter(docs), batch_size=1)  # a stream: chunks of 8, each written before the next embeds
        assert info.value.committed == 8 == store.count()  # the first chunk; nothing of the poisoned one


def test_the_ray_writer_checks_the_rows_it_writes() -> None:
    from vecembed.distributed import NEW, UNCHANGED, write_records
    from vecembed.records import prepare_records
    from vecembed.retry import StoreCaller

    with vecembed.open_store("qdrant", "ray-rows", MockProvider(dimension=DIM)) as store:
        store.ingest(["placeholder"])  # the collection exists
        records, _ = prepare_records([("a", "x"), ("b", "y")], start=0, nested=True)
        vectors = MockProvider(dimension=DIM).embed_documents(["x", "y"])
        vectors[1] = 0  # a zero row that is written: refused
        with pytest.raises(InvalidVectorsError, match="all-zero vector for document 'b'"):
            write_records(store.backend, StoreCaller(store.backend), records, [NEW, NEW], vectors,
                          skip_unchanged=False, dimension=DIM, normalized=True)
        # a zero placeholder for a record that is not written is not a vector at all
        counts = write_records(store.backend, StoreCaller(store.backend), records, [NEW, UNCHANGED], vectors,
                               skip_unchanged=False, dimension=DIM, normalized=True)
        assert counts.new == 1 and store.count() == 2


# -- CachedProvider ---------------------------------------------------------------------------------


def test_the_cache_never_keeps_a_bad_vector(tmp_path: Path) -> None:
    provider = Poisoned("nan")
    with CachedProvider(provider, tmp_path / "c") as cached:
        with pytest.raises(InvalidVectorsError, match=r"text 2; nothing was cached"):
            cached.embed_documents(["a", "a", "poison", "b"])  # rows 0 and 1 are one miss: the bad one is text 2
        assert cached.cache_stats().entries == 0
        assert cached.embed_documents(["a", "b"]).shape == (2, DIM)
        assert cached.cache_stats().entries == 2


def test_a_cache_path_that_is_a_file_warns_and_embeds_without_a_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="vecembed.embedding_cache"):
        cached = CachedProvider(MockProvider(dimension=DIM), blocker)
    assert "cannot be opened" in caplog.text and str(blocker) in caplog.text
    with cached:
        assert cached.cache is None
        first = cached.embed_documents(["a", "b"])
        assert first.tobytes() == MockProvider(dimension=DIM).embed_documents(["a", "b"]).tobytes()
        assert cached.embed_documents(["a"]).tobytes() == first[:1].tobytes() and cached.misses == 3
        stats = cached.cache_stats()
        assert (stats.entries, stats.bytes, stats.disk_bytes) == (0, 0, 0)
        report = cached.health_check()
        assert not report.ok and "every call is embedded" in report.detail
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("batch", [30, 300])
def test_the_cache_files_stay_near_max_bytes(tmp_path: Path, batch: int) -> None:
    max_bytes = 1_000_000
    folder = tmp_path / "c"
    peak = {"": 0, "-wal": 0, "total": 0}
    with CachedProvider(MockProvider(dimension=384), folder, max_bytes=max_bytes) as cached:
        for round_ in range(1800 // batch):  # about 3x what fits: eviction runs again and again
            cached.embed_documents([f"text {round_} {i}" for i in range(batch)])
            files = {suffix: os.path.getsize(f"{folder / DB_NAME}{suffix}") for suffix in ("", "-wal", "-shm")
                     if os.path.exists(f"{folder / DB_NAME}{suffix}")}
            for key, size in (*files.items(), ("total", sum(files.values()))):
                peak[key] = max(peak.get(key, 0), size)
        stats = cached.cache_stats()
        assert stats.bytes <= max_bytes and stats.disk_bytes == sum(files.values())
    # Before: the database kept every eviction's free pages (1.48 MB with writes of 300) beside a WAL of 8-9 MB.
    write = batch * 384 * 4
    assert peak[""] <= 1.1 * max_bytes, peak
    # the WAL holds what the last write changed: its rows and, when it evicted, the pages of a tenth of max_bytes
    assert peak["-wal"] <= 1.5 * write + 0.25 * max_bytes, peak
    assert peak["total"] <= 1.6 * max_bytes, peak


# -- DelegatingProvider ---------------------------------------------------------------------------


def test_a_delegating_provider_forwards_the_protocol() -> None:
    inner = MockProvider(dimension=DIM, query_prompt="q: ")
    wrapper = vecembed.DelegatingProvider(inner, close_provider=False)
    assert isinstance(wrapper, vecembed.EmbeddingProvider) and wrapper.provider is inner
    assert wrapper.info == inner.info
    texts = ["one text", "two texts"]
    assert wrapper.embed_documents(texts).tobytes() == inner.embed_documents(texts).tobytes()
    counted = wrapper.embed_documents_counted(texts)
    assert counted.tokens == inner.embed_documents_counted(texts).tokens and counted.tokens
    assert wrapper.embed_query("hi").tobytes() == inner.embed_query("hi").tobytes()
    assert wrapper.health_check().ok
    wrapper.close()
    assert wrapper.closed and not wrapper.health_check().ok and not inner.closed
    with vecembed.DelegatingProvider(inner):
        pass
    assert inner.closed
    with pytest.raises(InvalidInputError, match="wraps an EmbeddingProvider"):
        vecembed.DelegatingProvider(object())  # type: ignore[arg-type]


def test_an_override_of_either_document_call_is_seen_by_both() -> None:
    class Plain(vecembed.DelegatingProvider):
        def __init__(self) -> None:
            super().__init__(MockProvider(dimension=DIM))
            self.seen: list[str] = []

        def embed_documents(self, texts: Sequence[str]) -> Embeddings:
            self.seen += texts
            return super().embed_documents(texts)

    class Counted(vecembed.DelegatingProvider):
        def __init__(self) -> None:
            super().__init__(MockProvider(dimension=DIM))
            self.seen: list[str] = []

        def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
            self.seen += texts
            return super().embed_documents_counted(texts)

    for cls in (Plain, Counted):
        provider = cls()
        provider.embed_documents(["a"])
        provider.embed_documents_counted(["b"])
        with vecembed.open_store("qdrant", "seen", provider) as store:
            store.ingest(["c"])  # the engine calls embed_documents_counted
        assert provider.seen == ["a", "b", "c"], cls.__name__


# -- the remote provider's protocol -------------------------------------------------------------------


def fake_server(mutate: Callable[[list[dict[str, Any]]], Any], *, raw: bytes | None = None) -> Any:
    """An httpx transport answering like `vecembed serve`, its embeddings response changed by ``mutate``."""
    httpx = pytest.importorskip("httpx")
    local = MockProvider(dimension=DIM)

    def handler(request: Any) -> Any:
        if request.url.path == "/info":
            return httpx.Response(200, json={"model": local.info.to_dict(), "served_names": [local.info.name],
                                             "limits": {"max_inputs": 64}})
        if raw is not None:
            return httpx.Response(200, content=raw, headers={"content-type": "application/json"})
        texts = json.loads(request.content)["input"]
        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()}
                for i, v in enumerate(local.embed_documents(texts))]
        body = {"object": "list", "data": data, "model": local.info.name, "usage": {"prompt_tokens": 1}}
        out = mutate(data)
        return httpx.Response(200, json=body if out is None else out)

    return httpx.MockTransport(handler)


def _b64(values: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def _set(row: int, key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(data: list[dict[str, Any]]) -> None:
        data[row][key] = value
    return mutate


REMOTE_FAULTS: dict[str, tuple[Callable[[list[dict[str, Any]]], Any], type[Exception], str]] = {
    "nan": (_set(1, "embedding", _b64([float("nan")] + [0.25] * (DIM - 1))), InvalidVectorsError,
            "NaN or inf for text 1"),
    "inf": (_set(2, "embedding", _b64([float("inf")] * DIM)), InvalidVectorsError, "NaN or inf for text 2"),
    "zero": (_set(0, "embedding", _b64([0.0] * DIM)), InvalidVectorsError, "all-zero vector for text 0"),
    "huge": (_set(1, "embedding", _b64([250.0] * DIM)), InvalidVectorsError, "norm 1000 for text 1"),
    "same-index": (_set(2, "index", 0), ProviderUnavailableError, "index 0 twice"),
    "index-out-of-range": (_set(2, "index", 7), ProviderUnavailableError, "index 7; a response to 3 inputs"),
    "index-not-an-int": (_set(2, "index", "2"), ProviderUnavailableError, "index '2'"),
    "bad-base64": (_set(0, "embedding", "abc"), ProviderUnavailableError, "text 0.*is not base64"),
    "strings": (_set(1, "embedding", ["0.1", "x"] * (DIM // 2)), ProviderUnavailableError,
                "text 1.*is not a list of numbers"),
    "short": (_set(1, "embedding", _b64([1.0])), DimensionMismatchError, "1-d vector for text 1"),
    "no-data": (lambda data: {"object": "list"}, ProviderUnavailableError, r"no 'data' list \(NoneType\)"),
}


@pytest.mark.parametrize("fault", sorted(REMOTE_FAULTS))
def test_the_remote_provider_refuses_a_broken_response_by_name(fault: str) -> None:
    mutate, error, words = REMOTE_FAULTS[fault]
    with vecembed.load_provider("remote", url="http://s", transport=fake_server(mutate), retries=0) as remote, \
            pytest.raises(error, match=words):
        remote.embed_documents(["a", "b", "c"])


def test_the_remote_provider_says_when_the_body_is_not_json() -> None:
    transport = fake_server(lambda data: None, raw=b"<html>502 Bad Gateway</html>")
    with vecembed.load_provider("remote", url="http://s", transport=transport, retries=0) as remote, \
            pytest.raises(ProviderUnavailableError, match=r"not JSON: '<html>502 Bad Gateway</html>'"):
        remote.embed_documents(["a"])


def test_duplicate_indexes_from_a_server_write_nothing() -> None:
    def same_index(data: list[dict[str, Any]]) -> None:
        for item in data:
            item["index"] = 0

    with vecembed.load_provider("remote", url="http://s", transport=fake_server(same_index), retries=0) as remote, \
            vecembed.open_store("qdrant", "dup", remote) as store:
        with pytest.raises(ProviderUnavailableError, match="index 0 twice"):
            store.ingest(["a", "b", "c"])
        assert store.count() == 0


def test_a_remote_nan_writes_nothing() -> None:
    mutate = REMOTE_FAULTS["nan"][0]
    with vecembed.load_provider("remote", url="http://s", transport=fake_server(mutate), retries=0) as remote, \
            vecembed.open_store("qdrant", "remote-nan", remote) as store:
        with pytest.raises(InvalidVectorsError):
            store.ingest(["a", "b", "c"])
        assert store.count() == 0


# -- names and filters ----------------------------------------------------------------------------


@pytest.mark.parametrize("db", ["qdrant", "chroma"])
@pytest.mark.parametrize("name", ["a/b", "../x", "/abs"])
def test_a_bad_collection_name_is_refused_up_front_with_the_rule(db: str, name: str, tmp_path: Path) -> None:
    pytest.importorskip("qdrant_client" if db == "qdrant" else "chromadb")
    provider = Poisoned("nan")  # never asked: the name is refused before anything is embedded
    with pytest.raises(InvalidInputError, match=r"is not a (Qdrant|Chroma) collection name") as info:
        vecembed.open_store(db, name, provider, path=str(tmp_path / "data"))
    assert "re-run" not in str(info.value) and provider.calls == 0
    assert "1 to 255 characters" in str(info.value) if db == "qdrant" else "3 to 512 characters" in str(info.value)


def test_a_nan_filter_is_refused_by_name() -> None:
    with vecembed.open_store("qdrant", "filters", MockProvider(dimension=DIM)) as store:
        store.ingest([{"id": "1", "text": "x", "metadata": {"n": 1.0}}])
        for value in (float("nan"), float("inf")):
            with pytest.raises(InvalidInputError, match=r"where\['n'\] = (nan|inf): no stored value equals NaN"):
                store.search("x", where={"n": value})


@pytest.fixture
def pg_unopened() -> Iterator[Any]:
    pytest.importorskip("psycopg", reason="pip install 'vecembed[pgvector]'")
    from psycopg_pool import ConnectionPool

    yield ConnectionPool("", open=False)


def test_pgvector_table_names_are_injective(pg_unopened: Any) -> None:
    from vecembed_pgvector import REGISTRY_TABLE, table_name

    long = "a" * 200
    crafted = table_name(long).removeprefix("vecembed_")  # the name whose plain table is the long name's table
    assert len(crafted.encode()) == 54
    assert table_name(crafted) != table_name(long)
    # the shape of issue 22's collision under the old 12-hex digest: kept as it is now, and no shortened name has it
    old_style = "a" * 41 + "_c2a908d98f5d"
    assert table_name(old_style) == "vecembed_" + old_style != table_name(long)
    names = [long, crafted, old_style, "collections", "docs", "é" * 40 + "one", "é" * 40 + "two"]
    tables = [table_name(n) for n in names]
    assert len(set(tables)) == len(names) and REGISTRY_TABLE not in tables
    assert all(len(t.encode()) <= 63 for t in tables)


def test_pgvector_refuses_a_nul_in_a_name_up_front(pg_unopened: Any) -> None:
    from vecembed_pgvector import open_pgvector_store

    with pytest.raises(InvalidInputError, match=r"cannot contain NUL"):
        open_pgvector_store("a\x00b", client=pg_unopened)
