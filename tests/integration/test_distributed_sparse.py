"""vecembed.distributed with BM25 against real databases: a Ray job and an in-process ingest write one collection.

The slow tests run a real local Ray cluster (``ray.init(num_cpus=2)``, one for the module): a Qdrant folder
(written from the driver) and a PostgreSQL server (written from Ray's write tasks, which load BM25 by name).
Each compares the Ray-written collection with one written by ``store.ingest(..., sparse="bm25")`` from the
same documents; a re-run encodes and writes nothing; a changed document gets a new sparse vector. The mock
provider keeps the dense vectors bit-exact across both engines, so a difference can only come from the
sparse path.

Short STS-B sentences tie often (the same words, the same length) and a database orders tied hits as they
were written, so the documents are given sorted by length — the order the in-process engine writes them in —
in one block, which Ray writes in that order too. PostgreSQL then gives the same ``sparse`` and ``hybrid``
hits, in the same order. Qdrant's local mode does not order ties reproducibly (the same hybrid query on the
same folder, asked twice, can order two documents whose dense-leg ranks tie differently), so there the
stored points are compared instead — every dense vector, sparse vector and payload, exactly — with the
``sparse`` hits (tied scores in any order) and the hybrid hits of queries only one document answers.
One test (not slow) runs the write tasks' code in this process, where coverage sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["ray_fixtures"]

pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")
pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

from ray_helpers import sts_docs  # noqa: E402

import vecembed  # noqa: E402
from vecembed.distributed import sink as sink_module  # noqa: E402

try:
    from pg_fixtures import pg_url  # a PostgreSQL server for the write tasks' tests
except pytest.skip.Exception as _no_pg:  # no psycopg: only the PostgreSQL tests skip
    _NO_PG = str(_no_pg)

    @pytest.fixture(scope="session")
    def pg_url() -> str:
        pytest.skip(_NO_PG)

pytestmark = pytest.mark.integration

MOCK = {"backend": "mock", "provider_options": {"dimension": 64}}
#: A text whose words no STS-B sentence has: a sparse search for them finds the changed document only.
NEW_TEXT = "A zeppelin hovered above the quayside fishmongers."


@pytest.fixture(scope="module")
def vd(ray_local: Any) -> Any:
    import vecembed.distributed as vd

    return vd


@pytest.fixture
def dense() -> Iterator[Any]:
    with vecembed.load_provider("mock", dimension=64) as provider:
        yield provider


def _docs(sentences: list[str], n: int) -> list[dict[str, Any]]:
    """``n`` STS-B documents, sorted by length as the in-process engine writes them (see the module docstring)."""
    return sorted(sts_docs(sentences, n), key=lambda d: len(d["text"]))


def _queries(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Queries from the documents' own words (the first five and the last four of some documents)."""
    return [" ".join(d["text"].split()[:5]) for d in docs[::23]] + [" ".join(d["text"].split()[-4:])
                                                                   for d in docs[5::31]]


