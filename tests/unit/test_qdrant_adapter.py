"""QdrantIngestor with the mock provider on Qdrant's embedded local mode (in memory and on disk): no model, no server.

Covers input validation (nothing written), deterministic ids and idempotent
re-runs, the collection guards, retries, a real fault mid-ingest (the on-disk
client closed by another thread) followed by a re-run, search and filters,
delete/count and the health check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from vecembed_qdrant import FINGERPRINT_KEY, MODEL_KEY, IngestError, QdrantIngestor, point_id, to_filter

import vecembed
from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    ProviderUnavailableError,
    VecembedError,
)
from vecembed.types import Embeddings, HealthReport, ModelInfo

N = 120


def corpus(n: int = N) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Distinct texts (each shares few words with the others), ids and metadata."""
    animals = ["cat", "dog", "owl", "fox", "eel", "yak"]
    texts = [f"record {i} zeta{i} {animals[i % 6]} sighting number {i * 7919 % 1000}" for i in range(n)]
    ids = [f"doc-{i}" for i in range(n)]
    meta = [{"animal": animals[i % 6], "year": 2000 + i % 25, "tags": ["even" if i % 2 == 0 else "odd"]}
            for i in range(n)]
    return texts, ids, meta


@pytest.fixture
def provider() -> Iterator[Any]:
    with vecembed.load_provider("mock", dimension=64) as p:
        yield p


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    c = QdrantClient(":memory:")
    yield c
    c.close()


@pytest.fixture
def ingestor(client: QdrantClient, provider: Any) -> QdrantIngestor:
    return QdrantIngestor(client, "docs", provider)


# -- ids ------------------------------------------------------------------------------------------


def test_point_ids_are_stable_across_releases() -> None:
    # Pinned on purpose: if these change, every collection written before would duplicate on re-ingest.
    assert point_id("doc-1") == "cb50762f-c499-510c-abe8-0cd3f79120b6"
    assert point_id(7) == "438683b0-3232-5b1b-bd65-23f534741a2b"
    assert point_id("doc-1") != point_id("doc-2")
    assert point_id(1) != point_id("1"), "an int id and its string must not collide"
    u = "2F1D3C1E-8A9B-4C6D-9E0F-A1B2C3D4E5F6"
    assert point_id(u) == u.lower(), "a canonical UUID string is used as it is"
    assert point_id("2f1d3c1e8a9b4c6d9e0fa1b2c3d4e5f6") != "2f1d3c1e-8a9b-4c6d-9e0f-a1b2c3d4e5f6"


# -- creating and ingesting -----------------------------------------------------------------------


def test_ingest_creates_collection_records_model_and_searches(ingestor: QdrantIngestor, client: QdrantClient,
                                                              provider: Any) -> None:
    texts, ids, meta = corpus()
    report = ingestor.ingest(texts, ids=ids, metadata=meta, batch_size=32, show_progress=False)
    assert report.points == N and report.documents == N and report.skipped == 0
    assert report.batches == 4  # ceil(120 / 32)
    assert report.truncated == 0 and report.texts_per_second > 0
    assert ingestor.count() == N

    config = client.get_collection("docs").config
    assert isinstance(config.params.vectors, models.VectorParams)
    assert config.params.vectors.size == 64
    assert config.params.vectors.distance == models.Distance.COSINE
    assert config.metadata is not None
    assert config.metadata[FINGERPRINT_KEY] == provider.info.fingerprint
    assert config.metadata[MODEL_KEY] == provider.info.name

    hits = ingestor.search(texts[17], limit=3)
    assert hits[0].id == "doc-17" and hits[0].text == texts[17]
    assert hits[0].metadata == meta[17]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].point_id == point_id("doc-17")
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_truncation_is_counted(client: QdrantClient) -> None:
    with vecembed.load_provider("mock", dimension=32, max_tokens=5) as p:
        ing = QdrantIngestor(client, "short", p)
        report = ing.ingest(["one two", "a b c d e f g h", "x y z w v u t"], show_progress=False)
    assert report.truncated == 2


