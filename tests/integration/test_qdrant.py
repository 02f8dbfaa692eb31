"""QdrantIngestor with the real model (all-MiniLM-L6-v2, torch backend) on every kind of Qdrant client.

Retrieval is checked against sentence-transformers itself: Qdrant's top-1 for
each STS-B dev query must equal the exact (numpy) top-1 over sentence-transformers'
own embeddings for at least 99 % of queries, and the scores must be its cosines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from qdrant_client import QdrantClient, models
from qdrant_fixtures import collection_name, qdrant_client, qdrant_server_url  # noqa: F401
from vecembed_qdrant import FINGERPRINT_KEY, QdrantIngestor

import vecembed
from vecembed.errors import DimensionMismatchError, ModelMismatchError

pytestmark = pytest.mark.integration

#: STS-B dev pairs used for retrieval: enough for a 1 % tolerance to mean something, few enough to stay fast.
PAIRS = 400


@pytest.fixture(scope="session")
def retrieval_set(sts_rows: list[tuple[float, str, str]]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Queries (sentence 1 of each pair), the corpus (unique sentence 2s) and the corpus metadata."""
    rows = sts_rows[:PAIRS]
    queries = [a for _, a, _ in rows]
    corpus = list(dict.fromkeys(b for _, _, b in rows))
    first_pair = {}
    for k, (score, _, b) in enumerate(rows):
        first_pair.setdefault(b, (k, score))
    metadata = [{"pair": first_pair[b][0], "gold": first_pair[b][1], "similar": first_pair[b][1] >= 3.0}
                for b in corpus]
    return queries, corpus, metadata


@pytest.fixture(scope="session")
def reference_scores(st_model: Any, retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]]) -> Any:
    """Exact cosine similarities (queries x corpus) from sentence-transformers' own embeddings."""
    queries, corpus, _ = retrieval_set
    q = st_model.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    d = st_model.encode(corpus, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(q, dtype=np.float64) @ np.asarray(d, dtype=np.float64).T


@pytest.fixture(scope="session")
def loaded_memory_ingestor(
    torch_provider: Any, retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]]
) -> Iterator[QdrantIngestor]:
    """The retrieval corpus ingested once into an in-memory collection, shared by the read-only tests."""
    _, corpus, metadata = retrieval_set
    client = QdrantClient(":memory:")
    ingestor = QdrantIngestor(client, "sts", torch_provider)
    report = ingestor.ingest(corpus, ids=[f"s2-{i}" for i in range(len(corpus))], metadata=metadata,
                             show_progress=False)
    assert report.points == len(corpus)
    yield ingestor
    client.close()


def test_top1_agrees_with_exact_search_over_sentence_transformers(
    loaded_memory_ingestor: QdrantIngestor,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
    reference_scores: Any,
) -> None:
    queries, corpus, _ = retrieval_set
    exact_top1 = reference_scores.argmax(axis=1)
    results = loaded_memory_ingestor.search_many(queries, limit=3)
    got_top1 = [int(str(hits[0].id).removeprefix("s2-")) for hits in results]
    agreement = float(np.mean(np.asarray(got_top1) == exact_top1))
    assert agreement >= 0.99, f"top-1 agreement {agreement:.4f} with exact search over sentence-transformers"
    # The scores Qdrant returns are sentence-transformers' cosines, not just the same ranking.
    for row, hits in enumerate(results[:100]):
        for hit in hits:
            col = int(str(hit.id).removeprefix("s2-"))
            assert hit.score == pytest.approx(reference_scores[row, col], abs=2e-4)
            assert hit.text == corpus[col]


def test_search_with_payload_filter_on_real_vectors(
    loaded_memory_ingestor: QdrantIngestor,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
    reference_scores: Any,
) -> None:
    queries, _, metadata = retrieval_set
    allowed = np.array([m["similar"] for m in metadata])
    hits = loaded_memory_ingestor.search(queries[7], limit=5, query_filter={"similar": True})
    assert hits and all(h.metadata["similar"] is True for h in hits)
    masked = np.where(allowed, reference_scores[7], -np.inf)
    assert int(str(hits[0].id).removeprefix("s2-")) == int(masked.argmax())


