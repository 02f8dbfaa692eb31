"""The store contract without a database server: identity policy, ids, metadata rule, engine, registry, progress.

The stores themselves are exercised by tests/integration/test_store_conformance.py; here the shared pieces
are pinned down one by one, on the reference ``memory`` store (vecembed.memory_store: no database client
needed) where a real store is needed.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.errors import (
    DimensionMismatchError,
    IngestError,
    InvalidInputError,
    ModelMismatchError,
    ProviderUnavailableError,
)
from vecembed.identity import (
    CollectionIdentity,
    IdentitySource,
    RecordedIdentity,
    Verdict,
    read_chroma_identity,
    verify_identity,
)
from vecembed.ingest import ingest
from vecembed.progress import Progress, progress_enabled
from vecembed.provider_record import ProviderRecord
from vecembed.providers.mock import MockProvider
from vecembed.records import content_hash, normalize_id, prepare_records, text_id, validate_metadata
from vecembed.retry import call_with_retry, is_transient_default

ROOT = Path(__file__).resolve().parents[2]


def ident(fp: str = "ve1-a", dim: int = 8, model: str = "m", **kw: Any) -> CollectionIdentity:
    return CollectionIdentity(fingerprint=fp, model=model, dimension=dim, **kw)


# -- identity ----------------------------------------------------------------------------------------


def test_identity_round_trips_through_metadata() -> None:
    one = ident(quantization="int8", vector_name="text")
    meta = {**one.to_metadata(), "owner": "me"}
    assert CollectionIdentity.from_metadata(meta) == one
    assert CollectionIdentity.from_metadata({"owner": "me"}) is None
    assert CollectionIdentity.without_identity(meta) == {"owner": "me"}
    assert all(isinstance(v, str | int) for v in one.to_metadata().values())  # every database takes them


def test_the_chroma_reader_reads_metadata_then_a_vecembed_function_config() -> None:
    config = {"name": "vecembed", "type": "known", "config": {
        "backend": "onnx", "model": "m", "options": {"model": "m", "quantize": "int8"}, "fingerprint": "ve1-cfg",
        "dimension": 8, "normalized": True, "rebuildable": True}}
    by_config = read_chroma_identity(None, {"embedding_function": config, "hnsw": {"space": "l2"}})
    # the function's config also says how to load the provider again (the same record the metadata keeps)
    recipe = ProviderRecord(backend="onnx", options={"model": "m", "quantize": "int8"})
    assert by_config == RecordedIdentity(
        ident("ve1-cfg", distance="euclid", quantization="int8", provider=recipe), IdentitySource.EMBEDDING_FUNCTION)
    assert (by_config.fingerprint, by_config.model, by_config.dimension) == ("ve1-cfg", "m", 8)
    # vecembed's metadata comes first; anything else records nothing
    assert read_chroma_identity(ident("ve1-meta").to_metadata(), {"embedding_function": config}) == RecordedIdentity(
        ident("ve1-meta"), IdentitySource.METADATA)
    nothing = RecordedIdentity(None, IdentitySource.NONE)
    for stored in ({"name": "default", "type": "known", "config": {}}, {"type": "legacy"}, None,
                   {**config, "name": "sentence_transformer"}, {**config, "config": {"model": "m"}}, "garbage"):
        assert read_chroma_identity({"owner": "me"}, {"embedding_function": stored}) == nothing
    assert read_chroma_identity(None, None) == nothing and nothing.fingerprint is None
    with pytest.raises(InvalidInputError):
        RecordedIdentity(None, IdentitySource.METADATA)
    # a config vouches for a provider: no adopt needed, and the claim copies it into the metadata
    assert verify_identity("c", ident("ve1-cfg"), recorded=ident("ve1-cfg"), source=IdentitySource.EMBEDDING_FUNCTION,
                           count=5) is Verdict.RECORD
    with pytest.raises(ModelMismatchError):
        verify_identity("c", ident("ve1-other"), recorded=ident("ve1-cfg"), source=IdentitySource.EMBEDDING_FUNCTION)


def test_verify_identity_policy() -> None:
    ours = ident()
    assert verify_identity("c", ours, recorded=ours) is Verdict.MATCH
    assert verify_identity("c", ours, recorded=None, count=0) is Verdict.RECORD
    assert verify_identity("c", ours, recorded=None, count=5, adopt=True) is Verdict.RECORD
    with pytest.raises(ModelMismatchError, match="adopt=True") as unrecorded:
        verify_identity("c", ours, recorded=None, count=5)
    assert "--adopt" in str(unrecorded.value)
    with pytest.raises(ModelMismatchError) as other:
        verify_identity("c", ours, recorded=ident(fp="ve1-b"))
    assert "ve1-a" in str(other.value) and "ve1-b" in str(other.value)
    assert "another variant" in str(other.value)  # same model name: says what kind of difference it is
    with pytest.raises(DimensionMismatchError) as dim:
        verify_identity("c", ours, recorded=ident(fp="ve1-b", dim=16))
    assert (dim.value.expected, dim.value.got) == (16, 8)
    with pytest.raises(DimensionMismatchError, match="without a vecembed record"):
        verify_identity("c", ours, recorded=None, stored_dimension=4, count=3, adopt=True)
    # On unit vectors cosine, dot and euclid rank alike; manhattan does not.
    assert verify_identity("c", ours, recorded=ours, stored_distance="Dot") is Verdict.MATCH
    assert verify_identity("c", ours, recorded=ours, stored_distance="l2") is Verdict.MATCH
    with pytest.raises(ModelMismatchError, match="manhattan"):
        verify_identity("c", ours, recorded=ours, stored_distance="manhattan")
    with pytest.raises(ModelMismatchError, match="dot"):
        verify_identity("c", ours, recorded=ours, stored_distance="dot", normalized=False)


def test_mismatch_message_shows_the_quantisation_that_differs() -> None:
    with pytest.raises(ModelMismatchError) as err:
        verify_identity("docs", ident(fp="ve1-a"), recorded=ident(fp="ve1-b", quantization="int8"))
    assert "int8" in str(err.value)


def test_identity_keys_are_spelled_in_one_source_file() -> None:
    literals = ('"vecembed:fingerprint"', '"vecembed:model"', '"vecembed:dimension"', '"vecembed:hash"')
    hits = {
        path.relative_to(ROOT).as_posix()
        for folder in ("vecembed", "adapters")
        for path in (ROOT / folder).rglob("*.py")
        if any(lit in path.read_text(encoding="utf-8") for lit in literals)
    }
    assert hits == {"vecembed/identity.py"}


def test_no_module_under_vecembed_imports_an_adapter() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+vecembed_(chroma|qdrant)\b|require\(\"vecembed_", re.MULTILINE)
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "vecembed").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


# -- ids, metadata, documents -------------------------------------------------------------------------


def test_ids_normalise_to_one_string() -> None:
    assert normalize_id(1, "x") == normalize_id("1", "x") == normalize_id(np.int64(1), "x") == "1"
    for bad in (None, 1.5, True, "", b"1"):
        with pytest.raises(InvalidInputError, match="at 3"):
            normalize_id(bad, "at 3")
    assert text_id("abc") == text_id("abc") != text_id("abd")
    # Pinned: changing the derivation would orphan every document ingested without an id.
    assert text_id("hello") == "778cc555-6711-50ba-af60-5f6a020b5b26"


def test_metadata_rule() -> None:
    assert validate_metadata({"a": 1, "b": None, "c": np.float32(0.5)}, "d", nested=False) == {"a": 1, "c": 0.5}
    assert validate_metadata({"tags": ["x", "y"], "n": {"k": 1}}, "d", nested=True) == {
        "tags": ["x", "y"], "n": {"k": 1}}
    for bad, match in [
        ({"": 1}, "non-empty str"),
        ({1: 1}, "non-empty str"),
        ({"vecembed:id": 1}, "reserved"),
        ({"x": float("inf")}, "finite"),
        ({"x": {1, 2}}, "set"),
        ([("x", 1)], "must be a dict"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            validate_metadata(bad, "documents[4]", nested=True)
    with pytest.raises(InvalidInputError, match="encode other values as JSON"):
        validate_metadata({"tags": ["x"]}, "documents[0]", nested=False)


def test_document_forms_and_content_hash() -> None:
    records, dups = prepare_records([
        "plain text",
        ("id-1", "a pair"),
        {"id": 7, "text": "a dict", "metadata": {"k": "v"}},
        vecembed.Document("d", "a Document", {"k": 1}),
        "plain text",
    ])
    assert [r.id for r in records] == [text_id("plain text"), "id-1", "7", "d"] and dups == 1
    assert records[2].metadata == {"k": "v"}
    assert records[0].content_hash == content_hash(b"plain text", {})
    assert content_hash(b"t", {"a": 1, "b": 2}) == content_hash(b"t", {"b": 2, "a": 1})
    assert content_hash(b"t", {"a": 1}) != content_hash(b"t", {"a": "1"})
    with pytest.raises(InvalidInputError, match=r"documents\[1\].*found 'id', 'body'"):
        prepare_records(["ok", {"id": 1, "body": "x"}])
    with pytest.raises(InvalidInputError, match=r"documents\[0\].*decode bytes"):
        prepare_records([b"bytes"])
    # NUL: one rule for every store (PostgreSQL refuses it; elsewhere it is binary junk), text and metadata alike.
    with pytest.raises(InvalidInputError, match=r"documents\[1\]: the text has a NUL character at 3"):
        prepare_records(["fine", "bad\x00text"])
    with pytest.raises(InvalidInputError, match=r"documents\[0\].*metadata\['k'\] has a NUL"):
        prepare_records([{"text": "t", "metadata": {"k": "a\x00b"}}])


# -- the engine on the reference memory store -----------------------------------------------------------


@pytest.fixture
def store() -> Any:
    with vecembed.load_provider("mock", dimension=16) as provider, vecembed.open_store(
        "memory", "docs", provider, retry_backoff=0.0
    ) as opened:
        yield opened


def _watch_overlap(store: Any, monkeypatch: pytest.MonkeyPatch, work: Any) -> list[bool]:
    """Ingest 5 batches with ``work`` as the database's write; say, for each embed call, whether a write was busy."""
    writing = threading.Event()
    overlapped: list[bool] = []
    real_write = store.backend.write
    real_embed = store.provider.embed_documents_counted

    def write(records: Any, vectors: Any) -> None:
        writing.set()
        work()
        real_write(records, vectors)
        writing.clear()

    def embed(texts: Any) -> Any:
        # A write in flight shows within the wait; an engine that waited for it first would see none.
        overlapped.append(writing.wait(timeout=0.3) if overlapped else writing.is_set())
        return real_embed(texts)

    monkeypatch.setattr(store.backend, "write", write)
    monkeypatch.setattr(store.provider, "embed_documents_counted", embed)
    # The engine itself, with one batch per chunk: one embed call per write.
    report = ingest(store.backend, store.provider, [f"text {i}" for i in range(50)], caller=store.caller,
                    before_first_write=store.claim, batch_size=10, chunk_size=10)
    assert report.batches == 5 and report.written == 50 and store.count() == 50
    return overlapped