def test_reingest_is_idempotent_and_one_changed_text_updates_one_point(ingestor: QdrantIngestor) -> None:
    texts, ids, meta = corpus()
    ingestor.ingest(texts, ids=ids, metadata=meta, show_progress=False)
    again = ingestor.ingest(texts, ids=ids, metadata=meta, show_progress=False)
    assert ingestor.count() == N
    assert again.points == 0 and again.skipped == N and again.batches == 0

    forced = ingestor.ingest(texts, ids=ids, metadata=meta, show_progress=False, skip_unchanged=False)
    assert forced.points == N and ingestor.count() == N

    changed = list(texts)
    changed[5] = "a completely rewritten fifth record about quokkas"
    report = ingestor.ingest(changed, ids=ids, metadata=meta, show_progress=False)
    assert report.points == 1 and report.skipped == N - 1
    assert ingestor.count() == N
    top = ingestor.search("rewritten record about quokkas", limit=1)[0]
    assert top.id == "doc-5" and top.text == changed[5]

    meta2 = [dict(m) for m in meta]
    meta2[9]["year"] = 1999
    report = ingestor.ingest(changed, ids=ids, metadata=meta2, show_progress=False)
    assert report.points == 1, "a metadata change rewrites that point only"
    assert ingestor.search(changed[9], limit=1)[0].metadata["year"] == 1999


def test_without_ids_texts_address_points_and_repeats_collapse(ingestor: QdrantIngestor) -> None:
    texts = ["alpha beta", "gamma delta", "alpha beta", "epsilon"]
    report = ingestor.ingest(texts, show_progress=False)
    assert report.points == 3 and report.duplicates == 1 and report.documents == 4
    assert ingestor.count() == 3
    hit = ingestor.search("gamma delta", limit=1)[0]
    assert hit.text == "gamma delta"
    assert hit.id == hit.point_id, "without ids the text's UUID is the document id"
    ingestor.ingest(texts, show_progress=False)
    assert ingestor.count() == 3
    assert ingestor.delete([hit.id]) == 1
    assert ingestor.count() == 2
    assert all(h.text != "gamma delta" for h in ingestor.search("gamma delta", limit=5))


def test_repeated_text_with_different_metadata_is_refused(ingestor: QdrantIngestor) -> None:
    with pytest.raises(InvalidInputError, match=r"documents\[2\] repeats documents\[0\]") as info:
        ingestor.ingest(["same", "other", "same"], metadata=[{"a": 1}, None, {"a": 2}], show_progress=False)
    assert info.value.index == 2
    assert ingestor.count() == 0


# -- bad input: one clear error, nothing written --------------------------------------------------


def put(items: list[Any], index: int, value: Any) -> list[Any]:
    """A copy of ``items`` with ``items[index]`` replaced by ``value``."""
    out = list(items)
    out[index] = value
    return out


@pytest.mark.parametrize(
    ("change", "match", "index"),
    [
        (lambda t, i, m: (put(t, 3, None), i, m), r"documents\[3\] must be str, got None", 3),
        (lambda t, i, m: (put(t, 7, b"raw"), i, m), r"documents\[7\].*bytes", 7),
        (lambda t, i, m: (t, put(i, 10, "doc-2"), m), r"ids\[10\] = 'doc-2' repeats ids\[2\]", 10),
        (lambda t, i, m: (t, i[:-1], m), r"ids has 119 items but documents has 120", None),
        (lambda t, i, m: (t, put(i, 4, None), m), r"ids\[4\] must be str or int, got None", 4),
        (lambda t, i, m: (t, put(i, 4, True), m), r"ids\[4\] must be str or int, got bool", 4),
        (lambda t, i, m: (t, put(i, 4, ""), m), r"ids\[4\] is an empty string", 4),
        (lambda t, i, m: (t, i, m[:-2]), r"metadata has 118 items", None),
        (lambda t, i, m: (t, i, put(m, 6, "not a dict")), r"metadata\[6\] must be a dict", 6),
        (lambda t, i, m: (t, i, put(m, 8, {"x": float("nan")})), r"metadata\[8\] is not JSON", 8),
        (lambda t, i, m: (t, i, put(m, 8, {"x": {1, 2}})), r"metadata\[8\] is not JSON", 8),
        (lambda t, i, m: (t, i, put(m, 9, {3: "x"})), r"metadata\[9\] has a key of type int", 9),
        (lambda t, i, m: (t, i, put(m, 11, {"document": "x"})), r"metadata\[11\] uses the key 'document'", 11),
        (lambda t, i, m: (t, i, put(m, 11, {"id": "x"})), r"metadata\[11\] uses the key 'id'", 11),
        (lambda t, i, m: ("one string", None, None), r"documents must be a sequence of str", None),
        (lambda t, i, m: (t, i, {"a": 1}), r"metadata must be a list", None),
    ],
)
def test_bad_input_names_the_index_and_writes_nothing(
    ingestor: QdrantIngestor, change: Any, match: str, index: int | None
) -> None:
    texts, ids, meta = corpus()
    seed = ingestor.ingest(texts[:10], ids=ids[:10], metadata=meta[:10], show_progress=False)
    assert seed.points == 10
    new_texts = [t + " v2" for t in texts]  # every point would change if anything were written
    bad_texts, bad_ids, bad_meta = change(new_texts, ids, meta)
    with pytest.raises(InvalidInputError, match=match) as info:
        ingestor.ingest(bad_texts, ids=bad_ids, metadata=bad_meta, show_progress=False)
    assert info.value.index == index
    assert isinstance(info.value, ValueError) and isinstance(info.value, VecembedError)
    assert ingestor.count() == 10
    assert ingestor.search(texts[3], limit=1)[0].text == texts[3], "stored points are untouched"