def test_ingest_search_and_guards_on_each_client_kind(
    qdrant_client: QdrantClient,  # noqa: F811
    collection_name: str,  # noqa: F811
    torch_provider: Any,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
) -> None:
    _, corpus, metadata = retrieval_set
    docs, meta = corpus[:120], metadata[:120]
    ids = [f"doc-{i}" for i in range(len(docs))]
    ingestor = QdrantIngestor(qdrant_client, collection_name, torch_provider)
    report = ingestor.ingest(docs, ids=ids, metadata=meta, batch_size=32, show_progress=False)
    assert (report.points, report.batches, report.truncated) == (120, 4, 0)
    assert ingestor.count() == 120
    recorded = qdrant_client.get_collection(collection_name).config.metadata or {}
    assert recorded[FINGERPRINT_KEY] == torch_provider.info.fingerprint

    again = ingestor.ingest(docs, ids=ids, metadata=meta, batch_size=32, show_progress=False)
    assert (again.points, again.skipped) == (0, 120) and ingestor.count() == 120

    tops = ingestor.search_many(docs[:20], limit=1)
    assert [hs[0].id for hs in tops] == ids[:20]
    assert all(hs[0].score == pytest.approx(1.0, abs=1e-4) for hs in tops)
    hit = ingestor.search(docs[3], limit=1, query_filter=models.Filter(
        must=[models.FieldCondition(key="pair", match=models.MatchValue(value=meta[3]["pair"]))]))[0]
    assert (hit.id, hit.metadata) == ("doc-3", meta[3])

    same_size = torch_provider.info.dimension
    with vecembed.load_provider("mock", dimension=same_size) as other_model, pytest.raises(ModelMismatchError):
        QdrantIngestor(qdrant_client, collection_name, other_model).ingest(["x"], show_progress=False)
    with vecembed.load_provider("mock", dimension=64) as smaller, pytest.raises(DimensionMismatchError):
        QdrantIngestor(qdrant_client, collection_name, smaller).ingest(["x"], show_progress=False)
    assert ingestor.count() == 120

    health = ingestor.health_check()
    assert health.ok, health.detail
    assert health.checks == {"qdrant": True, "collection": True, "provider": True}


def test_on_disk_collection_is_searchable_from_a_new_client(
    tmp_path: Path, torch_provider: Any, retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]]
) -> None:
    _, corpus, metadata = retrieval_set
    docs, meta = corpus[:60], metadata[:60]
    path = str(tmp_path / "qdrant")
    writer = QdrantClient(path=path)
    QdrantIngestor(writer, "sts", torch_provider).ingest(docs, metadata=meta, show_progress=False)
    writer.close()

    reader = QdrantClient(path=path)
    try:
        ingestor = QdrantIngestor(reader, "sts", torch_provider)
        assert ingestor.count() == 60
        hits = ingestor.search(docs[11], limit=2)
        assert hits[0].text == docs[11] and hits[0].metadata == meta[11]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[1].score < hits[0].score
        assert ingestor.health_check().ok
    finally:
        reader.close()


def test_example_script_runs_end_to_end() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "examples" / "qdrant_ingest.py"
    result = subprocess.run(
        [sys.executable, str(script), "--backend", "mock", "--path", ":memory:", "--where", "genre=captions",
         "--limit", "3"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "400 points written" in out and "re-run:   0 written, 400 unchanged; 400 points" in out
    hit_lines = [line for line in out.splitlines() if line.startswith("  0.") or line.startswith("  1.")]
    assert len(hit_lines) == 3 and all("'genre': 'captions'" in line for line in hit_lines)
    assert "health: ok" in out
