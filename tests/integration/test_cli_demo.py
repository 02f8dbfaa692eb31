"""``vecembed demo`` with the real model, as the README runs it: results checked against sentence-transformers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> dict[str, Any]:
    pytest.importorskip("chromadb")
    pytest.importorskip("qdrant_client")
    cwd = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    proc = run_cli("demo", "--json", cwd=cwd)
    result: dict[str, Any] = json.loads(proc.stdout)
    result["_wall_seconds"] = time.perf_counter() - start
    # The demo runs in a temporary folder and leaves nothing behind in the working directory.
    result["_left_behind"] = sorted(p.name for p in cwd.iterdir())
    return result


def test_demo_ingests_into_both_databases_and_is_healthy(demo_json: dict[str, Any]) -> None:
    from vecembed.cli._common import default_backend

    assert demo_json["backend"] == default_backend()
    assert demo_json["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert demo_json["dimension"] == 384 and demo_json["documents"] == 400
    assert [db["db"] for db in demo_json["databases"]] == ["chroma", "qdrant"]
    for db in demo_json["databases"]:
        assert db["error"] is None
        assert db["written"] == 400
        assert db["health_ok"] is True, db["health"]
    assert demo_json["_left_behind"] == []
    print(f"\nvecembed demo: {demo_json['_wall_seconds']:.1f} s wall, {demo_json['total_seconds']:.1f} s inside")


def test_demo_results_are_sentence_transformers_nearest_neighbours(demo_json: dict[str, Any], st_model: Any) -> None:
    from vecembed.cli.demo import DEMO_QUERIES, load_corpus

    docs = load_corpus()
    doc_vectors = st_model.encode([d.text for d in docs], normalize_embeddings=True, convert_to_numpy=True)
    ids = [d.id for d in docs]
    for query in DEMO_QUERIES:
        q = st_model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        scores = doc_vectors @ q
        order = np.argsort(-scores)[:3]
        for db in demo_json["databases"]:
            hits = db["hits"][query]
            assert [h["id"] for h in hits] == [ids[i] for i in order], (db["db"], query)
            np.testing.assert_allclose([h["score"] for h in hits], scores[order], atol=1e-3)


def test_demo_text_output(tmp_path: Path, minilm_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    # One database and one query keep this second run short; the text layout is what a user reads.
    proc = run_cli("demo", "--db", "qdrant", "-q", "a man plays the guitar", "-k", "2", "--path",
                   str(tmp_path / "kept"), cwd=tmp_path)
    out = proc.stdout
    assert "vecembed demo: 400 sentences" in out
    assert "query: 'a man plays the guitar'" in out
    assert " 1. " in out and "guitar" in out.split("query: 'a man plays the guitar'")[1].splitlines()[1]
    assert "health: ok" in out and "== summary" in out
    # --path keeps the database: a second process can search it
    search = run_cli("search", "guitar music", "--db", "qdrant", "--collection", "vecembed-demo", "--path",
                     str(tmp_path / "kept"), "--json", cwd=tmp_path)
    hits = json.loads(search.stdout)
    assert len(hits) == 5 and "guitar" in hits[0]["text"].lower()