def test_bad_input_on_a_new_collection_does_not_create_it(ingestor: QdrantIngestor, client: QdrantClient) -> None:
    with pytest.raises(InvalidInputError):
        ingestor.ingest(["fine", None], show_progress=False)  # type: ignore[list-item]
    assert not client.collection_exists("docs")
    with pytest.raises(InvalidInputError, match="batch_size"):
        ingestor.ingest(["fine"], batch_size=0)
    assert not client.collection_exists("docs")


# -- guards on existing collections ---------------------------------------------------------------


def test_other_dimension_is_refused_before_writing(client: QdrantClient, ingestor: QdrantIngestor) -> None:
    ingestor.ingest(["a b", "c d"], show_progress=False)
    with vecembed.load_provider("mock", dimension=32) as small:
        other = QdrantIngestor(client, "docs", small)
        with pytest.raises(DimensionMismatchError, match=r"size 64.*size 32") as info:
            other.ingest(["e f"], show_progress=False)
        assert (info.value.expected, info.value.got) == (64, 32)
        with pytest.raises(DimensionMismatchError):
            other.search("a b")
        report = other.health_check()
    assert not report.ok and report.checks == {"qdrant": True, "collection": False, "provider": True}
    assert ingestor.count() == 2


def test_other_model_same_dimension_is_refused(client: QdrantClient, ingestor: QdrantIngestor, provider: Any) -> None:
    ingestor.ingest(["a b", "c d"], show_progress=False)
    with vecembed.load_provider("mock", dimension=64, seed=1) as other_model:
        other = QdrantIngestor(client, "docs", other_model)
        with pytest.raises(ModelMismatchError) as info:
            other.ingest(["e f"], show_progress=False)
        message = str(info.value)
        assert provider.info.fingerprint in message and other_model.info.fingerprint in message
        assert "another collection" in message
        assert info.value.expected == provider.info.fingerprint and info.value.got == other_model.info.fingerprint
        with pytest.raises(ModelMismatchError):
            other.search("a b")
    assert ingestor.count() == 2


def test_distance_guard(client: QdrantClient, provider: Any) -> None:
    client.create_collection("euclid", vectors_config=models.VectorParams(size=64, distance=models.Distance.EUCLID))
    with pytest.raises(ModelMismatchError, match=r"distance Euclid.*Cosine or Dot.*distance=models.Distance.EUCLID"):
        QdrantIngestor(client, "euclid", provider).ensure_collection()
    # Asked for explicitly, it is accepted (and the empty, unrecorded collection is adopted).
    QdrantIngestor(client, "euclid", provider, distance="euclid").ensure_collection()
    assert client.get_collection("euclid").config.metadata[FINGERPRINT_KEY] == provider.info.fingerprint

    # Dot equals cosine for a normalised model: accepted when no distance was asked for, refused when cosine was.
    client.create_collection("dot", vectors_config=models.VectorParams(size=64, distance=models.Distance.DOT))
    QdrantIngestor(client, "dot", provider).ensure_collection()
    with pytest.raises(ModelMismatchError, match="distance Dot"):
        QdrantIngestor(client, "dot", provider, distance=models.Distance.COSINE).ensure_collection()
    with pytest.raises(InvalidInputError, match="distance must be"):
        QdrantIngestor(client, "dot", provider, distance="hamming-ish")