def _points(folder: str) -> dict[str, tuple[list[float], dict[int, float], dict[str, Any]]]:
    """``{id: (dense vector, sparse vector, payload)}`` of every point of collection "docs" in a Qdrant folder."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=folder)
    try:
        points, _ = client.scroll("docs", limit=10_000, with_vectors=True, with_payload=True)
    finally:
        client.close()
    out = {}
    for point in points:
        vectors: Any = point.vector
        dense = next(v for v in vectors.values() if isinstance(v, list))
        sparse = next(v for v in vectors.values() if not isinstance(v, list))
        out[point.payload["vecembed:id"]] = (dense, dict(zip(sparse.indices, sparse.values, strict=True)),
                                             point.payload)
    return out


def _same_sparse_hits(ours: Any, theirs: Any, queries: Sequence[str]) -> None:
    """Both stores give the same ``sparse`` hits and scores; documents of one tied score in any order (the
    last group of a top 10 may be cut differently: only its size is compared)."""
    def groups(store: Any, query: str) -> list[tuple[float, frozenset[str]]]:
        out: dict[float, set[str]] = {}
        for hit in store.search(query, k=10, mode="sparse"):
            out.setdefault(round(hit.score, 4), set()).add(hit.id)
        return [(score, frozenset(ids)) for score, ids in out.items()]

    for query in queries:
        got, want = groups(ours, query), groups(theirs, query)
        assert got[:-1] == want[:-1] and [len(g) for _, g in got] == [len(g) for _, g in want], query
        assert got and got[-1][0] == want[-1][0], query


def _same_hits(ours: Any, theirs: Any, queries: Sequence[str]) -> int:
    """Assert both stores give the same sparse and hybrid hits (ids, texts, order); return the queries compared."""
    for query in queries:
        for mode in ("sparse", "hybrid"):
            got = [(h.id, h.text) for h in ours.search(query, k=10, mode=mode)]
            assert got == [(h.id, h.text) for h in theirs.search(query, k=10, mode=mode)], (query, mode)
            assert got, (query, mode)
    return len(queries)


class _CountingEmbedSparse:
    """``embed_sparse`` where the driver writes, counting the texts it encodes."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.real = sink_module.embed_sparse

    def __call__(self, sparse: Any, texts: Sequence[str], **kwargs: Any) -> Any:
        self.texts.extend(texts)
        return self.real(sparse, texts, **kwargs)


