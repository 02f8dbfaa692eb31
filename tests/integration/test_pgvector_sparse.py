"""pgvector's sparse vectors against a real PostgreSQL: the ``sparsevec`` column, document frequencies, IDF queries.

Tested on the backend itself (:class:`~vecembed_pgvector.PgvectorStore`) with hand-made
:class:`~vecembed.sparse.SparseVector` s, so every figure below can be worked out by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pg_fixtures import PgRaw, pg_url  # noqa: F401
from psycopg import sql
from vecembed_pgvector.store import (
    SPARSE_DIMENSION,
    SPARSE_HNSW_MAX_NNZ,
    PgvectorStore,
    open_pgvector_store,
    sparse_index,
    sparse_stats_table_name,
    table_name,
)

from vecembed.errors import InvalidInputError, UnsupportedError
from vecembed.identity import CollectionIdentity
from vecembed.records import Record
from vecembed.sparse import SparseVector, idf
from vecembed.store import SparseStore

pytestmark = pytest.mark.integration

DIM = 4
SPARSE_IDENTITY = CollectionIdentity(
    fingerprint="fp-dense", model="m", dimension=DIM, sparse_fingerprint="fp-bm25", sparse_idf=True
)


def _records(*items: tuple[str, dict[str, Any]]) -> list[Record]:
    return [Record(id=i, text=f"text {i}", metadata=m, content_hash=f"h-{i}-{sorted(m.items())}") for i, m in items]


def _vectors(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=[False, True], ids=["exact", "hnsw"])
def store(pg_url: str, request: pytest.FixtureRequest) -> Iterator[PgvectorStore]:  # noqa: F811
    s = open_pgvector_store(f"sparse-{uuid.uuid4().hex[:8]}", url=pg_url, sparse_hnsw=request.param)
    s.create(SPARSE_IDENTITY)
    yield s
    s.close()


def _sv(weights: dict[int, float]) -> SparseVector:
    return SparseVector.from_dict(weights)


def test_term_ids_map_into_pgvectors_dimension_and_ids_that_meet_add_up() -> None:
    indices, values = sparse_index(_sv({5: 1.0, 2**32 - 1: 2.0, 5 + SPARSE_DIMENSION: 0.5}))
    assert indices.tolist() == [5, (2**32 - 1) % SPARSE_DIMENSION]
    assert values.tolist() == [1.5, 2.0]
    assert int(indices.max()) < SPARSE_DIMENSION


def test_stats_table_names_never_meet_a_collection_table() -> None:
    for name in ("docs", "df_docs", "é" * 60, "x_" + "a" * 26):
        stats = sparse_stats_table_name(name)
        assert len(stats.encode()) <= 63 and stats.startswith("vecembed_df_")
        assert stats != table_name(name)
        # a collection named like the stats table's tail still gets a table of its own
        assert table_name(stats.removeprefix("vecembed_")) != stats
    assert sparse_stats_table_name("a") != sparse_stats_table_name("b")


def test_write_counts_documents_and_terms_and_a_query_is_weighted_by_idf(store: PgvectorStore) -> None:
    assert isinstance(store, SparseStore) and store.sparse_idf == "store"
    records = _records(("a", {"lang": "en"}), ("b", {"lang": "de"}), ("c", {"lang": "en"}))
    sparse = [_sv({1: 1.0, 2: 1.0}), _sv({1: 1.0, 3: 2.0}), SparseVector.empty()]
    store.write_sparse(records, _vectors(3), sparse)
    assert store.count() == 3
    assert store.sparse_statistics() == (2, {1: 2, 2: 1, 3: 1})  # c has no term: not counted (as Qdrant)

    [hits] = store.query_sparse([_sv({1: 1.0, 3: 1.0})], 10, None)
    # b: 1*idf(2,2) + 2*idf(1,2); a: 1*idf(2,2); c shares no term and is no match.
    assert [h.id for h in hits] == ["b", "a"]
    assert hits[0].score == pytest.approx(idf(2, 2) + 2 * idf(1, 2), rel=1e-5)
    assert hits[1].score == pytest.approx(idf(2, 2), rel=1e-5)
    assert hits[0].text == "text b" and hits[0].metadata == {"lang": "de"}

    # filters apply to the sparse leg, and a query without terms finds nothing
    [en] = store.query_sparse([_sv({1: 1.0, 3: 1.0})], 10, {"lang": "en"})
    assert [h.id for h in en] == ["a"]
    assert store.query_sparse([SparseVector.empty()], 10, None) == [[]]
    # the dense leg still works on the same rows
    assert len(store.query(_vectors(1), 2, {"lang": "en"})[0]) == 2


def test_rewrite_and_delete_keep_the_statistics_exact(store: PgvectorStore) -> None:
    store.write_sparse(_records(("a", {}), ("b", {})), _vectors(2), [_sv({1: 1.0, 2: 1.0}), _sv({2: 1.0})])
    store.write_sparse(_records(("a", {"v": 2})), _vectors(1), [_sv({2: 1.0, 7: 1.0})])  # a loses 1, gains 7
    assert store.sparse_statistics() == (2, {2: 2, 7: 1})
    store.write_sparse(_records(("a", {"v": 2})), _vectors(1), [_sv({2: 1.0, 7: 1.0})])  # the same again: no change
    assert store.sparse_statistics() == (2, {2: 2, 7: 1})
    store.delete(["a", "missing"])
    assert store.sparse_statistics() == (1, {2: 1})
    [hits] = store.query_sparse([_sv({7: 1.0})], 5, None)
    assert hits == []
    store.delete(["b"])
    assert store.sparse_statistics() == (0, {})


def test_too_many_terms_for_the_hnsw_index_writes_nothing(pg_url: str) -> None:  # noqa: F811
    store = open_pgvector_store(f"sparse-{uuid.uuid4().hex[:8]}", url=pg_url, sparse_hnsw=True)
    store.create(SPARSE_IDENTITY)
    long = _sv({i: 1.0 for i in range(SPARSE_HNSW_MAX_NNZ + 1)})
    with pytest.raises(InvalidInputError, match=r"\['long'\].*more than 1000 distinct terms.*without sparse_hnsw"):
        store.write_sparse(_records(("ok", {}), ("long", {})), _vectors(2), [_sv({1: 1.0}), long])
    assert store.count() == 0 and store.sparse_statistics() == (0, {})
    store.close()


def test_without_the_hnsw_index_long_documents_are_kept(pg_url: str) -> None:  # noqa: F811
    s = open_pgvector_store(f"sparse-{uuid.uuid4().hex[:8]}", url=pg_url)  # no sparse index: the default
    s.create(SPARSE_IDENTITY)
    long = _sv({i: 1.0 for i in range(SPARSE_HNSW_MAX_NNZ + 1)})
    s.write_sparse(_records(("long", {})), _vectors(1), [long])
    assert [h.id for h in s.query_sparse([_sv({999: 1.0})], 3, None)[0]] == ["long"]
    with pytest.raises(InvalidInputError, match="at most 16000"):
        s.write_sparse(_records(("huge", {})), _vectors(1), [_sv({i: 1.0 for i in range(16_001)})])
    s.close()


def test_a_dense_only_collection_says_how_to_gain_sparse_vectors(pg_url: str) -> None:  # noqa: F811
    s = open_pgvector_store(f"dense-{uuid.uuid4().hex[:8]}", url=pg_url)
    s.create(CollectionIdentity(fingerprint="fp", model="m", dimension=DIM))
    with pytest.raises(UnsupportedError, match=r"without sparse vectors.*re-ingesting"):
        s.write_sparse(_records(("a", {})), _vectors(1), [_sv({1: 1.0})])
    with pytest.raises(UnsupportedError, match="without sparse vectors"):
        s.query_sparse([_sv({1: 1.0})], 3, None)
    s.write(_records(("a", {})), _vectors(1))
    s.delete(["a"])  # a dense-only delete touches no statistics
    assert PgRaw(pg_url).count(s.collection) == 0
    s.close()


def test_the_sparse_column_and_its_index_are_in_the_database(store: PgvectorStore, pg_url: str) -> None:  # noqa: F811
    with psycopg.connect(pg_url) as conn:
        typ = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) "
            "AND attname = 'sparse'",
            [table_name(store.collection)],
        ).fetchone()
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table_name(store.collection)]
            ).fetchall()
        ]
        stats = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(sparse_stats_table_name(store.collection)))
        ).fetchone()
    assert typ == (f"sparsevec({SPARSE_DIMENSION})",)
    assert any("hnsw (sparse sparsevec_ip_ops)" in d for d in indexes) == store.sparse_hnsw
    assert stats == (0,)


def test_a_sparse_provider_without_idf_keeps_no_statistics(pg_url: str) -> None:  # noqa: F811
    s = open_pgvector_store(f"sparse-{uuid.uuid4().hex[:8]}", url=pg_url)
    s.create(CollectionIdentity(fingerprint="fp", model="m", dimension=DIM, sparse_fingerprint="splade"))
    s.write_sparse(_records(("a", {}), ("b", {})), _vectors(2), [_sv({1: 2.0, 2: 1.0}), _sv({1: 1.0})])
    [hits] = s.query_sparse([_sv({1: 0.5, 2: 3.0})], 5, None)
    assert [(h.id, h.score) for h in hits] == [("a", pytest.approx(4.0)), ("b", pytest.approx(0.5))]  # raw dot
    assert s.sparse_statistics() == (0, {})
    assert s.state() is not None and s.state().sparse_field is True  # type: ignore[union-attr]
    s.delete(["a"])
    assert s.count() == 1
    s.close()