def test_unrecorded_collection_adopted_only_when_empty_or_asked(client: QdrantClient, provider: Any) -> None:
    client.create_collection("foreign", vectors_config=models.VectorParams(size=64, distance=models.Distance.COSINE))
    client.upsert("foreign", points=[models.PointStruct(id=1, vector=[1.0] + [0.0] * 63, payload={"t": "x"})])
    refused = QdrantIngestor(client, "foreign", provider)
    with pytest.raises(ModelMismatchError, match=r"holds 1 points but records no vecembed fingerprint.*adopt=True"):
        refused.ingest(["a"], show_progress=False)
    assert client.count("foreign").count == 1
    assert not refused.health_check().ok

    adopted = QdrantIngestor(client, "foreign", provider, adopt=True)
    adopted.ingest(["a"], show_progress=False)
    assert client.count("foreign").count == 2
    assert client.get_collection("foreign").config.metadata[FINGERPRINT_KEY] == provider.info.fingerprint
    # A point written by other code comes back with its Qdrant id standing in for the caller id.
    hit = next(h for h in adopted.search("a", limit=5) if h.point_id == "1")
    assert hit.id == "1" and hit.metadata == {"t": "x"}


def test_named_vectors(client: QdrantClient, provider: Any) -> None:
    named = QdrantIngestor(client, "named", provider, vector_name="text")
    named.ingest(["red apple", "green pear"], ids=[1, 2], show_progress=False)
    vectors = client.get_collection("named").config.params.vectors
    assert isinstance(vectors, dict) and vectors["text"].size == 64
    assert named.search("red apple", limit=1)[0].id == 1
    assert [hits[0].id for hits in named.search_many(["green pear", "red apple"], limit=1)] == [2, 1]
    with pytest.raises(InvalidInputError, match=r"named vectors \['text'\]; pass vector_name="):
        QdrantIngestor(client, "named", provider).ensure_collection()
    with pytest.raises(InvalidInputError, match="no vector named 'image'"):
        QdrantIngestor(client, "named", provider, vector_name="image").ensure_collection()


def test_search_on_missing_collection_is_a_clear_error(ingestor: QdrantIngestor) -> None:
    with pytest.raises(InvalidInputError, match="does not exist; ingest"):
        ingestor.search("anything")
    assert ingestor.count() == 0


