"""The Ray sink's and actors' work against a real Chroma server, run in this process (no cluster).

In a Ray job these run inside the workers, where coverage does not see them; the slow tests in
test_distributed.py run them there. Here: the driver's identity step, the actors' look-up of stored
hashes, a write task's blocks and the report from the store's count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="pip install 'vecembed[ray]'")
pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

import vecembed
from vecembed import distributed as vd

pytestmark = pytest.mark.integration

MOCK = vd.ProviderSpec(backend="mock", options={"dimension": 16})


def _block(columns: dict[str, Any]) -> Any:
    from ray.data.block import BlockAccessor

    return BlockAccessor.batch_to_block(columns)


def _rows(n: int, start: int = 0, suffix: str = "") -> Any:
    return _block({"id": np.array([f"d{i}" for i in range(start, start + n)], dtype=object),
                   "text": np.array([f"document {i}{suffix}" for i in range(start, start + n)], dtype=object)})


def test_a_write_task_checks_writes_and_the_report_counts_from_the_store(chroma_server: Any) -> None:
    from ray.data.datasource.datasink import WriteResult

    url = chroma_server.url
    with vecembed.load_provider("mock", dimension=16) as provider:
        sink = vd.VecembedDatasink("chroma", "sink-parts", url=url, provider=provider, batch_size=2)
        sink.on_write_start()  # the driver: creates the collection with the provider's identity
        sink.prepare()  # once only
        assert sink.identity is not None and sink.identity.fingerprint == provider.info.fingerprint
        spec = vd.StoreSpec(db="chroma", collection="sink-parts", url=url)
        embedder = vd.RecordEmbedder(MOCK, store=spec)
        first = embedder(_rows(5))
        assert list(first["vecembed_state"]) == [vd.NEW] * 5
        counts = sink.write([_block(first)], None)
        assert (counts.rows, counts.new, counts.batches) == (5, 5, 3)
        sink.on_write_complete(WriteResult(num_rows=5, size_bytes=0, write_returns=[counts]))
        assert sink.report is not None and (sink.report.documents, sink.report.written) == (5, 5)

        # the next job: the actors find three stored unchanged, one changed, two new, and embed only those
        sink = vd.VecembedDatasink("chroma", "sink-parts", url=url, provider=provider)
        sink.prepare()
        block = vd.record_columns(*_prepared(embedder, 2, 6, changed="d4"))
        counts = sink.write([_block(block)], None)
        sink.on_write_complete(WriteResult(num_rows=6, size_bytes=0, write_returns=[counts]))
        report = sink.report
        assert report is not None
        assert (report.documents, report.written, report.skipped) == (6, 4, 2)  # d5, d6, d7 new + d4 changed
        with vecembed.open_store("chroma", "sink-parts", provider, url=url) as store:
            assert store.count() == 8
            assert store.search("document 4 changed", k=1)[0].text == "document 4 changed"


def _prepared(embedder: Any, start: int, n: int, *, changed: str) -> Any:
    rows = [{"id": f"d{i}", "text": f"document {i}" + (" changed" if f"d{i}" == changed else "")}
            for i in range(start, start + n)]
    out = embedder(_block({"id": np.array([r["id"] for r in rows], dtype=object),
                           "text": np.array([r["text"] for r in rows], dtype=object)}))
    records, states, vectors = vd.table_records(_block(out))
    assert states == [vd.UNCHANGED, vd.UNCHANGED, vd.CHANGED, vd.NEW, vd.NEW, vd.NEW]
    assert not vectors[0].any() and vectors[2].any()  # unchanged documents are not embedded again
    return records, states, vectors


def test_a_write_task_refuses_a_replaced_or_missing_collection(chroma_server: Any) -> None:
    url = chroma_server.url
    spec = vd.StoreSpec(db="chroma", collection="sink-gone", url=url)
    with vecembed.load_provider("mock", dimension=16) as provider:
        identity = vecembed.CollectionIdentity.of(provider.info)
        backend, call = spec.open()
        with pytest.raises(vecembed.ProviderUnavailableError, match="does not exist"):
            vd.check_collection(backend, call, identity, True)
        with vecembed.load_provider("mock", dimension=8) as other, \
                vecembed.open_store("chroma", "sink-gone", other, url=url) as store:
            store.ingest(["x"])
        with pytest.raises(vecembed.DimensionMismatchError):
            vd.check_collection(backend, call, identity, True)
        chroma_server.client().create_collection("sink-bare")
        bare, bare_call = vd.StoreSpec(db="chroma", collection="sink-bare", url=url).open()
        with pytest.raises(vecembed.ModelMismatchError, match="records no vecembed identity"):
            vd.check_collection(bare, bare_call, identity, True)
