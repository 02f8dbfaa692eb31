"""The reference ``memory`` store: what the conformance suite does not pin down (filters, distances, its client).

The contract itself (ingest, search, count, delete, identity, resume, retries) is checked by
tests/integration/test_store_conformance.py, where ``memory`` is one of the kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.errors import DimensionMismatchError, InvalidInputError
from vecembed.memory_store import MemoryCollection, MemoryDatabase, MemoryStore
from vecembed.store import VectorStore

ROOT = Path(__file__).resolve().parents[2]


def test_registered_as_an_entry_point_and_listed() -> None:
    # tomllib is 3.11+: the section is read as text (its lines up to the next table).
    section = (ROOT / "pyproject.toml").read_text().split('[project.entry-points."vecembed.stores"]\n')[1]
    assert 'memory = "vecembed.memory_store:open_memory_store"' in section.split("\n[")[0]
    assert "memory" in vecembed.available_stores()
    with vecembed.load_provider("mock", dimension=8) as p, vecembed.open_store("memory", "docs", p) as store:
        assert isinstance(store.backend, MemoryStore) and isinstance(store.backend, VectorStore)
        assert store.health_check().checks["memory"] is True


def test_exact_search_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    with vecembed.load_provider("mock", dimension=24) as p, vecembed.open_store("memory", "exact", p) as store:
        texts = [f"text {i} about {'abcdefgh'[i % 8]} and {i % 5}" for i in range(300)]
        store.ingest([(f"t{i}", t) for i, t in enumerate(texts)])
        queries = [texts[int(i)] + " extra" for i in rng.integers(0, 300, 20)]
        expected = p.embed_queries(queries) @ p.embed_documents(texts).T
        for hits, row in zip(store.search_many(queries, k=10), expected, strict=True):
            # The true top 10 scores, best first, each on the document it belongs to (near-ties may swap).
            np.testing.assert_allclose([h.score for h in hits], np.sort(row)[::-1][:10], atol=1e-5)
            np.testing.assert_allclose([h.score for h in hits], [row[int(h.id[1:])] for h in hits], atol=1e-5)


def test_filters_match_one_type_family_and_list_items() -> None:
    database = MemoryDatabase()
    with vecembed.load_provider("mock", dimension=8) as p, vecembed.open_store(
        "memory", "flt", p, client=database
    ) as store:
        store.ingest([
            {"id": "a", "text": "one", "metadata": {"flag": True, "n": 1, "tags": ["x", "y"]}},
            {"id": "b", "text": "two", "metadata": {"flag": 1, "n": 1.0, "tags": ["z"]}},
            {"id": "c", "text": "three", "metadata": {"flag": False, "n": "1", "nested": {"k": 1}}},
        ])

        def ids(where: dict[str, Any]) -> set[str]:
            return {h.id for h in store.search("one", k=10, where=where)}

        assert ids({"flag": True}) == {"a"}  # True is not the number 1
        assert ids({"flag": 1}) == {"b"}
        assert ids({"n": 1}) == {"a", "b"}  # 1 and 1.0 are one number
        assert ids({"n": "1"}) == {"c"}
        assert ids({"tags": "y"}) == {"a"}  # a stored list matches when one item does
        assert ids({"tags": "y", "n": 1}) == {"a"} and ids({"tags": "y", "flag": False}) == set()
        assert ids({"missing": "x"}) == set()
        hit = store.search("three", k=1, where={"n": "1"})[0]
        assert hit.metadata == {"flag": False, "n": "1", "nested": {"k": 1}}
        hit.metadata["nested"]["k"] = 2  # type: ignore[index]  # a copy: the stored record is unchanged
        assert store.search("three", k=1, where={"n": "1"})[0].metadata["nested"] == {"k": 1}


def test_delete_keeps_the_other_rows_in_place() -> None:
    col = MemoryCollection("del", dimension=2, distance="dot")
    vectors = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)
    col.upsert(["a", "b", "c", "d"], vectors, [(i, {"i": i}, f"h{i}") for i in "abcd"])
    col.delete(["a", "zz", "c"])
    assert col.count() == 2 and col.hashes(["a", "b", "c", "d"]) == {"b": "hb", "d": "hd"}
    hits = col.search(np.array([[1, 0]], dtype=np.float32), 10, None)[0]
    assert [(h.id, h.score, h.text) for h in hits] == [("d", 2.0, "d"), ("b", 0.0, "b")]
    col.upsert(["b"], np.array([[0, 3]], dtype=np.float32), [("b2", {}, "hb2")])  # replaces, does not add
    assert col.count() == 2 and col.search(np.array([[0, 1]], dtype=np.float32), 1, None)[0][0].text == "b2"


def test_distances_score_as_similarities() -> None:
    unit = np.array([[1, 0], [0.6, 0.8]], dtype=np.float32)
    query = np.array([[0.6, 0.8]], dtype=np.float32)
    for distance in ("cosine", "dot", "l2"):
        col = MemoryCollection(f"d-{distance}", dimension=2, distance=distance)
        col.upsert(["x", "y"], unit, [("x", {}, ""), ("y", {}, "")])
        hits = col.search(query, 2, None)[0]
        # On unit vectors the three agree: y is the query itself (1.0), x is at cosine 0.6.
        assert [h.id for h in hits] == ["y", "x"]
        np.testing.assert_allclose([h.score for h in hits], [1.0, 0.6], atol=1e-6)
    assert MemoryCollection("e", dimension=2, distance="l2").distance == "euclid"
    with pytest.raises(InvalidInputError, match="manhattan"):
        MemoryCollection("m", dimension=2, distance="manhattan")


def test_the_database_checks_vector_sizes() -> None:
    col = MemoryCollection("dims", dimension=4)
    with pytest.raises(DimensionMismatchError, match="4-dimensional") as err:
        col.upsert(["a"], np.zeros((1, 3), dtype=np.float32), [("a", {}, "")])
    assert (err.value.expected, err.value.got) == (4, 3) and col.count() == 0
    with pytest.raises(DimensionMismatchError):
        col.search(np.zeros((1, 5), dtype=np.float32), 1, None)


def test_where_it_lives_is_checked() -> None:
    with vecembed.load_provider("mock", dimension=8) as p:
        with pytest.raises(InvalidInputError, match="in this process only; it takes no path="):
            vecembed.open_store("memory", "docs", p, path="./somewhere")
        with pytest.raises(InvalidInputError, match="no url="):
            vecembed.open_store("memory", "docs", p, url="http://127.0.0.1:1")
        with pytest.raises(InvalidInputError, match="MemoryDatabase, got dict"):
            vecembed.open_store("memory", "docs", p, client={})
        with pytest.raises(InvalidInputError, match="no options"):
            vecembed.open_store("memory", "docs", p, vector_name="dense")
        # Without a client each store has a database of its own; one MemoryDatabase is shared.
        with vecembed.open_store("memory", "docs", p) as one, vecembed.open_store("memory", "docs", p) as two:
            one.ingest(["a"])
            assert (one.count(), two.count()) == (1, 0)
        shared = MemoryDatabase()
        with vecembed.open_store("memory", "docs", p, client=shared) as one:
            one.ingest(["a", "b"])
        with vecembed.open_store("memory", "docs", p, client=shared, create=False) as again:
            assert again.count() == 2 and shared.list_collections() == ["docs"]


def test_the_cli_does_not_offer_it() -> None:
    from vecembed.cli.db import DATABASES

    assert "memory" not in DATABASES and "chroma" in DATABASES