class WrappedProvider:
    """A provider that delegates everything to ``inner``; the test doubles below override one method each."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    @property
    def info(self) -> ModelInfo:
        info: ModelInfo = self._inner.info
        return info

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        out: Embeddings = self._inner.embed_documents(texts)
        return out

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        out: Embeddings = self._inner.embed_queries(texts)
        return out

    def embed_query(self, text: str) -> Embeddings:
        return self.embed_queries([text])[0]

    def health_check(self) -> HealthReport:
        report: HealthReport = self._inner.health_check()
        return report

    def close(self) -> None:
        pass

    def __enter__(self) -> WrappedProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class WrongDimensionProvider(WrappedProvider):
    """Its info claims 64 but its query vectors have 63 values (a buggy user provider)."""

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        out: Embeddings = self._inner.embed_queries(texts)[:, :63]
        return out


def test_query_vector_dimension_is_checked(client: QdrantClient, provider: Any) -> None:
    # Local mode itself would fail with a bare numpy shape error here (see DESIGN.md).
    QdrantIngestor(client, "docs", provider).ingest(["a b", "c d"], show_progress=False)
    liar = QdrantIngestor(client, "docs", WrongDimensionProvider(provider))
    with pytest.raises(DimensionMismatchError, match=r"shape \(1, 63\).*needs \(1, 64\)"):
        liar.search("a b")
    with pytest.raises(DimensionMismatchError):
        liar.search_many(["a b", "c d"])


# -- search, filters, delete ----------------------------------------------------------------------


def test_search_filters_thresholds_and_batches(ingestor: QdrantIngestor) -> None:
    texts, ids, meta = corpus()
    ingestor.ingest(texts, ids=ids, metadata=meta, show_progress=False)
    query = "record sighting owl"
    owls = ingestor.search(query, limit=50, query_filter={"animal": "owl"})
    assert len(owls) == N // 6 and all(h.metadata["animal"] == "owl" for h in owls)
    two = ingestor.search(query, limit=100, query_filter={"animal": ["owl", "fox", "cat"], "tags": "even"})
    assert {h.metadata["animal"] for h in two} == {"cat", "owl"}, "fox sightings all have odd numbers"
    assert len(two) == sum(1 for m in meta if m["animal"] in ("owl", "fox", "cat") and m["tags"] == ["even"])
    ranged = ingestor.search(query, limit=200, query_filter={"year": {"gte": 2020, "lt": 2023}})
    assert len(ranged) == sum(1 for m in meta if 2020 <= m["year"] < 2023)
    native = models.Filter(must=[models.FieldCondition(key="animal", match=models.MatchValue(value="owl"))])
    assert {h.id for h in ingestor.search(query, limit=50, query_filter=native)} == {h.id for h in owls}

    everything = ingestor.search(query, limit=N)
    # Midway between two neighbouring distinct scores, so float32-vs-float64 rounding cannot matter.
    distinct = sorted({round(h.score, 5) for h in everything}, reverse=True)
    cut = (distinct[5] + distinct[6]) / 2
    above = ingestor.search(query, limit=N, score_threshold=cut)
    assert 0 < len(above) == sum(1 for h in everything if h.score >= cut) < N

    queries = [texts[2], texts[42], texts[56]]  # an owl, a cat, an owl: each passes the filter below
    batched = ingestor.search_many(queries, limit=4, query_filter={"animal": ["owl", "cat"]})
    single = [ingestor.search(q, limit=4, query_filter={"animal": ["owl", "cat"]}) for q in queries]
    # Ids of tied scores may come in either order: compare the scores, and the (untied) best hit.
    assert [[round(h.score, 5) for h in hs] for hs in batched] == [[round(h.score, 5) for h in hs] for hs in single]
    assert [hs[0].id for hs in batched] == [hs[0].id for hs in single] == ["doc-2", "doc-42", "doc-56"]
    assert ingestor.search_many([]) == []


@pytest.mark.parametrize(
    ("flt", "match"),
    [({"year": 1.5}, "is not a value"), ({"a": [1, "x"]}, "is not a value"), ({"a": []}, "is not a value"),
     ("animal=owl", "must be a qdrant_client.models.Filter or a dict")],
)
def test_bad_filters_and_queries(ingestor: QdrantIngestor, flt: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        to_filter(flt)
    ingestor.ingest(["x"], show_progress=False)
    with pytest.raises(InvalidInputError):
        ingestor.search("x", query_filter=flt)


def test_bad_search_arguments(ingestor: QdrantIngestor) -> None:
    ingestor.ingest(["x"], show_progress=False)
    with pytest.raises(InvalidInputError, match="query must be one str"):
        ingestor.search(["x"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="limit must be a positive int"):
        ingestor.search("x", limit=0)
    with pytest.raises(InvalidInputError, match=r"queries\[1\] must be str"):
        ingestor.search_many(["x", None])  # type: ignore[list-item]


def test_delete_by_caller_ids(ingestor: QdrantIngestor) -> None:
    texts, ids, meta = corpus(20)
    ingestor.ingest(texts, ids=ids, metadata=meta, show_progress=False)
    assert ingestor.delete(["doc-3", "doc-4", "never-stored"]) == 3
    assert ingestor.count() == 18
    assert all(h.id not in ("doc-3", "doc-4") for h in ingestor.search(texts[3], limit=20))
    with pytest.raises(InvalidInputError, match=r"ids\[1\] must be str or int"):
        ingestor.delete(["doc-5", 2.5])  # type: ignore[list-item]
    assert ingestor.count() == 18
    assert ingestor.delete([]) == 0


# -- faults, retries, re-runs ---------------------------------------------------------------------


class FlakyClient:
    """A real client whose upserts fail with a transport error on chosen calls (a dropped connection)."""

    def __init__(self, inner: QdrantClient, fail_calls: set[int], error: Exception | None = None) -> None:
        self._inner = inner
        self._fail = fail_calls
        self._error = error
        self.upserts = 0

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self.upserts += 1
        if self.upserts in self._fail:
            raise self._error or ResponseHandlingException(ConnectionResetError("connection reset by peer"))
        return self._inner.upsert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_transient_errors_are_retried(client: QdrantClient, provider: Any) -> None:
    flaky = FlakyClient(client, fail_calls={2, 3, 6})
    ing = QdrantIngestor(flaky, "docs", provider, retry_backoff=0.001)  # type: ignore[arg-type]
    texts, ids, meta = corpus(100)
    report = ing.ingest(texts, ids=ids, metadata=meta, batch_size=25, show_progress=False)
    assert report.retries == 3 and report.batches == 4 and report.points == 100
    assert flaky.upserts == 7
    assert client.count("docs").count == 100


def test_retries_give_up_and_report_what_is_committed(client: QdrantClient, provider: Any) -> None:
    flaky = FlakyClient(client, fail_calls=set(range(3, 100)))
    ing = QdrantIngestor(flaky, "docs", provider, max_retries=2, retry_backoff=0.001)  # type: ignore[arg-type]
    texts, ids, meta = corpus(100)
    with pytest.raises(IngestError, match=r"20 of 100 points are committed.*re-run the same ingest") as info:
        ing.ingest(texts, ids=ids, metadata=meta, batch_size=10, show_progress=False)
    assert info.value.committed == 20 and info.value.total == 100
    assert isinstance(info.value, ProviderUnavailableError)
    cause = info.value.__cause__
    assert isinstance(cause, ProviderUnavailableError) and "after 2 retries" in str(cause)
    assert isinstance(cause.__cause__, ResponseHandlingException)
    assert client.count("docs").count == 20
    assert flaky.upserts == 5, "batch 3 tried three times (two retries), then the ingest stopped"


def test_unreachable_server_is_provider_unavailable() -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = QdrantClient(url=f"http://127.0.0.1:{port}", timeout=2, check_compatibility=False)
    with vecembed.load_provider("mock", dimension=16) as p:
        ing = QdrantIngestor(client, "docs", p, max_retries=1, retry_backoff=0.001)
        with pytest.raises(ProviderUnavailableError, match=r"did not answer.*after 1 retries") as info:
            ing.ingest(["a"], show_progress=False)
        assert isinstance(info.value.__cause__, ResponseHandlingException)
        report = ing.health_check()
    assert not report.ok and report.checks["qdrant"] is False and report.checks["provider"] is True
    assert "refused" in report.detail.lower()


def test_client_errors_are_not_retried(client: QdrantClient, provider: Any) -> None:
    bad_request = UnexpectedResponse(400, "Bad Request", b'{"status":{"error":"Wrong input"}}', None)  # type: ignore[arg-type]
    flaky = FlakyClient(client, fail_calls={1}, error=bad_request)
    ing = QdrantIngestor(flaky, "docs", provider, retry_backoff=0.001)  # type: ignore[arg-type]
    with pytest.raises(IngestError, match="0 of 3 points are committed") as info:
        ing.ingest(["a", "b", "c"], show_progress=False)
    assert info.value.committed == 0 and flaky.upserts == 1


class GuardedClient:
    """A real client whose upserts hold a lock, so that another thread can close it *between* two upserts.

    Closing a local-mode client while one of its sqlite writes runs crashes the
    interpreter (sqlite3 is not safe for a concurrent close): that is a
    qdrant-client hazard, not the fault under test, so the close waits its turn.
    """

    def __init__(self, inner: QdrantClient) -> None:
        self._inner = inner
        self.lock = threading.Lock()

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return self._inner.upsert(*args, **kwargs)

    def close_from_another_thread(self) -> None:
        def close() -> None:
            with self.lock:
                self._inner.close()

        closer = threading.Thread(target=close)
        closer.start()
        closer.join()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CloseClientAfter(WrappedProvider):
    """On its ``n``-th embed_documents call, another thread closes the Qdrant client."""

    def __init__(self, inner: Any, client: GuardedClient, n: int) -> None:
        super().__init__(inner)
        self._client = client
        self._n = n

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        self.calls += 1
        if self.calls == self._n:
            self._client.close_from_another_thread()
        return super().embed_documents(texts)


def test_client_closed_mid_ingest_then_rerun_finishes_exactly(tmp_path: Path, provider: Any) -> None:
    path = str(tmp_path / "qdrant")
    texts, ids, meta = corpus(200)
    first_client = GuardedClient(QdrantClient(path=path))
    # Closed while batch 6 is embedded: before or after the upsert of batch 5 (in flight meanwhile), never during.
    saboteur = CloseClientAfter(provider, first_client, n=6)
    with pytest.raises(IngestError) as info:
        QdrantIngestor(first_client, "docs", saboteur).ingest(  # type: ignore[arg-type]
            texts, ids=ids, metadata=meta, batch_size=20, show_progress=False
        )
    committed = info.value.committed
    assert committed in (80, 100) and info.value.total == 200
    assert f"{committed} of 200 points are committed" in str(info.value) and "re-run the same ingest" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError) and "closed" in str(info.value.__cause__)

    second_client = QdrantClient(path=path)  # the path is free again: the first client is closed
    try:
        ing = QdrantIngestor(second_client, "docs", provider)
        assert ing.count() == committed, "exactly what was reported committed is durable"
        report = ing.ingest(texts, ids=ids, metadata=meta, batch_size=20, show_progress=False)
        assert (report.skipped, report.points) == (committed, 200 - committed), "the re-run embeds only the rest"
        assert ing.count() == 200
        tops = ing.search_many(texts, limit=1)
        assert [hs[0].id for hs in tops] == ids, "every document is stored once and found by its own text"
    finally:
        second_client.close()


def test_provider_failure_mid_ingest_is_an_ingest_error(client: QdrantClient, provider: Any) -> None:
    class Exploding(WrappedProvider):
        def embed_documents(self, texts: Sequence[str]) -> Embeddings:
            self.calls += 1
            if self.calls == 3:
                raise ProviderUnavailableError("device lost")
            return super().embed_documents(texts)

    texts, ids, meta = corpus(100)
    with pytest.raises(IngestError, match=r"20 of 100 points are committed.*device lost") as info:
        QdrantIngestor(client, "docs", Exploding(provider)).ingest(
            texts, ids=ids, metadata=meta, batch_size=10, show_progress=False
        )
    assert info.value.committed == 20 and client.count("docs").count == 20


# -- on-disk persistence, progress, health --------------------------------------------------------


def test_on_disk_collection_reopens_in_a_new_client(tmp_path: Path, provider: Any) -> None:
    path = str(tmp_path / "q")
    texts, ids, meta = corpus(50)
    c1 = QdrantClient(path=path)
    QdrantIngestor(c1, "docs", provider).ingest(texts, ids=ids, metadata=meta, show_progress=False)
    c1.close()
    c2 = QdrantClient(path=path)
    try:
        ing = QdrantIngestor(c2, "docs", provider)
        assert ing.count() == 50
        hit = ing.search(texts[12], limit=1)[0]
        assert (hit.id, hit.text, hit.metadata) == ("doc-12", texts[12], meta[12])
        assert ing.health_check().ok
        with vecembed.load_provider("mock", dimension=64, seed=9) as other, pytest.raises(ModelMismatchError):
            QdrantIngestor(c2, "docs", other).ingest(["x"], show_progress=False)
    finally:
        c2.close()


def test_progress_bar_only_when_asked_or_on_a_terminal(ingestor: QdrantIngestor,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rich")
    texts, ids, _ = corpus(30)
    ingestor.ingest(texts, ids=ids, batch_size=10)  # auto: stderr is not a terminal under pytest
    ingestor.ingest(texts, ids=ids, batch_size=10, show_progress=False, skip_unchanged=False)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    ingestor.ingest(texts, ids=ids, batch_size=10, show_progress=True, skip_unchanged=False)
    shown = capsys.readouterr()
    assert "qdrant:docs" in shown.err and "30/30" in shown.err and shown.out == ""


def test_health_check_never_raises(client: QdrantClient, ingestor: QdrantIngestor) -> None:
    missing = ingestor.health_check()
    assert not missing.ok and missing.checks == {"qdrant": True, "collection": False, "provider": True}
    assert "does not exist" in missing.detail
    ingestor.ingest(["a", "b"], show_progress=False)
    healthy = ingestor.health_check()
    assert healthy.ok and "2 points" in healthy.detail and healthy.component == "qdrant-ingestor"
    client.close()
    down = ingestor.health_check()
    assert not down.ok and down.checks["qdrant"] is False and "closed" in down.detail


def test_constructor_validates(client: QdrantClient, provider: Any) -> None:
    with pytest.raises(InvalidInputError, match="collection must be"):
        QdrantIngestor(client, "", provider)
    with pytest.raises(InvalidInputError, match="provider must be an EmbeddingProvider"):
        QdrantIngestor(client, "docs", object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="text_key and id_key"):
        QdrantIngestor(client, "docs", provider, text_key="id")


def test_vectors_match_the_provider(ingestor: QdrantIngestor, client: QdrantClient, provider: Any) -> None:
    texts, ids, _ = corpus(10)
    ingestor.ingest(texts, ids=ids, show_progress=False)
    records = client.retrieve("docs", ids=[point_id(i) for i in ids], with_vectors=True)
    stored = {str(r.id): np.asarray(r.vector, dtype=np.float32) for r in records}
    expected = provider.embed_documents(texts)
    for row, doc_id in zip(expected, ids, strict=True):
        np.testing.assert_allclose(stored[point_id(doc_id)], row, atol=1e-6)


def test_embedding_of_the_next_batch_overlaps_the_upsert(client: QdrantClient, provider: Any) -> None:
    """Each upsert (but the last) waits until the next batch's embedding has begun; a serial ingest never would."""
    calls = {"embed": 0}
    cond = threading.Condition()
    overlapped: list[bool] = []

    class CountingProvider(WrappedProvider):
        def embed_documents(self, texts: Sequence[str]) -> Embeddings:
            with cond:
                calls["embed"] += 1
                cond.notify_all()
            return super().embed_documents(texts)

    class WaitingClient:
        def __init__(self, inner: QdrantClient, batches: int) -> None:
            self._inner, self._batches, self.upserts = inner, batches, 0

        def upsert(self, *args: Any, **kwargs: Any) -> Any:
            self.upserts += 1
            if self.upserts < self._batches:
                with cond:
                    overlapped.append(cond.wait_for(lambda: calls["embed"] > self.upserts, timeout=10))
            return self._inner.upsert(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    texts, ids, _ = corpus(50)
    waiting = WaitingClient(client, batches=5)
    report = QdrantIngestor(waiting, "docs", CountingProvider(provider)).ingest(  # type: ignore[arg-type]
        texts, ids=ids, batch_size=10, show_progress=False
    )
    assert report.batches == 5 and client.count("docs").count == 50
    assert overlapped == [True, True, True, True]


def test_a_server_that_drops_collection_metadata_is_refused(client: QdrantClient, provider: Any) -> None:
    """Qdrant before 1.16 accepts ``metadata=`` and forgets it: the guard could not work, so say so at once."""

    class OldServer:
        def __init__(self, inner: QdrantClient) -> None:
            self._inner = inner

        def create_collection(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
            return self._inner.create_collection(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    ing = QdrantIngestor(OldServer(client), "docs", provider)  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailableError, match=r"did not keep the metadata.*>= 1\.16"):
        ing.ingest(["a", "b"], show_progress=False)
    assert not client.collection_exists("docs")


def test_ids_and_metadata_from_numpy_ranges_and_generators(ingestor: QdrantIngestor) -> None:
    texts = ["one apple", "two pears", "three plums"]
    ingestor.ingest(texts, ids=np.arange(10, 13), metadata=({"k": i} for i in range(3)), show_progress=False)
    hit = ingestor.search("two pears", limit=1)[0]
    assert hit.id == 11 and type(hit.id) is int and hit.metadata == {"k": 1}
    ingestor.ingest(texts, ids=range(10, 13), metadata=[{"k": i} for i in range(3)], show_progress=False)
    assert ingestor.count() == 3, "numpy ints and Python ints name the same points"
    with pytest.raises(InvalidInputError, match=r"ids\[0\] must be str or int, got float"):
        ingestor.ingest(texts, ids=np.array([1.0, 2.0, 3.0]), show_progress=False)


def test_missing_qdrant_client_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['qdrant_client'] = None\n"
        "import vecembed\n"
        "try:\n"
        "    import vecembed_qdrant\n"
        "except vecembed.MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'vecembed[qdrant]'" in out.stdout


def test_import_vecembed_does_not_import_qdrant_client() -> None:
    import subprocess
    import sys

    code = "import sys, vecembed; print('qdrant_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
