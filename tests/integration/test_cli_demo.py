"""``vecembed demo`` with the real model, as the README runs it: results checked against sentence-transformers."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import readme_args, run_cli

pytest_plugins = ["backend_fixtures"]  # vecembed_cache: a private ONNX cache for the session

# Exports go to the session's private cache (VECEMBED_CACHE, inherited by subprocesses), not the user's.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("vecembed_cache")]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> dict[str, Any]:
    """``vecembed demo`` exactly as the README shows it, run once; its text output parsed."""
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    cwd = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    out = run_cli(*readme_args("demo"), cwd=cwd).stdout
    wall = time.perf_counter() - start
    sections = dict(re.findall(r"^== (chroma|qdrant) \(.*?\)\n(.*?)(?=^== )", out, re.M | re.S))
    hits: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for db, body in sections.items():
        hits[db] = {}
        for query, block in re.findall(r"query: '(.*?)'\n((?:\s+\d+\. .*\n)+)", body):
            hits[db][query] = [(m[2], float(m[1])) for m in re.finditer(r"\d+\. ([\d.]+)  \[(.*?)\]", block)]
    return {"out": out, "wall": wall, "sections": sections, "hits": hits,
            "left_behind": sorted(p.name for p in cwd.iterdir())}


def test_demo_ingests_into_both_databases_and_is_healthy(demo_run: dict[str, Any]) -> None:
    from vecembed.registry import default_backend

    out = demo_run["out"]
    assert "vecembed demo: 400 sentences" in out
    assert f"model: sentence-transformers/all-MiniLM-L6-v2 on {default_backend()} (cpu), dimension 384" in out
    assert set(demo_run["sections"]) == {"chroma", "qdrant"}
    for db in ("chroma", "qdrant"):  # one engine, one report, the same words for both databases
        assert f"{db}: ingested 400 documents into 'vecembed-demo': 400 written, 0 unchanged" in out
    assert out.count("health: ok") == 2 and "FAILED" not in out
    assert re.search(r"^  chroma .* ok$", out, re.M) and re.search(r"^  qdrant .* ok$", out, re.M)
    assert "same top results in chroma and qdrant: 4/4 queries" in out
    assert demo_run["left_behind"] == []  # the databases lived in a temporary folder, removed
    print(f"\nvecembed demo: {demo_run['wall']:.1f} s wall")


def test_demo_results_are_sentence_transformers_nearest_neighbours(demo_run: dict[str, Any], st_model: Any) -> None:
    from vecembed.cli.demo import DEMO_QUERIES, load_corpus

    docs = load_corpus()
    doc_vectors = st_model.encode([d.text for d in docs], normalize_embeddings=True, convert_to_numpy=True)
    ids = [d.id for d in docs]
    for db in ("chroma", "qdrant"):
        assert list(demo_run["hits"][db]) == list(DEMO_QUERIES)
    for query in DEMO_QUERIES:
        q = st_model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        scores = doc_vectors @ q
        order = np.argsort(-scores)[:3]
        for db in ("chroma", "qdrant"):
            hits = demo_run["hits"][db][query]
            assert [h[0] for h in hits] == [ids[i] for i in order], (db, query)
            np.testing.assert_allclose([h[1] for h in hits], scores[order], atol=1e-3)
