"""vecembed.distributed's parts in this process, no cluster: rows -> records, states, writes, errors, options.

The Ray tests (tests/integration/test_distributed.py, slow) run these same functions inside Ray's workers,
where coverage does not see them; here they run in-process on the mock provider and Qdrant's memory mode.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")

import vecembed
from vecembed import distributed as vd
from vecembed.distributed.actors import actor_pool
from vecembed.distributed.readers import _arrow_with_str_ids
from vecembed.distributed.sink import summarise
from vecembed.errors import DimensionMismatchError, InvalidInputError, ModelMismatchError
from vecembed.ingest import embed_sorted
from vecembed.records import content_hash, text_id

MOCK = vd.ProviderSpec(backend="mock", options={"dimension": 16})


def _table(columns: dict[str, Any]) -> Any:
    from ray.data.block import BlockAccessor

    return BlockAccessor.batch_to_block(columns)


def test_importing_vecembed_does_not_import_ray() -> None:
    code = "import sys, vecembed; import vecembed.store, vecembed.ingest; assert 'ray' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_without_ray_the_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "try:\n    import vecembed.distributed\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("MissingDependencyError") and "pip install 'vecembed[ray]'" in out


def test_rows_become_the_engines_records() -> None:
    rows = [
        {"id": 7, "text": "seven", "metadata": {"lang": "en", "none": None}},
        {"id": None, "text": "no id"},
        {"id": "7", "text": "seven", "metadata": {"lang": "en"}},  # 7 and "7" are one id: a repeat
    ]
    records, states = vd.prepare_rows(rows)
    assert [r.id for r in records] == ["7", text_id("no id"), "7"]
    assert states == [vd.PENDING, vd.PENDING, vd.REPEAT]
    assert records[0].metadata == {"lang": "en"}
    assert records[0].content_hash == content_hash(b"seven", {"lang": "en"})
    records, _ = vd.prepare_rows([{"key": "k1", "body": "x", "a": 1, "b": None}], id_column="key",
                                 text_column="body", metadata_columns=["a", "b"])
    assert (records[0].id, records[0].text, dict(records[0].metadata)) == ("k1", "x", {"a": 1})


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([{"id": "ok", "text": "a"}, {"id": "bad-1", "text": None}], r"document id='bad-1': the text must be a str"),
        ([{"text": "fine"}, {"text": "nul\x00here"}], r"document 'nul\\x00here' \(no id\): the text has a NUL"),
        ([{"id": 3, "text": None}], r"document id=3"),
        ([{"text": None}], r"a document without an id \(text None\)"),
        ([{"id": "d", "text": "one"}, {"id": "d", "text": "two"}],
         r"document id='d' has the id 'd' of document id='d'"),
        ([{"id": "m", "text": "t", "metadata": {"vecembed:x": 1}}], r"document id='m': metadata key 'vecembed:x'"),
    ],
)
def test_a_bad_row_is_named_by_its_id_or_text(rows: list[dict[str, Any]], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        vd.prepare_rows(rows)


def test_classify_and_length_sorted_embedding() -> None:
    records, states = vd.prepare_rows([{"id": i, "text": t} for i, t in enumerate(["a", "b", "c"])])
    stored = {"0": records[0].content_hash, "1": "other"}
    assert vd.classify(records, states, stored) == [vd.UNCHANGED, vd.CHANGED, vd.NEW]
    with vecembed.load_provider("mock", dimension=16) as provider:
        texts = ["a much longer text than the others", "short", "", "medium text"]
        assert np.array_equal(embed_sorted(provider, texts), provider.embed_documents(texts))
        assert embed_sorted(provider, []).shape == (0, 16)

    class Wrong:
        info = provider.info

        def embed_documents(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 3), np.float32)

    with pytest.raises(DimensionMismatchError, match=r"shape \(1, 3\)"):
        embed_sorted(Wrong(), ["x"])  # type: ignore[arg-type]


def test_the_provider_spec_checks_the_fingerprint_and_threads() -> None:
    provider = MOCK.load()
    assert provider.info.dimension == 16
    with pytest.raises(ModelMismatchError, match="same model"):
        vd.ProviderSpec(backend="mock", options={"dimension": 16}, fingerprint="another").load()
    assert vd.ProviderSpec(backend="onnx").with_threads(2).options == {"threads": 2}
    assert vd.ProviderSpec(backend="onnx", options={"threads": 4}).with_threads(2).options == {"threads": 4}
    assert MOCK.with_threads(2) is MOCK


def test_the_batch_embedder_adds_vectors_and_refuses_bad_text() -> None:
    embedder = vd.BatchEmbedder(MOCK, env={"VECEMBED_TEST_FORWARDED": "1"})
    out = embedder({"text": np.array(["one", "two"], dtype=object), "k": np.array([1, 2])})
    assert out["embedding"].shape == (2, 16) and out["embedding"].dtype == np.float32
    assert np.array_equal(out["embedding"], embedder.provider.embed_documents(["one", "two"]))
    with pytest.raises(InvalidInputError, match="no column 'text'"):
        embedder({"body": np.array(["x"])})
    with pytest.raises(InvalidInputError, match="the row with text None"):
        embedder({"text": np.array(["x", None], dtype=object)})


def test_records_are_prepared_embedded_and_written_with_counts() -> None:
    embedder = vd.RecordEmbedder(MOCK, metadata_columns=["n"])
    prepared = embedder(_table({"id": np.array(["a", "b", "a"], dtype=object),
                                "text": np.array(["alpha", "beta", "alpha"], dtype=object),
                                "n": np.array([1, 2, 1])}))
    assert list(prepared["vecembed_state"]) == [vd.PENDING, vd.PENDING, vd.REPEAT]
    assert not prepared["embedding"][2].any()  # a repeat is not embedded

    with vecembed.open_store("qdrant", "parts", embedder.provider) as store:
        store.claim()
        records, states, vectors = vd.table_records(_table(prepared))
        assert [dict(r.metadata) for r in records] == [{"n": 1}, {"n": 2}, {"n": 1}]
        counts = vd.write_records(store.backend, store.caller, records, states, vectors, batch_size=1)
        assert (counts.rows, counts.new, counts.repeats, counts.batches) == (3, 2, 1, 2)
        again = vd.write_records(store.backend, store.caller, records, states, vectors)
        assert (again.new, again.unchanged, again.batches) == (0, 2, 0)
        assert store.count() == 2
        hits = store.search("alpha", k=1)
        assert (hits[0].id, hits[0].metadata) == ("a", {"n": 1})

        # a dataset embedded by embed_dataset (no prepared columns) is validated by the writer itself
        raw = _table({"id": np.array([5], dtype=object), "text": np.array(["beta"], dtype=object),
                      "embedding": embedder.provider.embed_documents(["beta"])})
        records, states, vectors = vd.table_records(raw)
        assert (records[0].id, states) == ("5", [vd.PENDING])
        assert vd.write_records(store.backend, store.caller, records, states, vectors).new == 1
        with pytest.raises(InvalidInputError, match="no column 'vectors'"):
            vd.table_records(raw, embedding_column="vectors")
        with pytest.raises(DimensionMismatchError, match="1 records but 2 vectors"):
            vd.write_records(store.backend, store.caller, records, states, np.zeros((2, 16), np.float32))


def test_vectors_as_list_columns_and_int_ids_from_files_are_read() -> None:
    import pyarrow as pa

    table = pa.table({"id": [1, 2], "text": ["a", "b"], "embedding": [[1.0, 0.0], [0.0, 1.0]]})
    records, _, vectors = vd.table_records(table)
    assert vectors.dtype == np.float32 and vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert [r.id for r in records] == ["1", "2"]
    cast = _arrow_with_str_ids(table)
    assert cast.column("id").to_pylist() == ["1", "2"] and _arrow_with_str_ids(cast) is cast


def test_counts_add_and_the_report_counts_from_the_store() -> None:
    total = vd.BlockCounts(rows=3, new=2, repeats=1) + vd.BlockCounts(rows=2, unchanged=1, changed=1, batches=1)
    assert (total.rows, total.new, total.unchanged, total.changed, total.repeats, total.batches) == (5, 2, 1, 1, 1, 1)
    report = summarise("chroma", "c", total, before=10, after=12, seconds=1.0)
    assert (report.documents, report.written, report.skipped, report.duplicates) == (5, 3, 1, 1)


def test_the_actors_count_truncation_and_the_report_sums_it(caplog: pytest.LogCaptureFixture) -> None:
    # Issue 22 #10: a Ray ingest reported "n/a truncated" (the actors' counts never reached the report) and
    # each actor logged its own truncation lines.
    import logging

    long_text = " ".join(["word"] * 300)  # the mock provider keeps 256 words
    embedder = vd.RecordEmbedder(MOCK)
    with caplog.at_level(logging.WARNING, logger="vecembed"):
        first = embedder(_table({"text": np.array([long_text, "short", long_text + " x"], dtype=object)}))
        second = embedder(_table({"text": np.array([long_text + " y", "tiny"], dtype=object)}))
    assert caplog.records == []  # the actors say nothing: the driver reports the job's total once
    assert list(first[vd.TRUNCATED_COLUMN]) == [2, 0, 0] and list(second[vd.TRUNCATED_COLUMN]) == [1, 0]
    counts = vd.truncation_counts(_table(first)) + vd.truncation_counts(_table(second))
    assert summarise("chroma", "c", counts, before=0, after=0, seconds=1.0).truncated == 3
    # blocks nobody counted (a dataset embedded elsewhere) make the total unknown, not zero
    plain = _table({"text": np.array(["a"], dtype=object), "embedding": np.zeros((1, 16), np.float32)})
    unknown = counts + vd.truncation_counts(plain)
    assert summarise("chroma", "c", unknown, before=0, after=0, seconds=1.0).truncated is None


def test_the_datasink_refuses_a_local_folder_and_keeps_the_driver_provider_home() -> None:
    with pytest.raises(InvalidInputError, match="one process only"):
        vd.VecembedDatasink("qdrant", "docs", path="/tmp/somewhere")
    with pytest.raises(InvalidInputError, match="needs url="):
        vd.VecembedDatasink("chroma", "docs")
    with pytest.raises(InvalidInputError, match="batch_size"):
        vd.VecembedDatasink("chroma", "docs", url="http://127.0.0.1:1", batch_size=0)
    with vecembed.load_provider("mock", dimension=16) as provider:
        sink = vd.VecembedDatasink("chroma", "docs", url="http://127.0.0.1:1", provider=provider)
        copy = pickle.loads(pickle.dumps(sink))
    assert copy._provider is None and copy.store == sink.store and sink.get_name() == "Vecembed(chroma)"
    assert sink.min_rows_per_write == 128
    with pytest.raises(vecembed.ProviderUnavailableError, match="prepare"):
        sink.write([], None)


def test_ingest_dataset_wants_one_place() -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        vd.ingest_dataset(None, db="qdrant", collection="c", url="http://x", path="/tmp/x")
    with pytest.raises(InvalidInputError, match="in-memory store would vanish"):
        vd.ingest_dataset(None, db="qdrant", collection="c")


def test_actor_pools_and_readers_check_their_arguments(tmp_path: Any) -> None:
    pool = actor_pool(None, 1)
    assert pool.min_size == 1 and pool.max_size >= 1
    assert (actor_pool(3, 1).min_size, actor_pool(3, 1).max_size) == (3, 3)
    assert (actor_pool((1, 4), 1).min_size, actor_pool((1, 4), 1).max_size) == (1, 4)
    with pytest.raises(InvalidInputError, match="concurrency"):
        actor_pool(0, 1)
    with pytest.raises(InvalidInputError, match="non-empty list"):
        vd.read_dataset("docs.jsonl")
    with pytest.raises(InvalidInputError, match=r"unknown file type \.xml"):
        vd.read_dataset(["docs.xml"])
    with pytest.raises(InvalidInputError, match="no such file"):
        vd.read_dataset([str(tmp_path / "missing.csv")])


def test_the_cause_of_a_failed_job_is_found_in_rays_text() -> None:
    text = ("ray::MapWorker(MapBatches(RecordEmbedder)).submit()\n  File \"x.py\", line 3, in f\n"
            "vecembed.errors.InvalidInputError: document id='bad-7': the text must be a str, got None\n")
    assert vd.job_cause(RuntimeError(text)) == (
        "InvalidInputError", "document id='bad-7': the text must be a str, got None")
    assert vd.job_cause(ModelMismatchError("other model")) == ("ModelMismatchError", "other model")
    assert vd.job_cause(OSError("disk")) == ("OSError", "disk")


def test_the_cli_local_engine_reads_one_input(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from vecembed.cli import main

    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "b.txt").write_text("two\n")
    code = main(["ingest", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--db", "qdrant", "-c", "docs",
                 "--path", str(tmp_path / "data"), "--backend", "mock"])
    assert code != 0 and "several inputs need --engine ray" in capsys.readouterr().err


def test_the_ray_reader_reads_a_text_file_as_the_local_engine_does(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 21: one id rule. Ray's read_text split lines its own way and dropped the source; the local engine
    # gave PATH:LINE ids. Now both read through vecembed.records and address id-less lines by their text.
    from vecembed.cli.inputs import read_documents
    from vecembed.distributed.readers import _line_rows
    from vecembed.records import prepare_records

    monkeypatch.chdir(tmp_path)
    data = b"first\r\nsecond\x0bstill second\n\n   \nthird\rfourth\nfirst\n"
    (tmp_path / "notes.txt").write_bytes(data)
    local = read_documents("notes.txt")
    rows = _line_rows({str(tmp_path / "notes.txt"): "notes.txt"}, {"path": str(tmp_path / "notes.txt"), "bytes": data})
    assert [(r["text"], r["metadata"]) for r in rows] == [(d.text, dict(d.metadata)) for d in local]
    assert [r["text"] for r in rows] == ["first", "second\x0bstill second", "third", "fourth", "first"]
    # the same records, with the API's ids: the repeated line is one document
    api, repeats = prepare_records([{"text": d.text, "metadata": {"source": "notes.txt"}} for d in local])
    ray_records, states = vd.prepare_rows(rows)
    expected = [text_id(t) for t in ("first", "second\x0bstill second", "third", "fourth")]
    assert [r.id for r in ray_records[:4]] == [r.id for r in api] == expected
    assert repeats == 1 and states[-1] == vd.REPEAT
    assert [r.content_hash for r in ray_records[:4]] == [r.content_hash for r in api]
    with pytest.raises(InvalidInputError, match=r"notes.txt: not a text file \(a NUL byte at byte offset 1\)"):
        _line_rows({}, {"path": str(tmp_path / "notes.txt"), "bytes": b"a\x00"})
