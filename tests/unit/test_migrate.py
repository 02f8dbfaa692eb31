"""vecembed.migrate on the memory store with mock providers: copy, resume, catch-up, switch, rollback, drop."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed import migration as migrate_module
from vecembed.errors import CollectionNotFoundError, IngestError, InvalidInputError
from vecembed.memory_store import MemoryDatabase
from vecembed.migration import MigrationReport, default_target_name
from vecembed.progress import Progress
from vecembed.types import EmbedResult


class Counting(vecembed.DelegatingProvider):
    """Counts the documents it embeds; raises once ``fail_after`` documents were embedded."""

    def __init__(self, inner: Any, fail_after: int | None = None) -> None:
        super().__init__(inner, close_provider=False)
        self.embedded = 0
        self.fail_after = fail_after

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        if self.fail_after is not None and self.embedded + len(texts) > self.fail_after:
            raise OSError("the model server went away")  # not transient for the engine: the ingest stops
        self.embedded += len(texts)
        return super().embed_documents_counted(texts)


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{i}",
            "text": f"document {i} about {'cats' if i % 2 else 'dogs'}",
            "metadata": {"n": i, "tags": ["a", "b"] if i % 3 else [], "nested": {"k": i % 5}},
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def db() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def old() -> Iterator[vecembed.EmbeddingProvider]:
    with vecembed.load_provider("mock", dimension=16) as provider:
        yield provider


@pytest.fixture
def new() -> Iterator[Counting]:
    with vecembed.load_provider("mock", dimension=24) as provider:
        yield Counting(provider)


def seed(db: MemoryDatabase, provider: vecembed.EmbeddingProvider, n: int = 300) -> None:
    with vecembed.open_store("memory", "docs-v1", provider, client=db) as store:
        store.ingest(docs(n), batch_size=64)
    db.set_alias("docs", "docs-v1")


def contents(db: MemoryDatabase, collection: str) -> dict[str, tuple[str, Any, str]]:
    found = db.collection(collection)
    assert found is not None
    return {r.id: (r.text, r.metadata, r.content_hash) for batch in found.scan(100) for r in batch}


def vectors(db: MemoryDatabase, collection: str) -> dict[str, np.ndarray]:
    found = db.collection(collection)
    assert found is not None
    return {i: found._vectors[found._position[i]].copy() for i in found._ids}


def test_migrate_copies_everything_into_the_new_model_and_moves_the_alias(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    seed(db, old)
    report = vecembed.migrate("memory", "docs", new, client=db, batch_size=50)
    target = default_target_name("docs-v1", new.info)
    assert isinstance(report, MigrationReport)
    assert (report.source, report.target, report.alias, report.switched) == ("docs-v1", target, "docs", True)
    assert (report.documents, report.embedded, report.skipped, report.deleted) == (300, 300, 0, 0)
    assert report.catch_up_passes == 1 and new.embedded == 300  # the catch-up found nothing: nothing embedded
    assert db.aliases() == {"docs": target}
    assert contents(db, target) == contents(db, "docs-v1")  # ids, texts, metadata (nested too), hashes
    found = db.collection(target)
    assert found is not None
    assert found.metadata["vecembed:fingerprint"] == new.info.fingerprint
    assert found.metadata["vecembed:migrated_from"] == "docs-v1"
    # the same vectors as a fresh ingest with the new model
    with vecembed.open_store("memory", "fresh", new, client=db) as fresh:
        fresh.ingest(docs(300))
    got, want = vectors(db, target), vectors(db, "fresh")
    assert max(float(np.abs(got[i] - want[i]).max()) for i in want) < 1e-6
    assert "migrated 'docs-v1'" in str(report) and report.to_dict()["embedded"] == 300


def test_a_rerun_after_a_failure_embeds_only_what_is_missing(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    seed(db, old)
    new.fail_after = 130  # the engine embeds chunks of 8 batches: the first chunk (128) is written, then it fails
    with pytest.raises(IngestError):
        vecembed.migrate("memory", "docs", new, client=db, batch_size=16)
    target = default_target_name("docs-v1", new.info)
    committed = db.collection(target).count()  # type: ignore[union-attr]
    assert 0 < committed < 300 and db.aliases() == {"docs": "docs-v1"}  # the alias did not move
    new.fail_after, new.embedded = None, 0
    report = vecembed.migrate("memory", "docs", new, client=db, batch_size=40)
    assert (report.embedded, report.skipped, report.documents) == (300 - committed, committed, 300)
    assert new.embedded == 300 - committed
    # a re-run once the alias moved: nothing embedded, nothing moved, no error
    again = vecembed.migrate("memory", "docs", new, client=db)
    assert (again.embedded, again.switched, again.source, again.target) == (0, False, "docs-v1", target)


def test_the_catch_up_picks_up_documents_added_changed_and_deleted_during_the_copy(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(db, old, 2000)
    source = vecembed.open_store("memory", "docs-v1", old, client=db)
    copying = threading.Event()
    seen_during_copy: list[int] = []

    def writer() -> None:
        copying.wait()
        for lo in range(2000, 3000, 100):  # 1,000 new documents, in writes while the copy runs
            source.ingest(docs(100, lo))
        source.ingest([{"id": "d5", "text": "document 5, rewritten", "metadata": {"n": 5}}])
        source.delete(["d7", "d8"])

    thread = threading.Thread(target=writer, daemon=True)  # daemon: a failure before the copy cannot hang
    thread.start()

    def hook(phase: str) -> None:
        if phase == "copy":
            copying.set()
        elif phase == "catch-up":
            seen_during_copy.append(db.collection(default_target_name("docs-v1", new.info)).count())  # type: ignore[union-attr]
            thread.join()

    monkeypatch.setattr(migrate_module, "phase_hooks", [hook])
    report = vecembed.migrate("memory", "docs", new, client=db, batch_size=64)
    target = report.target
    assert contents(db, target) == contents(db, "docs-v1")
    assert report.documents == 2998 == db.collection("docs-v1").count()  # type: ignore[union-attr]
    assert contents(db, target)["d5"][0] == "document 5, rewritten" and "d7" not in contents(db, target)
    assert report.deleted == 2 or seen_during_copy[0] < 3000  # deleted ones were either never copied or removed
    assert report.catch_up_passes >= 1 and report.embedded == new.embedded


def test_rollback_and_drop_old(db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting) -> None:
    seed(db, old, 50)
    report = vecembed.migrate("memory", "docs", new, client=db)
    back = vecembed.migrate("memory", "docs", rollback=True, client=db)
    assert back.rolled_back and (back.source, back.target) == (report.target, "docs-v1")
    assert db.aliases() == {"docs": "docs-v1"} and report.target in db.list_collections()  # the new one is kept
    with pytest.raises(InvalidInputError, match="no migration made"):
        vecembed.migrate("memory", "docs", drop_old=True, client=db)
    forward = vecembed.migrate("memory", "docs", new, client=db)  # forward again: nothing to embed
    assert (forward.target, forward.embedded, forward.skipped, forward.switched) == (report.target, 0, 50, True)
    dropped = vecembed.migrate("memory", "docs", drop_old=True, client=db)
    assert dropped.dropped == "docs-v1" and "docs-v1" not in db.list_collections()
    with pytest.raises(CollectionNotFoundError):
        vecembed.migrate("memory", "docs", rollback=True, client=db)


def test_drop_old_in_the_same_call_and_never_while_an_alias_names_it(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    seed(db, old, 20)
    db.set_alias("docs-pinned", "docs-v1")
    with pytest.raises(InvalidInputError, match="still what alias 'docs-pinned' points at"):
        vecembed.migrate("memory", "docs", new, client=db, drop_old=True)
    assert "docs-v1" in db.list_collections() and db.aliases()["docs"] != "docs-v1"  # switched, not dropped
    db.drop_alias("docs-pinned")
    report = vecembed.migrate("memory", "docs", drop_old=True, client=db)
    assert report.dropped == "docs-v1" and db.list_collections() == [report.target]


def test_a_collection_source_needs_an_alias_name(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    seed(db, old, 10)
    with pytest.raises(InvalidInputError, match="not an alias: give alias="):
        vecembed.migrate("memory", "docs-v1", new, client=db)
    with pytest.raises(InvalidInputError, match="name of a collection"):
        vecembed.migrate("memory", "docs-v1", new, client=db, alias="docs-v1")
    assert db.list_collections() == ["docs-v1"] and new.embedded == 0  # nothing written
    report = vecembed.migrate("memory", "docs-v1", new, client=db, alias="search", target="docs-v2")
    assert db.aliases() == {"docs": "docs-v1", "search": "docs-v2"} and report.embedded == 10


def test_bad_input_writes_nothing(db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting) -> None:
    seed(db, old, 10)
    with (
        vecembed.load_provider("mock", dimension=16) as same,
        pytest.raises(InvalidInputError, match=r"already holds vectors of .* nothing was written"),
    ):
        vecembed.migrate("memory", "docs", same, client=db)
    db._aliases["dangling"] = "docs-v0"  # as another process may leave it (a collection dropped behind its alias)
    with pytest.raises(CollectionNotFoundError, match="alias 'dangling' names collection 'docs-v0', which does not"):
        vecembed.migrate("memory", "dangling", new, client=db)
    with pytest.raises(CollectionNotFoundError):
        vecembed.migrate("memory", "nowhere", new, client=db, alias="x")
    with pytest.raises(InvalidInputError, match="give new_provider"):
        vecembed.migrate("memory", "docs", client=db)
    with pytest.raises(InvalidInputError, match="rollback=True takes"):
        vecembed.migrate("memory", "docs", new, client=db, rollback=True)
    with pytest.raises(InvalidInputError, match="one of path=, url= or client="):
        vecembed.migrate("qdrant", "docs", new, path="x", url="http://127.0.0.1:1")
    assert db.list_collections() == ["docs-v1"] and new.embedded == 0


def test_default_target_name_is_stable_and_does_not_grow(new: Counting) -> None:
    name = default_target_name("docs", new.info)
    assert name.startswith("docs__") and name == default_target_name("docs", new.info)
    assert default_target_name(name, new.info) == name  # migrating a migrated collection keeps its base


def test_progress_shows_a_rate_and_an_eta() -> None:
    bar = Progress("migrate", 100, enabled=False, rate="documents")
    bar._started -= 2.0  # two seconds ago
    bar.advance(50)
    assert bar._speed() == "25 documents/s, ETA 2 s"


def test_sparse_vectors_are_carried_over_and_a_dense_source_can_gain_them(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    pytest.importorskip("py_rust_stemmers", reason="pip install 'vecembed[sparse]'")
    with vecembed.open_store("memory", "docs-v1", old, client=db, sparse="bm25") as store:
        store.ingest(docs(40))
    db.set_alias("docs", "docs-v1")
    report = vecembed.migrate("memory", "docs", new, client=db)
    with vecembed.open_store("memory", "docs", new, client=db, sparse="bm25") as after:
        assert after.collection == report.target
        assert after.identity.has_sparse and after.identity.sparse_model.startswith("bm25")
        # the target's sparse vectors answer a term query, as the source's did
        assert after.search("cats", k=3, mode="sparse")[0].text.endswith("cats")
        assert len(after.search("document 7 cats", k=5, mode="hybrid")) == 5

    # A dense-only source gains sparse vectors when sparse= is given for the move to another model.
    with vecembed.open_store("memory", "plain-v1", old, client=db) as store:
        store.ingest(docs(10))
    db.set_alias("plain", "plain-v1")
    gained = vecembed.migrate("memory", "plain", new, client=db, sparse="bm25")
    with vecembed.open_store("memory", "plain", new, client=db, sparse="bm25") as after:
        assert after.collection == gained.target and after.search("dogs", k=1, mode="sparse")


def test_a_sparse_source_whose_provider_options_differ_needs_sparse_given(
    db: MemoryDatabase, old: vecembed.EmbeddingProvider, new: Counting
) -> None:
    pytest.importorskip("py_rust_stemmers", reason="pip install 'vecembed[sparse]'")
    tuned = vecembed.load_sparse_provider("bm25", k1=1.5)
    with vecembed.open_store("memory", "docs-v1", old, client=db, sparse=tuned) as store:
        store.ingest(docs(10))
    db.set_alias("docs", "docs-v1")
    with pytest.raises(InvalidInputError, match="pass that provider as sparse="):
        vecembed.migrate("memory", "docs", new, client=db)
    assert new.embedded == 0 and db.aliases() == {"docs": "docs-v1"}
    report = vecembed.migrate("memory", "docs", new, client=db, sparse=tuned)
    assert report.embedded == 10
