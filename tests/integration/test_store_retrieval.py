"""Both stores with the real model (all-MiniLM-L6-v2, torch backend), checked against sentence-transformers.

Retrieval is checked against sentence-transformers itself: each store's top-1 for
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
pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

import vecembed

pytestmark = pytest.mark.integration

#: STS-B dev pairs used for retrieval: enough for a 1 % tolerance to mean something, few enough to stay fast.
PAIRS = 400
DATABASES = ("chroma", "qdrant")
#: The tests on the whole retrieval set (both models over 800 sentences, each store ingesting 400): -m slow.
#: The default run keeps the real model in every store through test_store_conformance.py's exact top-10 check.
SLOW_CORPUS = pytest.mark.slow


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


@pytest.fixture(scope="module", params=DATABASES)
def loaded_store(
    request: pytest.FixtureRequest,
    torch_provider: Any,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
) -> Iterator[vecembed.Store]:
    """The retrieval corpus ingested once into an in-memory collection of each store, shared by read-only tests."""
    _, corpus, metadata = retrieval_set
    store = vecembed.open_store(request.param, f"sts-{request.param}", torch_provider)
    report = store.ingest([{"id": f"s2-{i}", "text": t, "metadata": m}
                           for i, (t, m) in enumerate(zip(corpus, metadata, strict=True))])
    assert report.written == len(corpus) and report.truncated == 0
    yield store
    store.close()


@SLOW_CORPUS
def test_top1_agrees_with_exact_search_over_sentence_transformers(
    loaded_store: vecembed.Store,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
    reference_scores: Any,
) -> None:
    queries, corpus, _ = retrieval_set
    exact_top1 = reference_scores.argmax(axis=1)
    results = loaded_store.search_many(queries, k=3)
    got_top1 = [int(hits[0].id.removeprefix("s2-")) for hits in results]
    agreement = float(np.mean(np.asarray(got_top1) == exact_top1))
    assert agreement >= 0.99, f"top-1 agreement {agreement:.4f} with exact search over sentence-transformers"
    # The scores each store returns are sentence-transformers' cosines, not just the same ranking.
    for row, hits in enumerate(results[:100]):
        for hit in hits:
            col = int(hit.id.removeprefix("s2-"))
            assert hit.score == pytest.approx(reference_scores[row, col], abs=2e-4)
            assert hit.text == corpus[col]


@SLOW_CORPUS
def test_search_with_a_metadata_filter_on_real_vectors(
    loaded_store: vecembed.Store,
    retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]],
    reference_scores: Any,
) -> None:
    queries, _, metadata = retrieval_set
    allowed = np.array([m["similar"] for m in metadata])
    hits = loaded_store.search(queries[7], k=5, where={"similar": True})
    assert hits and all(h.metadata["similar"] is True for h in hits)
    masked = np.where(allowed, reference_scores[7], -np.inf)
    assert int(hits[0].id.removeprefix("s2-")) == int(masked.argmax())


@pytest.mark.parametrize("db", DATABASES)
def test_on_disk_collection_is_searchable_from_a_new_client(
    db: str, tmp_path: Path, torch_provider: Any, retrieval_set: tuple[list[str], list[str], list[dict[str, Any]]]
) -> None:
    _, corpus, metadata = retrieval_set
    docs = [vecembed.Document(None, t, m) for t, m in zip(corpus[:60], metadata[:60], strict=True)]
    path = str(tmp_path / db)
    with vecembed.open_store(db, "sts", torch_provider, path=path) as writer:
        assert writer.ingest(docs).written == 60

    with vecembed.open_store(db, "sts", torch_provider, path=path, create=False) as reader:
        assert reader.count() == 60
        hits = reader.search(corpus[11], k=2)
        assert hits[0].text == corpus[11] and hits[0].metadata == metadata[11]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[1].score < hits[0].score
        assert reader.health_check().ok
        assert reader.ingest(docs).skipped == 60
