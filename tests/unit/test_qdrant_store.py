"""What is Qdrant's own in its store: point ids, filters, transient errors, named vectors, local folders, servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from vecembed_qdrant import is_transient, point_id, to_filter

import vecembed
from vecembed.errors import InvalidInputError, ModelMismatchError, ProviderUnavailableError


@pytest.fixture
def provider() -> Any:
    with vecembed.load_provider("mock", dimension=16) as p:
        yield p


def test_point_ids_are_stable_across_releases() -> None:
    # Pinned on purpose: if these change, every collection written before would duplicate on re-ingest.
    assert point_id("doc-1") == "cb50762f-c499-510c-abe8-0cd3f79120b6"
    assert point_id("doc-1") != point_id("doc-2")
    u = "2F1D3C1E-8A9B-4C6D-9E0F-A1B2C3D4E5F6"
    assert point_id(u) == u.lower(), "a canonical UUID string is used as it is"
    assert point_id("2f1d3c1e8a9b4c6d9e0fa1b2c3d4e5f6") != "2f1d3c1e-8a9b-4c6d-9e0f-a1b2c3d4e5f6"


def test_to_filter() -> None:
    flt = to_filter({"lang": "en", "year": {"gte": 2020}, "tag": ["a", "b"], "score": 0.5})
    assert flt is not None and len(flt.must or []) == 4
    assert to_filter(None) is None
    given = models.Filter(must=[])
    assert to_filter(given) is given
    for bad in ({"k": [1, "a"]}, {"k": None}, {1: "x"}):
        with pytest.raises(InvalidInputError):
            to_filter(bad)
    with pytest.raises(InvalidInputError, match="Filter or a dict"):
        to_filter(["lang"])  # type: ignore[arg-type]


def test_transient_errors() -> None:
    assert is_transient(ResponseHandlingException(ConnectionRefusedError()))
    assert is_transient(UnexpectedResponse(503, "Unavailable", b"", None))  # type: ignore[arg-type]
    assert not is_transient(UnexpectedResponse(400, "Bad Request", b"", None))  # type: ignore[arg-type]
    assert not is_transient(ValueError("Wrong input: Vector dimension error"))


def test_named_vectors(provider: Any) -> None:
    client = QdrantClient(":memory:")
    with vecembed.open_store("qdrant", "named", provider, client=client, vector_name="text") as store:
        store.ingest(["alpha", "beta"])
        assert store.search("alpha", k=1)[0].text == "alpha"
    params = client.get_collection("named").config.params.vectors
    assert isinstance(params, dict) and params["text"].size == 16
    with pytest.raises(InvalidInputError, match="named vectors"):
        vecembed.open_store("qdrant", "named", provider, client=client)
    with pytest.raises(InvalidInputError, match="no vector named 'image'"):
        vecembed.open_store("qdrant", "named", provider, client=client, vector_name="image")


def test_on_disk_collection_reopens_and_the_folder_lock_is_explained(tmp_path: Path, provider: Any) -> None:
    path = str(tmp_path / "qdrant")
    with vecembed.open_store("qdrant", "docs", provider, path=path) as store:
        store.ingest([("a", "first"), ("b", "second")])
        with pytest.raises(ProviderUnavailableError, match="in use by another process"):
            vecembed.open_store("qdrant", "docs", provider, path=path)
    with vecembed.open_store("qdrant", "docs", provider, path=path, create=False) as again:
        assert again.count() == 2 and again.search("second", k=1)[0].id == "b"


def test_unreachable_server_is_provider_unavailable(provider: Any) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ProviderUnavailableError, match=r"did not answer.*after 1 retries") as info:
        vecembed.open_store("qdrant", "docs", provider, url=url, max_retries=1, retry_backoff=0.001, timeout=2,
                            check_compatibility=False)
    assert url in str(info.value) and isinstance(info.value.__cause__, ResponseHandlingException)


def test_a_server_that_drops_collection_metadata_is_refused(provider: Any) -> None:
    """Qdrant before 1.16 accepts ``metadata=`` and forgets it: the guard could not work, so say so at once."""
    inner = QdrantClient(":memory:")

    class OldServer:
        def create_collection(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
            return inner.create_collection(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

    store = vecembed.open_store("qdrant", "docs", provider, client=OldServer())
    with pytest.raises(ProviderUnavailableError, match="did not keep the identity"):
        store.ingest(["a", "b"])
    assert inner.count("docs").count == 0


def test_a_collection_of_another_distance_is_refused(provider: Any) -> None:
    client = QdrantClient(":memory:")
    client.create_collection("m", vectors_config=models.VectorParams(size=16, distance=models.Distance.MANHATTAN))
    with pytest.raises(ModelMismatchError, match="manhattan"):
        vecembed.open_store("qdrant", "m", provider, client=client)


def test_missing_qdrant_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['qdrant_client'] = None\n"
        "import vecembed\n"
        "try:\n"
        "    vecembed.open_store('qdrant', 'docs', vecembed.load_provider('mock'))\n"
        "except vecembed.MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'vecembed[qdrant]'" in out.stdout


def test_sparse_search_on_local_mode_says_once_that_it_is_pure_python(
    provider: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import vecembed_qdrant.store as qdrant_store
    from sparse_helpers import HashedTermsProvider

    monkeypatch.setattr(qdrant_store, "LOCAL_SPARSE_NOTICE_POINTS", 3)
    docs = [(f"d{i}", f"cats and dogs number {i}") for i in range(5)]
    with vecembed.open_store("qdrant", "local-sparse", provider, sparse=HashedTermsProvider()) as store:
        assert store.backend.local_mode
        store.ingest(docs[:3])
        with caplog.at_level("WARNING", logger="vecembed"):
            store.search("cats", k=2, mode="hybrid")  # 3 points: not above the threshold, and said for good
            assert "pure Python" not in caplog.text
    with vecembed.open_store("qdrant", "local-sparse", provider, sparse=HashedTermsProvider()) as store:
        store.ingest(docs)
        with caplog.at_level("WARNING", logger="vecembed"):
            assert [h.id for h in store.search("number 4", k=1, mode="sparse")] == ["d4"]
            store.search("cats", k=2, mode="hybrid")
        notices = [r.getMessage() for r in caplog.records if "pure Python" in r.getMessage()]
        assert len(notices) == 1 and "5 points" in notices[0] and "qdrant-edge" in notices[0]
