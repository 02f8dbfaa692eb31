"""The Ray path with a sparse provider, in this process (no cluster): specs, the fingerprint check, the writes
and the refusals.

A Ray job runs these pieces inside its workers; tests/integration/test_distributed_sparse.py (slow) runs them
there. Here: the mock provider, BM25, the memory store and Qdrant's local mode.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")

from sparse_helpers import HashedTermsProvider

import vecembed
from vecembed import distributed as vd
from vecembed.distributed import sink as sink_module
from vecembed.distributed.specs import load_sparse_on_driver
from vecembed.errors import InvalidInputError, ModelMismatchError, UnsupportedError
from vecembed.sparse import SparseEmbeddingProvider, SparseModelInfo, SparseVector
from vecembed.store import available_sparse_stores
from vecembed.types import HealthReport

MOCK = vd.ProviderSpec(backend="mock", options={"dimension": 16})

#: Sorted by length: the order the in-process engine writes in (a database returns tied hits in write order).
DOCS = [
    {"id": "bread", "text": "knead the dough and bake the bread"},
    {"id": "apple", "text": "apples grow on trees in the orchard"},
    {"id": "pasta", "text": "boil salted water and cook the pasta"},
    {"id": "river", "text": "the river floods the valley every spring"},
    {"id": "train", "text": "the night train reaches Rome in the morning"},
]


def _table(columns: dict[str, Any]) -> Any:
    from ray.data.block import BlockAccessor

    return BlockAccessor.batch_to_block(columns)


def _rows(docs: Sequence[dict[str, str]]) -> Any:
    return _table({"id": np.array([d["id"] for d in docs], dtype=object),
                   "text": np.array([d["text"] for d in docs], dtype=object)})


class CountingSparse:
    """BM25, counting the texts it encodes (the writes must encode only what they write)."""

    def __init__(self, inner: SparseEmbeddingProvider) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    @property
    def info(self) -> SparseModelInfo:
        return self.inner.info

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        self.encoded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> SparseVector:
        return self.inner.embed_query(text)

    def health_check(self) -> HealthReport:
        return self.inner.health_check()

    def close(self) -> None:
        self.inner.close()


# -- what travels to the workers ----------------------------------------------------------------------


def test_a_sparse_spec_travels_and_rebuilds_the_drivers_provider() -> None:
    loaded = load_sparse_on_driver("memory", "bm25", {"language": "german", "k1": 1.5})
    assert loaded is not None
    spec, provider, owned = loaded
    assert owned and spec.name == "bm25" and dict(spec.options) == {"language": "german", "k1": 1.5}
    assert spec.fingerprint == provider.info.fingerprint
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec
    with _closing(copy.load()) as rebuilt:
        assert rebuilt.info.fingerprint == provider.info.fingerprint
        assert rebuilt.embed_documents(["Äpfel wachsen"]) == provider.embed_documents(["Äpfel wachsen"])
    provider.close()


def _closing(provider: SparseEmbeddingProvider) -> Any:
    import contextlib

    return contextlib.closing(provider)


def test_a_worker_with_another_term_space_refuses_to_write() -> None:
    spec = vd.SparseSpec(name="bm25", options={"language": "english"}, fingerprint="bm25-v0-another")
    with pytest.raises(ModelMismatchError, match=r"sparse provider 'bm25'.*the driver bm25-v0-another") as caught:
        spec.load()
    assert caught.value.expected == "bm25-v0-another" and caught.value.got.startswith("bm25-v")
    # the worker's cache loads (and checks) once per process
    good = load_sparse_on_driver("memory", "bm25")
    assert good is not None
    first = sink_module._worker_sparse(good[0])
    assert sink_module._worker_sparse(good[0]) is first
    assert first.info.fingerprint == good[1].info.fingerprint


def test_a_registered_provider_object_travels_by_its_name_and_options() -> None:
    with _closing(vecembed.load_sparse_provider("bm25", k1=1.5, stop_words=False)) as provider:
        loaded = load_sparse_on_driver("memory", provider)
        assert loaded is not None
        spec, same, owned = loaded
        assert same is provider and not owned  # the caller's: not closed here
        assert spec.name == "bm25" and spec.options["k1"] == 1.5 and spec.options["stop_words"] is False
        assert spec.load().info.fingerprint == provider.info.fingerprint


def test_a_provider_that_workers_cannot_rebuild_is_refused_by_name() -> None:
    # The dense path never ships a provider object to the workers (they load it by name); the sparse one neither.
    with pytest.raises(UnsupportedError, match=r"cannot be rebuilt in Ray's workers.*sparse= a registered name "
                                               r"\(bm25\) with its options as sparse_options=.*nothing was written"):
        load_sparse_on_driver("memory", HashedTermsProvider())

    class Impostor(HashedTermsProvider):  # claims BM25's name, but its vectors are its own
        @property
        def info(self) -> SparseModelInfo:
            return SparseModelInfo(name="bm25-english", fingerprint="not-bm25", options={})

    with pytest.raises(UnsupportedError, match="ModelMismatchError"):
        load_sparse_on_driver("memory", Impostor())


@pytest.mark.parametrize(
    ("sparse", "options", "message"),
    [
        (3, None, "sparse must be a sparse provider's name"),
        (None, {"language": "german"}, "sparse_options needs sparse="),
        ("nope", None, "unknown sparse provider 'nope'; available: bm25"),
    ],
)
def test_bad_sparse_arguments_are_refused(sparse: Any, options: Any, message: str) -> None:
    with pytest.raises((InvalidInputError, KeyError), match=message):
        load_sparse_on_driver("memory", sparse, options)
    assert load_sparse_on_driver("memory", None) is None


def test_options_beside_a_built_provider_are_refused() -> None:
    with _closing(vecembed.load_sparse_provider("bm25")) as provider, \
            pytest.raises(InvalidInputError, match="sparse_options go with a sparse provider's name"):
        load_sparse_on_driver("memory", provider, {"k1": 1.2})


def test_the_datasink_takes_sparse_and_keeps_the_drivers_provider_home() -> None:
    with pytest.raises(InvalidInputError, match="sparse must be"):
        vd.VecembedDatasink("qdrant", "docs", url="http://127.0.0.1:1", sparse=3)  # type: ignore[arg-type]
    with _closing(vecembed.load_sparse_provider("bm25")) as provider:
        sink = vd.VecembedDatasink("qdrant", "docs", url="http://127.0.0.1:1", sparse=provider)
        copy = pickle.loads(pickle.dumps(sink))
    assert sink._sparse is provider and copy._sparse is None and copy.sparse_spec is None


# -- the writes ---------------------------------------------------------------------------------------


def test_the_writes_encode_only_new_and_changed_records_and_search_as_the_engine() -> None:
    with vecembed.load_provider("mock", dimension=16) as dense, \
            _closing(vecembed.load_sparse_provider("bm25")) as bm25, \
            vecembed.open_store("memory", "ray-sparse-parts", dense, sparse=bm25) as store, \
            vecembed.open_store("memory", "engine-sparse-parts", dense, sparse=bm25) as engine:
        store.claim()
        counting = CountingSparse(bm25)
        embedder = vd.RecordEmbedder(MOCK)

        def write(docs: Sequence[dict[str, str]]) -> vd.BlockCounts:
            records, states, vectors = vd.table_records(_table(embedder(_rows(docs))))
            return vd.write_records(store.backend, store.caller, records, states, vectors, batch_size=2,
                                    sparse=counting)

        first = write(DOCS)
        engine.ingest(DOCS)
        assert (first.new, first.batches) == (5, 3) and len(counting.encoded) == 5
        # DOCS are sorted by length, the order the engine writes in, so even tied hits (in the order they were
        # written) come in one order
        for query in ("the train to Rome", "apples and pasta", "water", "bread dough", "spring morning"):
            for mode in ("sparse", "hybrid"):
                ours = [(h.id, h.text) for h in store.search(query, k=5, mode=mode)]
                assert ours == [(h.id, h.text) for h in engine.search(query, k=5, mode=mode)], (query, mode)
        assert store.search("bread dough", k=1, mode="sparse")[0].id == "bread"

        again = write(DOCS)  # a re-run: everything stored unchanged, nothing encoded or written
        assert (again.unchanged, again.new, again.changed, again.batches) == (5, 0, 0, 0)
        assert len(counting.encoded) == 5

        changed = [{"id": "river", "text": "the glacier feeds the river"} if d["id"] == "river" else d for d in DOCS]
        third = write(changed)
        engine.ingest(changed)
        assert (third.changed, third.unchanged) == (1, 4) and counting.encoded[5:] == ["the glacier feeds the river"]
        hits = store.search("glacier", k=5, mode="sparse")
        assert [h.id for h in hits] == ["river"] == [h.id for h in engine.search("glacier", k=5, mode="sparse")]
        assert not store.search("floods", k=5, mode="sparse")  # the old text's terms are gone with it
        assert store.count() == 5


def test_a_write_task_checks_the_sparse_half_of_the_identity() -> None:
    with vecembed.load_provider("mock", dimension=16) as dense, \
            _closing(vecembed.load_sparse_provider("bm25")) as bm25:
        with vecembed.open_store("memory", "written-with-bm25", dense, sparse=bm25) as store:
            store.ingest(DOCS[:2])
            dense_only = vecembed.CollectionIdentity.of(dense.info)
            with pytest.raises(ModelMismatchError, match="an ingest without them would leave records without"):
                vd.check_collection(store.backend, store.caller, dense_only, True)
            vd.check_collection(store.backend, store.caller, store.identity, True)  # the job's own: passes
        with vecembed.open_store("memory", "written-dense", dense) as store:
            store.ingest(DOCS[:2])
            with_bm25 = vecembed.CollectionIdentity.of(dense.info, sparse=bm25.info)
            with pytest.raises(ModelMismatchError, match="created without sparse vectors"):
                vd.check_collection(store.backend, store.caller, with_bm25, True)


# -- the refusals of ingest_dataset, before any job ---------------------------------------------------


def test_sparse_on_a_store_without_sparse_vectors_is_refused_naming_the_ones_that_keep_them(tmp_path: Path) -> None:
    pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
    with pytest.raises(UnsupportedError, match="the chroma store keeps no sparse vectors") as caught:
        vd.ingest_dataset(None, db="chroma", collection="docs", path=str(tmp_path / "chroma"), backend="mock",
                          provider_options={"dimension": 16}, sparse="bm25")
    assert f"stores that keep them: {', '.join(available_sparse_stores())}" in str(caught.value)
    import chromadb

    assert chromadb.PersistentClient(path=str(tmp_path / "chroma")).list_collections() == []  # nothing made
    # refused before any model loads: a model that does not exist is never looked for
    with pytest.raises(UnsupportedError, match="the chroma store keeps no sparse vectors"):
        vd.ingest_dataset(None, db="chroma", collection="docs", path=str(tmp_path / "chroma"), backend="onnx",
                          model=str(tmp_path / "no-such-model"), sparse="bm25")
    sink = vd.VecembedDatasink("chroma", "docs", url="http://127.0.0.1:9", backend="onnx",
                               model=str(tmp_path / "no-such-model"), sparse="bm25")
    with pytest.raises(UnsupportedError, match="the chroma store keeps no sparse vectors"):
        sink.prepare()  # the sink used on its own: the same refusal, before its model or server is touched


@pytest.fixture
def qdrant_folder(tmp_path: Path) -> str:
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    return str(tmp_path / "qdrant")


def test_a_ray_ingest_into_a_collection_of_the_other_kind_gives_the_engines_error(qdrant_folder: str) -> None:
    job = {"backend": "mock", "provider_options": {"dimension": 16}, "path": qdrant_folder, "db": "qdrant"}
    with vecembed.load_provider("mock", dimension=16) as dense:
        with vecembed.open_store("qdrant", "hybrid", dense, path=qdrant_folder, sparse="bm25") as store:
            store.ingest(DOCS)
        with vecembed.open_store("qdrant", "dense", dense, path=qdrant_folder) as store:
            store.ingest(DOCS)
        # the in-process engine's errors, for the same two mistakes
        with vecembed.open_store("qdrant", "hybrid", dense, path=qdrant_folder) as store, \
                pytest.raises(ModelMismatchError) as without:
            store.ingest(DOCS[:1])
        with pytest.raises(ModelMismatchError) as gaining:
            vecembed.open_store("qdrant", "dense", dense, path=qdrant_folder, sparse="bm25")

    # ds=None: each is refused on the driver, before any dataset is read
    with pytest.raises(ModelMismatchError) as caught:
        vd.ingest_dataset(None, collection="hybrid", **job)  # type: ignore[arg-type]
    assert str(caught.value) == str(without.value) and "pass the sparse provider" in str(caught.value)
    with pytest.raises(ModelMismatchError) as caught:
        vd.ingest_dataset(None, collection="dense", sparse="bm25", **job)  # type: ignore[arg-type]
    assert str(caught.value) == str(gaining.value) and "created without sparse vectors" in str(caught.value)
    with pytest.raises(ModelMismatchError, match="sparse vectors of two term spaces cannot be compared"):
        vd.ingest_dataset(None, collection="hybrid", sparse="bm25", sparse_options={"k1": 2.0},
                          **job)  # type: ignore[arg-type]
    with vecembed.open_store("qdrant", "hybrid", path=qdrant_folder, sparse="bm25") as store:
        assert store.count() == 5  # nothing was written by the refused jobs


# -- the command line ---------------------------------------------------------------------------------


def test_the_cli_passes_sparse_to_the_ray_engine(
    qdrant_folder: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import json

    import ray

    from vecembed.cli import main

    calls: list[dict[str, Any]] = []
    reports: list[vecembed.IngestReport] = []

    def fake_ingest(ds: Any, **kwargs: Any) -> vecembed.IngestReport:
        calls.append(kwargs)
        if not reports:  # the first job writes what the CLI then reports; later ones only show their arguments
            with vecembed.load_provider("mock", dimension=16) as dense, \
                    _closing(vecembed.load_sparse_provider(kwargs["sparse"], **kwargs["sparse_options"])) as bm25, \
                    vecembed.open_store("qdrant", kwargs["collection"], dense, path=kwargs["path"],
                                        sparse=bm25) as store:
                reports.append(store.ingest(DOCS))
        return reports[0]

    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # no cluster: the job itself is faked
    monkeypatch.setattr(vd, "ingest_dataset", fake_ingest)
    monkeypatch.setattr(vd, "read_dataset", lambda inputs: inputs)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    args = ["ingest", str(docs), "--db", "qdrant", "-c", "docs", "--path", str(tmp_path), "--engine", "ray",
            "--backend", "mock", "--opt", "dimension=16", "--sparse", "bm25", "--sparse-opt", "language=german"]
    assert main([*args, "--json"]) == 0
    assert calls[0]["sparse"] == "bm25" and calls[0]["sparse_options"] == {"language": "german"}
    out = json.loads(capsys.readouterr().out)
    assert (out["engine"], out["count"], out["sparse"]) == ("ray", 5, "bm25-german")
    assert out["sparse_fingerprint"] == vecembed.load_sparse_provider("bm25", language="german").info.fingerprint
    assert main(args[:-4]) == 0  # no --sparse: a dense job; the collection's identity check is the job's
    assert calls[1]["sparse"] is None and calls[1]["sparse_options"] == {}
    code = main([*args[:-4], "--sparse-opt", "k1=1.2"])
    assert code != 0 and "--sparse-opt needs --sparse NAME" in capsys.readouterr().err and len(calls) == 2

