"""What is Qdrant Edge's own in its store: folder names, the identity file, one opener per shard, optimize, filters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qdrant_edge", reason="pip install 'vecembed[qdrant-edge]'")

import qdrant_edge as qe
from vecembed_qdrant_edge import EdgeShards, QdrantEdgeStore, to_edge_filter
from vecembed_qdrant_edge.store import folder_name, write_json_atomic

import vecembed
from vecembed.errors import InvalidInputError, ModelMismatchError, ProviderUnavailableError
from vecembed.identity import FINGERPRINT_KEY, CollectionIdentity


@pytest.fixture
def provider() -> Any:
    with vecembed.load_provider("mock", dimension=16) as p:
        yield p


def docs(n: int) -> list[dict[str, Any]]:
    return [{"id": f"d{i}", "text": f"text {i}", "metadata": {"n": i, "half": i + 0.5, "odd": bool(i % 2)}}
            for i in range(n)]


def test_folder_names_are_safe_and_distinct() -> None:
    assert folder_name("docs_v2-en") == "docs_v2-en"
    assert folder_name("../etc") == "%2E%2E%2Fetc"
    assert folder_name("a.vecembed.json") == "a%2Evecembed%2Ejson"  # never an identity file's name
    assert folder_name("café") == "caf%C3%A9"
    long = folder_name("x" * 300)
    assert len(long) < 150 and long != folder_name("x" * 299)


def test_identity_file_round_trip_beside_the_shard(tmp_path: Path, provider: Any) -> None:
    with vecembed.open_store("qdrant-edge", "my docs", provider, path=str(tmp_path)) as store:
        assert store.backend.state() is None  # neither shard nor identity yet
        store.ingest(docs(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my%20docs", "my%20docs.vecembed.json"]
    recorded = json.loads((tmp_path / "my%20docs.vecembed.json").read_text())
    assert recorded == CollectionIdentity.of(provider.info).to_metadata()
    with vecembed.open_store("qdrant-edge", "my docs", provider, path=str(tmp_path), create=False) as store:
        state = store.backend.state()
        assert state is not None and state.identity == store.identity
        assert (state.dimension, state.distance, state.count) == (16, "Cosine", None)
        assert store.count() == 3
    with vecembed.load_provider("mock", dimension=16, seed=3) as other, pytest.raises(ModelMismatchError):
        vecembed.open_store("qdrant-edge", "my docs", other, path=str(tmp_path))


def test_identity_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "c.vecembed.json"
    write_json_atomic(target, {"a": 1})

    def broken_dump(value: Any, f: Any, **kwargs: Any) -> None:
        f.write('{"a": 2, "half')
        raise OSError("disk full (injected)")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["c.vecembed.json"]  # no temporary file left behind


def test_identity_merge_keeps_other_keys_and_a_damaged_file_is_named(tmp_path: Path) -> None:
    shards = EdgeShards(tmp_path)
    shards.write_identity("c", {"owner": "me"})
    shards.write_identity("c", {FINGERPRINT_KEY: "ve1-x"})
    assert shards.read_identity("c") == {"owner": "me", FINGERPRINT_KEY: "ve1-x"}
    shards.identity_path("c").write_text("{not json")
    with pytest.raises(ProviderUnavailableError, match=r"c\.vecembed\.json"):
        shards.read_identity("c")
    shards.close()


@pytest.mark.slow  # the lock seen from a second interpreter (~3-7 s to import the engine there)
def test_a_second_opener_of_a_shard_is_refused(tmp_path: Path, provider: Any) -> None:
    first = vecembed.open_store("qdrant-edge", "docs", provider, path=str(tmp_path))
    first.ingest(docs(2))
    with pytest.raises(ProviderUnavailableError, match="one opener per shard"):
        vecembed.open_store("qdrant-edge", "docs", provider, path=str(tmp_path))
    script = (
        "import vecembed\n"
        f"p = vecembed.load_provider('mock', dimension=16)\n"
        f"vecembed.open_store('qdrant-edge', 'docs', p, path={str(tmp_path)!r})\n"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert other.returncode != 0 and "ProviderUnavailableError" in other.stderr, other.stderr[-2000:]
    assert "one opener per shard" in other.stderr
    with vecembed.open_store("qdrant-edge", "other", provider, path=str(tmp_path)) as beside:  # another shard: fine
        assert beside.ingest(docs(1)).written == 1
    first.close()
    with vecembed.open_store("qdrant-edge", "docs", provider, path=str(tmp_path)) as again:  # closed: free again
        assert again.count() == 2


def test_shared_shards_serve_several_stores(tmp_path: Path, provider: Any) -> None:
    shards = EdgeShards(tmp_path)
    a = vecembed.open_store("qdrant-edge", "docs", provider, client=shards)
    b = vecembed.open_store("qdrant-edge", "docs", provider, client=shards)
    a.ingest(docs(4))
    assert b.count() == 4
    a.close()
    b.close()
    assert shards.shard("docs") is not None  # not the stores' to close
    shards.close()
    with pytest.raises(ProviderUnavailableError, match="closed"):
        shards.shard("docs")


def test_optimize_runs_before_the_first_query_after_writes(tmp_path: Path, provider: Any) -> None:
    shards = EdgeShards(tmp_path)
    # A tiny indexing threshold, so that 2,000 16-d vectors are worth an HNSW index.
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=16, distance=qe.Distance.Cosine),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=10),
    )
    shards.create("docs", config)  # an empty shard without identity: claimed by the first ingest
    store = vecembed.open_store("qdrant-edge", "docs", provider, client=shards)
    backend: QdrantEdgeStore = store.backend  # type: ignore[assignment]
    calls: list[bool] = []
    real = shards.optimize

    def counted(collection: str, *, force: bool = False) -> bool:
        changed = real(collection, force=force)
        calls.append(changed)
        return changed

    shards.optimize = counted  # type: ignore[method-assign]
    store.ingest(docs(2000), batch_size=500)
    shard = shards.shard("docs")
    assert shard is not None and shard.info().indexed_vectors_count == 0  # writes alone build no index
    assert store.search("text 7", k=1)[0].score == pytest.approx(1.0, abs=1e-4)
    assert calls == [True] and shard.info().indexed_vectors_count == 2000  # built once, before that search
    store.search("text 8", k=1)
    assert calls == [True, False]  # nothing written since: a no-op
    assert not backend.optimize() and backend.optimize(force=True) is False
    store.close()
    shards.close()


def test_filters_convert_to_edge_types(tmp_path: Path, provider: Any) -> None:
    flt = to_edge_filter({"lang": "en", "year": {"gte": 2020, "lt": 2024}, "tag": ["a", "b"], "score": 0.5})
    assert isinstance(flt, qe.Filter) and len(flt.must or []) == 4
    assert to_edge_filter(None) is None
    with pytest.raises(InvalidInputError):
        to_edge_filter({"k": None})
    from qdrant_client import models

    with pytest.raises(InvalidInputError, match="value, any-of or numeric range"):
        to_edge_filter(models.Filter(must=[models.FieldCondition(key="t", match=models.MatchText(text="x"))]))
    nested = to_edge_filter(models.Filter(should=models.Filter(must_not=[
        models.FieldCondition(key="n", match=models.MatchValue(value=1))
    ])))
    assert nested is not None and len(nested.should or []) == 1
    with vecembed.open_store("qdrant-edge", "docs", provider, path=str(tmp_path)) as store:
        store.ingest(docs(10))
        q = store.provider.embed_queries(["text"])
        backend = store.backend
        assert [h.id for h in backend.query(q, 10, {"half": 3.5})[0]] == ["d3"]  # floats: the range [v, v]
        assert {h.id for h in backend.query(q, 10, {"n": {"gte": 7}, "odd": True})[0]} == {"d7", "d9"}
        assert {h.id for h in backend.query(q, 10, {"n": [1, 2]})[0]} == {"d1", "d2"}
        assert {h.id for h in backend.query(q, 10, {"odd": False})[0]} == {"d0", "d2", "d4", "d6", "d8"}


def test_where_it_lives(tmp_path: Path, provider: Any) -> None:
    with pytest.raises(InvalidInputError, match="embedded"):
        vecembed.open_store("qdrant-edge", "docs", provider, url="http://localhost:6333")
    with pytest.raises(InvalidInputError, match="vector_name"):
        vecembed.open_store("qdrant-edge", "docs", provider, vector_name="text")
    with pytest.raises(InvalidInputError, match="EdgeShards"):
        vecembed.open_store("qdrant-edge", "docs", provider, client=object())
    store = vecembed.open_store("qdrant-edge", "docs", provider, hnsw_ef=128)
    folder = store.backend.shards.path  # type: ignore[attr-defined]
    assert store.location == "memory" and folder.is_dir()
    store.ingest(docs(3))
    assert store.health_check().ok
    store.close()
    assert not folder.exists()  # the temporary folder is removed on close


def test_a_shard_removed_under_its_identity_is_recreated(tmp_path: Path, provider: Any) -> None:
    shards = EdgeShards(tmp_path)
    with vecembed.open_store("qdrant-edge", "docs", provider, client=shards) as store:
        store.ingest(docs(3))
        shards.delete_collection("docs")
        shards.write_identity("docs", store.identity.to_metadata())
        assert store.count() == 0
        assert store.ingest(docs(3)).written == 3 and store.count() == 3
        state = store.backend.state()
        assert state is not None and state.dimension == 16
    shards.close()