@pytest.mark.slow
def test_a_ray_ingest_with_bm25_into_a_qdrant_folder_searches_as_the_engine(
    vd: Any, dense: Any, sts_sentences: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.data

    docs = _docs(sts_sentences, 300)
    ray_path, engine_path = str(tmp_path / "ray"), str(tmp_path / "engine")
    encoded = _CountingEmbedSparse()
    monkeypatch.setattr(sink_module, "embed_sparse", encoded)  # a folder is written from the driver: this process

    def job(rows: list[dict[str, Any]]) -> vecembed.IngestReport:
        report: vecembed.IngestReport = vd.ingest_dataset(
            ray.data.from_items(rows, override_num_blocks=1), db="qdrant", collection="docs", path=ray_path,
            sparse="bm25", concurrency=1, batch_size=400, **MOCK)
        return report

    def engine_ingest(rows: list[dict[str, Any]]) -> None:
        with vecembed.open_store("qdrant", "docs", dense, path=engine_path, sparse="bm25") as engine:
            engine.ingest(rows)

    report = job(docs)
    assert (report.documents, report.written) == (300, 300) and len(encoded.texts) == 300
    engine_ingest(docs)
    stored = _points(ray_path)
    assert len(stored) == 300 and stored == _points(engine_path)  # every vector, sparse vector and payload
    with vecembed.open_store("qdrant", "docs", dense, path=engine_path, sparse="bm25") as engine, \
            vecembed.open_store("qdrant", "docs", dense, path=ray_path, sparse="bm25") as ours:
        # one identity: the dense and the sparse fingerprint, recorded alike by both engines
        recorded = ours.caller(ours.backend.state).identity
        assert recorded == engine.caller(engine.backend.state).identity and recorded.has_sparse
        assert recorded.sparse_fingerprint == vecembed.load_sparse_provider("bm25").info.fingerprint
        _same_sparse_hits(ours, engine, _queries(docs))

    again = job(docs)  # a re-run: nothing embedded, encoded or written
    assert (again.written, again.skipped, again.batches) == (0, 300, 0) and len(encoded.texts) == 300

    changed = [dict(d, text=NEW_TEXT) if d["id"] == "sts-7" else d for d in docs]
    third = job(changed)
    assert (third.written, third.skipped) == (1, 299) and encoded.texts[300:] == [NEW_TEXT]
    engine_ingest(changed)
    stored = _points(ray_path)
    assert stored == _points(engine_path) and stored["sts-7"][2]["vecembed:text"] == NEW_TEXT
    with vecembed.open_store("qdrant", "docs", dense, path=engine_path, sparse="bm25") as engine, \
            vecembed.open_store("qdrant", "docs", dense, path=ray_path, sparse="bm25") as ours:
        assert ours.count() == 300
        hits = ours.search("zeppelin fishmongers", k=3, mode="sparse")
        assert [h.id for h in hits] == ["sts-7"] and hits[0].text == NEW_TEXT
        _same_sparse_hits(ours, engine, [*_queries(changed), "zeppelin fishmongers"])
        for query in ("zeppelin quayside", "fishmongers"):
            assert ours.search(query, k=1, mode="hybrid")[0].id == "sts-7" == engine.search(
                query, k=1, mode="hybrid")[0].id


@pytest.mark.slow
def test_a_ray_ingest_with_bm25_into_postgres_writes_from_the_workers_as_the_engine(
    vd: Any, dense: Any, sts_sentences: list[str], pg_url: str
) -> None:
    import ray.data

    docs = _docs(sts_sentences, 200)

    def job(rows: list[dict[str, Any]]) -> vecembed.IngestReport:
        report: vecembed.IngestReport = vd.ingest_dataset(
            ray.data.from_items(rows, override_num_blocks=1), db="pgvector", collection="ray-bm25", url=pg_url,
            sparse="bm25", concurrency=1, batch_size=400, **MOCK)
        return report

    report = job(docs)
    assert (report.documents, report.written) == (200, 200)
    with vecembed.open_store("pgvector", "engine-bm25", dense, url=pg_url, sparse="bm25") as engine, \
            vecembed.open_store("pgvector", "ray-bm25", dense, url=pg_url, sparse="bm25") as ours:
        engine.ingest(docs)
        assert ours.caller(ours.backend.state).identity == engine.caller(engine.backend.state).identity
        assert _same_hits(ours, engine, _queries(docs)) >= 5

        again = job(docs)
        assert (again.written, again.skipped, again.batches) == (0, 200, 0)
        changed = [dict(d, text=NEW_TEXT) if d["id"] == "sts-7" else d for d in docs]
        third = job(changed)
        engine.ingest(changed)
        assert (third.written, third.skipped) == (1, 199) and ours.count() == 200
        hits = ours.search("zeppelin fishmongers", k=3, mode="sparse")
        assert [h.id for h in hits] == ["sts-7"] and hits[0].text == NEW_TEXT
        assert _same_hits(ours, engine, [*_queries(changed), "zeppelin fishmongers"]) >= 5

    # a job without BM25 into the collection written with it: the engine's refusal, before the job runs
    with pytest.raises(vecembed.ModelMismatchError, match="pass the sparse provider"):
        vd.ingest_dataset(ray.data.from_items(docs[:3]), db="pgvector", collection="ray-bm25", url=pg_url,
                          concurrency=1, **MOCK)
    with vecembed.open_store("pgvector", "ray-bm25", dense, url=pg_url, sparse="bm25") as ours:
        assert ours.count() == 200


@pytest.mark.slow
def test_the_cli_ingests_with_bm25_on_ray_and_searches_hybrid(
    vd: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vecembed.cli import main

    docs = [{"id": "a", "text": "Aspirin lowers the risk of a second stroke."},
            {"id": "b", "text": "The night train reaches Rome in the morning."},
            {"id": "c", "text": "Knead the dough and let it rise overnight."}]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in docs))
    where = ["--db", "qdrant", "-c", "cli-bm25", "--path", str(tmp_path / "data")]
    capsys.readouterr()
    assert main(["ingest", str(source), *where, "--engine", "ray", "--workers", "1", "--backend", "mock",
                 "--opt", "dimension=64", "--sparse", "bm25", "--sparse-opt", "k1=1.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["engine"], out["written"], out["count"], out["sparse"]) == ("ray", 3, 3, "bm25-english")
    assert out["sparse_fingerprint"] == vecembed.load_sparse_provider("bm25", k1=1.5).info.fingerprint
    assert main(["search", "aspirin strokes", *where, "--mode", "sparse", "--sparse-opt", "k1=1.5", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [h["id"] for h in hits] == ["a"]
    # the local engine adds to the collection Ray wrote (one identity), and refuses without --sparse, as Ray does
    assert main(["ingest", str(source), *where, "--sparse", "bm25", "--sparse-opt", "k1=1.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"] == 0
    assert main(["ingest", str(source), *where, "--engine", "ray", "--workers", "1", "--backend", "mock",
                 "--opt", "dimension=64"]) != 0
    assert "pass the sparse provider" in capsys.readouterr().err


@pytest.mark.slow
def test_the_docs_ray_hybrid_command_runs_as_written(vd: Any, tmp_path: Path, minilm_path: Path) -> None:
    """docs/cli.md's ``--engine ray --sparse bm25`` command, then its hybrid search, in subprocesses (the real
    model; the command starts its own local cluster, in a private temp dir)."""
    import shutil

    from cli_helpers import readme_args, run_cli
    from ray_fixtures import private_temp_dir

    (tmp_path / "part-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "a", "text": "Aspirin lowers the risk of stroke in older adults."},
        {"id": "b", "text": "Statins reduce LDL cholesterol and heart attacks."}]))
    (tmp_path / "part-2.csv").write_text("id,text\nc,A review of knee surgery outcomes after discharge.\n")
    ray_tmp = private_temp_dir()
    try:
        out = run_cli(*readme_args("ingest_hybrid_ray"), cwd=tmp_path, env={"RAY_TMPDIR": ray_tmp}).stdout
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert "3 written" in out and "now holds 3 documents (Ray Data + sparse bm25-english)" in out
    hybrid = run_cli(*readme_args("search_hybrid"), cwd=tmp_path).stdout.rstrip().splitlines()
    assert len(hybrid) == 3 and "[a]" in hybrid[0]


def test_a_write_task_loads_bm25_by_name_and_writes_it_with_the_dense_vectors(dense: Any, pg_url: str) -> None:
    """The write tasks' code in this process (a Ray job runs it in the workers, where coverage does not see it)."""
    import pickle

    from ray.data.block import BlockAccessor
    from ray.data.datasource.datasink import WriteResult

    import vecembed.distributed as vd

    sink = vd.VecembedDatasink("pgvector", "sink-bm25", url=pg_url, provider=dense, sparse="bm25",
                               sparse_options={"k1": 1.5})
    sink.on_write_start()  # the driver: creates the collection with both fingerprints
    bm25 = vecembed.load_sparse_provider("bm25", k1=1.5)
    assert sink.identity is not None and sink.identity.sparse_fingerprint == bm25.info.fingerprint
    assert sink.sparse_spec == vd.SparseSpec(name="bm25", options={"k1": 1.5}, fingerprint=bm25.info.fingerprint)
    task = pickle.loads(pickle.dumps(sink))  # what a write task gets: the spec, not the driver's providers

    embedder = vd.RecordEmbedder(vd.ProviderSpec(backend="mock", options={"dimension": 64}),
                                 store=vd.StoreSpec(db="pgvector", collection="sink-bm25", url=pg_url))
    texts = ["aspirin lowers the risk of stroke", "the night train to Rome", "knead the dough"]
    block = BlockAccessor.batch_to_block(embedder(BlockAccessor.batch_to_block(
        {"id": np.array(["a", "b", "c"], dtype=object), "text": np.array(texts, dtype=object)})))
    counts = task.write([block], None)
    assert (counts.new, counts.rows) == (3, 3)
    sink.on_write_complete(WriteResult(num_rows=3, size_bytes=0, write_returns=[counts]))
    assert sink.report is not None and sink.report.written == 3
    with vecembed.open_store("pgvector", "sink-bm25", dense, url=pg_url, sparse=bm25) as store:
        assert [h.id for h in store.search("strokes", k=3, mode="sparse")] == ["a"]
        assert store.search("dough", k=3, mode="hybrid")[0].id == "c"
    # a task whose node loads another term space refuses before writing
    other = pickle.loads(pickle.dumps(sink))
    other.sparse_spec = vd.SparseSpec(name="bm25", options={"k1": 1.5}, fingerprint="bm25-v0-elsewhere")
    with pytest.raises(vecembed.ModelMismatchError, match="the driver bm25-v0-elsewhere"):
        other.write([block], None)