def test_writes_that_wait_overlap_the_next_embedding(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first write runs inline and is timed: it mostly waits (a server, a disk), so the rest overlap.
    assert _watch_overlap(store, monkeypatch, lambda: time.sleep(0.05)) == [False, False, True, True, True]


def test_writes_that_are_cpu_work_run_in_turn(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def burn() -> None:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass

    # CPU work in this process would only compete with the embedding's threads: no overlap.
    assert _watch_overlap(store, monkeypatch, burn) == [False] * 5


def test_truncation_is_counted_per_call(store: Any) -> None:
    long_text = " ".join(["word"] * 400)  # the mock provider keeps 256 words
    first = store.ingest([long_text, "short"])
    assert first.truncated == 1
    second = store.ingest([long_text + " more", long_text + " again", "short"])
    assert second.truncated == 2 and second.skipped == 1


def test_an_ingest_logs_truncation_once_with_its_total(store: Any, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Issue 22 #10: the shared pipeline warned once per embed call, dozens of lines in one ingest.
    import logging

    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from vecembed.pipeline import TextPipeline

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "[PAD]": 1, "w": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    pipe = TextPipeline(tokenizer, lambda b: np.ones((*b.input_ids.shape, 16), dtype=np.float32) + b.input_ids[
        ..., None], dimension=16, max_tokens=4)
    monkeypatch.setattr(store.provider, "embed_documents_counted", pipe.embed_counted)
    docs = [" ".join(["w"] * (3 + i % 4)) + f" {i}" for i in range(40)]  # 1 in 4 fits in 4 tokens
    with caplog.at_level(logging.DEBUG, logger="vecembed"):
        report = store.ingest(iter(docs), batch_size=1)  # a stream: chunks of 8, five embed calls
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert report.truncated == 30 and report.batches == 40 and pipe.stats.batches >= 5
    assert warnings == [f"{store.db} collection 'docs': 30 of 40 documents embedded were longer than the model's "
                        f"{store.provider.info.max_tokens} tokens and were truncated (IngestReport.truncated)"]


def test_retries_give_up_and_report_what_is_committed(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store.backend.write
    calls = {"n": 0}

    def dying(records: Any, vectors: Any) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:
            raise ConnectionRefusedError("server gone (injected)")
        real_write(records, vectors)

    monkeypatch.setattr(store.backend, "write", dying)
    with pytest.raises(IngestError, match="20 are committed") as err:
        store.ingest([f"t{i}" for i in range(50)], batch_size=10)
    assert isinstance(err.value.__cause__, ProviderUnavailableError)
    assert "after 3 retries" in str(err.value) and err.value.report.retries == 3
    assert calls["n"] == 6 and store.count() == 20


def test_a_provider_of_the_wrong_size_writes_nothing(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.provider, "embed_documents_counted",
                        lambda texts: vecembed.EmbedResult(np.zeros((len(texts), 3), dtype=np.float32)))
    with pytest.raises(DimensionMismatchError, match="shape"):
        store.ingest(["a", "b"])
    assert store.count() == 0


def test_a_users_own_provider_without_counts(store: Any) -> None:
    inner = store.provider

    class Plain:
        info = inner.info
        embed_documents = staticmethod(inner.embed_documents)
        embed_queries = staticmethod(inner.embed_queries)
        embed_query = staticmethod(inner.embed_query)
        health_check = staticmethod(inner.health_check)

        def close(self) -> None: ...
        def __enter__(self) -> Any: return self
        def __exit__(self, *exc: object) -> None: ...

    with vecembed.open_store("memory", "plain", Plain()) as plain:
        report = plain.ingest(["a", "b"])
        assert report.written == 2 and report.truncated is None and "n/a truncated" in str(report)


def test_engine_arguments_are_checked(store: Any) -> None:
    for kwargs in ({"batch_size": 0}, {"batch_size": True}):
        with pytest.raises(InvalidInputError, match="batch_size"):
            store.ingest(["a"], **kwargs)
    for docs in ("one string", {"a": "b"}, 42):
        with pytest.raises(InvalidInputError, match="documents must be"):
            store.ingest(docs)
    with pytest.raises(InvalidInputError, match="query must be a str"):
        store.search(["a list"])
    with pytest.raises(InvalidInputError):
        store.delete("abc")


# -- registry, errors, retry, progress ----------------------------------------------------------------


def test_registry_lists_the_stores_and_names_the_valid_ones() -> None:
    assert {"chroma", "memory", "qdrant"} <= set(vecembed.available_stores())
    with pytest.raises(InvalidInputError, match="unknown database 'pgvectorr'; available: chroma"):
        vecembed.open_store("pgvectorr", "docs", vecembed.load_provider("mock"))
    with pytest.raises(InvalidInputError, match="unknown database 'memroy'; available: chroma, memory"):
        vecembed.open_store("memroy", "docs", vecembed.load_provider("mock"))
    with pytest.raises(InvalidInputError, match="one of path=, url= or client="):
        vecembed.open_store("qdrant", "docs", vecembed.load_provider("mock"), path="x", url="http://y")


def test_stores_fit_the_protocol() -> None:
    from vecembed.store import VectorStore

    with vecembed.load_provider("mock") as p:
        with vecembed.open_store("memory", "proto", p) as memory:
            assert isinstance(memory.backend, VectorStore)
        pytest.importorskip("qdrant_client")
        pytest.importorskip("chromadb")
        for db in ("qdrant", "chroma"):
            with vecembed.open_store(db, "proto", p) as s:
                assert isinstance(s.backend, VectorStore)


def test_call_with_retry() -> None:
    waits: list[float] = []
    attempts = {"n": 0}

    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise TimeoutError("slow")
        return "ok"

    assert call_with_retry(flaky, retries=3, backoff=0.1, sleep=waits.append) == "ok"
    assert len(waits) == 2 and 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2
    with pytest.raises(ValueError):
        call_with_retry(lambda: int("x"), retries=3, backoff=0.1, sleep=waits.append)
    assert is_transient_default(ConnectionResetError()) and not is_transient_default(ValueError())


def test_progress_only_where_a_person_watches(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("VECEMBED_NO_PROGRESS", raising=False)
    assert progress_enabled(None, io.StringIO()) is False  # not a terminal
    assert progress_enabled(True) is True and progress_enabled(False) is False
    monkeypatch.setenv("VECEMBED_NO_PROGRESS", "1")
    assert progress_enabled(True) is False  # the environment wins, asked or not
    monkeypatch.delenv("VECEMBED_NO_PROGRESS")
    monkeypatch.setitem(sys.modules, "rich", None)  # rich missing: plain lines
    with Progress("ingest", 10, enabled=True) as bar:
        bar.advance(4)
        bar.advance(6)
    err = capsys.readouterr().err
    assert "ingest: 4/10" in err and "ingest: 10/10" in err
    with Progress("quiet", 10) as bar:
        bar.advance(10)
    assert capsys.readouterr().err == ""


def test_library_ingest_draws_no_bar(store: Any, capsys: Any) -> None:
    store.ingest([f"t{i}" for i in range(30)])
    assert capsys.readouterr().err == ""


def test_import_vecembed_stays_light() -> None:
    code = ("import sys, vecembed; heavy = ['torch', 'onnxruntime', 'transformers', 'chromadb', 'qdrant_client']; "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_failed_overlapped_write_stops_the_queued_ones(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store.backend.write
    calls = {"n": 0}

    def waiting_then_failing(records: Any, vectors: Any) -> None:
        calls["n"] += 1
        time.sleep(0.02)  # a write that waits: the engine overlaps (and queues) the later ones
        if calls["n"] == 3:
            raise RuntimeError("the 3rd write fails (injected)")
        real_write(records, vectors)

    monkeypatch.setattr(store.backend, "write", waiting_then_failing)
    with pytest.raises(IngestError, match="20 are committed") as err:
        ingest(store.backend, store.provider, [f"t{i}" for i in range(80)], caller=store.caller,
               before_first_write=store.claim, batch_size=10, chunk_size=40)
    assert err.value.report.written == 20 == store.count()
    assert calls["n"] == 3  # the writes queued behind the failure never started


def test_two_stores_claiming_one_collection_at_once_cannot_both_write() -> None:
    # Issue 10 #15, through open_store: two threads, two models, one empty collection made by other code (so
    # nothing recorded; both would record their own model): exactly one claims it.
    from vecembed.memory_store import MemoryDatabase

    for trial in range(10):
        client = MemoryDatabase()
        client.create_collection("race", dimension=16)
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def ingest(seed: int, client: Any = client, outcomes: list[str] = outcomes,
                   barrier: threading.Barrier = barrier) -> None:
            with vecembed.load_provider("mock", dimension=16, seed=seed) as p:
                store = vecembed.open_store("memory", "race", p, client=client)
                record = store.backend.record_identity

                def slow_record(identity: Any, record: Any = record) -> None:
                    time.sleep(0.02)  # a server's round trip: long enough for the other thread to interleave
                    record(identity)

                store.backend.record_identity = slow_record  # type: ignore[method-assign]
                barrier.wait()
                try:
                    store.ingest([(f"s{seed}", f"model {seed}")])
                    outcomes.append("wrote")
                except ModelMismatchError:
                    outcomes.append("refused")

        threads = [threading.Thread(target=ingest, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["refused", "wrote"], (trial, outcomes)
        race = client.collection("race")
        assert race is not None and race.count() == 1


@pytest.mark.parametrize(("kind", "sizes"), [("chroma", [1024, 1024, 452]), ("qdrant", [128] * 19 + [68])])
def test_a_store_may_prefer_larger_writes(kind: str, sizes: list[int], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # An embedded Chroma writes 1,024 documents a call (its per-call cost is CPU here); others keep 128;
    # a batch_size the caller names wins.
    pytest.importorskip("chromadb" if kind == "chroma" else "qdrant_client")
    with vecembed.open_store(kind, "prefs", MockProvider(dimension=8), path=str(tmp_path)) as s:
        written: list[int] = []
        real = s.backend.write
        monkeypatch.setattr(s.backend, "write", lambda records, vectors: (written.append(len(records)),
                                                                         real(records, vectors)))
        assert s.ingest([f"text {i}" for i in range(2500)]).written == 2500
        assert written == sizes
        written.clear()
        assert s.ingest([f"more {i}" for i in range(300)], batch_size=100).written == 300
        assert written == [100, 100, 100] and s.count() == 2800
