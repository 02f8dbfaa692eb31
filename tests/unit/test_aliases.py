"""Aliases and collections that know their provider (issue 23, items 1 and 2), on the memory store.

Every store passes the same alias tests in tests/integration/test_store_conformance.py; here, what the shared
code decides: when a Store reads the alias again, that a call never mixes two bindings, which provider a
collection records and how a provider that cannot be loaded is reported.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import vecembed
import vecembed.registry
from vecembed.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    ModelNotFoundError,
)
from vecembed.identity import PROVIDER_KEY, CollectionIdentity
from vecembed.memory_store import MemoryDatabase
from vecembed.provider_record import ProviderRecord


@pytest.fixture
def db() -> MemoryDatabase:
    return MemoryDatabase()


def fill(db: MemoryDatabase, collection: str, n: int, **provider_options: Any) -> None:
    with (
        vecembed.load_provider("mock", dimension=16, **provider_options) as provider,
        vecembed.open_store("memory", collection, provider, client=db) as store,
    ):
        store.ingest([(f"{collection}-{i}", f"text {i} of {collection}") for i in range(n)])


def test_a_collection_records_how_to_load_its_provider(db: MemoryDatabase) -> None:
    fill(db, "docs", 3, seed=4, query_prompt="q: ")
    recorded = CollectionIdentity.from_metadata(db.collection("docs").metadata)  # type: ignore[union-attr]
    assert recorded is not None and recorded.provider == ProviderRecord(
        backend="mock", options={"dimension": 16, "seed": 4, "query_prompt": "q: "}
    )
    with vecembed.open_store("memory", "docs", client=db) as store:  # no provider: the recorded one
        assert store.owns_provider and store.provider.info.fingerprint.startswith("ve1-mock-")
        assert store.provider.info.query_prompt == "q: "
        assert store.search("text 1 of docs", k=1)[0].id == "docs-1"
        loaded = store.provider
    assert getattr(loaded, "closed", False)  # loaded by the store: closed with it


def test_opening_without_a_provider_needs_one_recorded(db: MemoryDatabase) -> None:
    with pytest.raises(CollectionNotFoundError, match="pass provider="):
        vecembed.open_store("memory", "nothing-here", client=db)
    fill(db, "old", 1)
    # A collection recorded before providers were: its identity, but no way to load the provider.
    del db.collection("old").metadata[PROVIDER_KEY]  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match=r"not how to load it .* pass provider= to open_store"):
        vecembed.open_store("memory", "old", client=db)


def test_secrets_and_process_settings_are_never_recorded() -> None:
    record = ProviderRecord(
        backend="remote",
        options={
            "url": "http://h:1",
            "api_key": "sk-1",
            "auth_token": "t",
            "password": "p",
            "allow_download": True,
            "max_tokens": 128,
        },
    )
    assert record.options == {"url": "http://h:1", "max_tokens": 128}  # max_tokens changes vectors: kept
    assert "sk-1" not in record.to_json()
    assert ProviderRecord.from_value(record.to_json()) == record
    for garbage in ("not json", "[]", '{"backend": ""}', None, 3):
        assert ProviderRecord.from_value(garbage) is None


def test_a_provider_that_cannot_be_loaded_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_here(name: str, /, **options: Any) -> Any:
        if options["model"].startswith("/"):
            raise ModelNotFoundError(options["model"], ["local directory: does not exist"])
        raise MissingDependencyError("onnxruntime", "onnx", "the onnx backend")

    monkeypatch.setattr(vecembed.registry, "load_provider", load_here)
    record = ProviderRecord(backend="onnx", options={"model": "org/m"})
    with pytest.raises(MissingDependencyError, match=r"collection 'docs' records .*pip install 'vecembed\[onnx\]'"):
        record.load(fingerprint="ve1-x", dimension=8, model="org/m", where="collection 'docs'", advice="pass one")

    local = ProviderRecord(backend="onnx", options={"model": "/models/mine"}, local_paths=("model",))
    with pytest.raises(ModelNotFoundError, match="'/models/mine' is a local path on the machine that wrote"):
        local.load(fingerprint="ve1-x", dimension=8, model="mine", where="collection 'docs'", advice="pass one")
    own = ProviderRecord(backend="my-own", rebuildable=False)
    with pytest.raises(ModelNotFoundError, match="cannot load again"):
        own.load(fingerprint="ve1-x", dimension=8, model="mine", where="collection 'docs'", advice="pass one")


def test_a_model_found_by_path_is_recorded_as_a_local_path(tmp_path: Any) -> None:
    info = vecembed.ModelInfo(
        name="mine",
        dimension=8,
        max_tokens=128,
        pooling="mean",
        normalized=True,
        backend="onnx",
        device="cpu",
        dtype="float32",
        fingerprint="ve1-x",
        extra={"source": "local", "path": str(tmp_path)},
    )
    record = ProviderRecord.of(info)
    assert record.options == {"model": str(tmp_path)} and record.local_paths == ("model",)


def test_the_alias_is_read_again_at_most_every_alias_recheck_seconds(db: MemoryDatabase) -> None:
    fill(db, "v1", 2)
    fill(db, "v2", 3)
    vecembed.set_alias("memory", "live", "v1", client=db)
    with vecembed.load_provider("mock", dimension=16) as provider:
        store = vecembed.open_store("memory", "live", provider, client=db)
        store.alias_recheck_seconds = 3600.0
        vecembed.set_alias("memory", "live", "v2", client=db)
        assert (store.collection, store.count()) == ("v1", 2)  # not read again yet: the old collection, whole
        # ... unless the collection it serves is gone: then the alias is read again at once.
        db.delete_collection("v1")
        assert [h.id for h in store.search("text 0 of v2", k=1)] == ["v2-0"]
        assert store.collection == "v2"
        store.close()


def test_a_reader_sees_whole_old_or_whole_new_results_while_the_alias_flips(db: MemoryDatabase) -> None:
    fill(db, "v1", 20)
    fill(db, "v2", 20, seed=2)  # another model: the follower swaps provider and collection together
    vecembed.set_alias("memory", "live", "v1", client=db)
    store = vecembed.open_store("memory", "live", client=db)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            for target in ("v2", "v1"):
                vecembed.set_alias("memory", "live", target, client=db)

    flipper = threading.Thread(target=flip)
    flipper.start()
    seen: set[str] = set()
    try:
        # At least 300 searches, and on until both collections were seen (how the threads interleave is the
        # scheduler's: a fast machine may run many searches between two flips).
        for i in range(5000):
            hits = store.search("text 3", k=5)
            collections = {h.id.split("-")[0] for h in hits}
            assert len(collections) == 1 and len(hits) == 5, hits
            seen |= collections
            if i >= 300 and len(seen) == 2:
                break
    finally:
        stop.set()
        flipper.join()
        store.close()
    assert seen == {"v1", "v2"}


def test_an_alias_may_not_name_itself_or_an_unknown_database(db: MemoryDatabase) -> None:
    fill(db, "v1", 1)
    with pytest.raises(InvalidInputError, match="cannot point at itself"):
        vecembed.set_alias("memory", "v1", "v1", client=db)
    with pytest.raises(InvalidInputError, match="unknown database"):
        vecembed.aliases("nope")
    assert vecembed.aliases("memory", client=db) == {}
    with pytest.raises(ModelMismatchError):  # sanity: the usual identity check still holds on an alias
        vecembed.set_alias("memory", "live", "v1", client=db)
        with vecembed.load_provider("mock", dimension=16, seed=9) as other:
            vecembed.open_store("memory", "live", other, client=db)


def test_cli_alias_list_set_drop_and_search_with_the_recorded_provider(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    from vecembed.cli import main

    where = ["--db", "qdrant", "--path", str(tmp_path)]
    for collection, seed, text in (("v1", "0", "cats purr\ndogs bark\n"), ("v2", "3", "cats purr loudly\n")):
        source = tmp_path / f"{collection}.txt"
        source.write_text(text)
        assert (
            main(
                [
                    "ingest",
                    str(source),
                    *where,
                    "-c",
                    collection,
                    "--backend",
                    "mock",
                    "--opt",
                    "dimension=32",
                    "--opt",
                    f"seed={seed}",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["alias", "set", "live", "v1", *where]) == 0
    assert main(["alias", "list", *where, "--json"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == '{"live": "v1"}'
    # No --backend: the mock provider v1 records (the default would be the onnx model, another vector space).
    assert main(["search", "cats", *where, "-c", "live", "-k", "1", "--json"]) == 0
    assert '"text": "cats purr"' in capsys.readouterr().out
    assert main(["alias", "set", "live", "v2", *where]) == 0
    assert main(["search", "cats", *where, "-c", "live", "-k", "1", "--json"]) == 0
    assert '"text": "cats purr loudly"' in capsys.readouterr().out
    assert main(["alias", "set", "other", "missing", *where]) == 1
    assert "not found; nothing changed" in capsys.readouterr().err
    assert main(["alias", "drop", "live", *where]) == 0
    assert main(["alias", "drop", "live", *where]) == 1
    assert main(["alias", "list", *where]) == 0
    assert "(no aliases in qdrant" in capsys.readouterr().out


def test_a_chroma_collection_made_with_the_embedding_function_alone_opens_without_a_provider() -> None:
    chromadb = pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
    import uuid

    import vecembed_chroma

    client = chromadb.EphemeralClient()
    name = f"ef-only-{uuid.uuid4().hex[:8]}"
    ef = vecembed_chroma.ChromaEmbeddingFunction.load("mock", dimension=16, seed=11)
    collection = client.create_collection(name, embedding_function=ef)  # plain chromadb: no vecembed metadata
    collection.add(ids=["1", "2"], documents=["a cat on a mat", "stock prices fell"])
    # the function's stored config is the record: the same one loader gives the provider back
    with vecembed.open_store("chroma", name, client=client) as store:
        assert store.provider.info.fingerprint == ef.fingerprint
        assert store.search("a cat on a mat", k=1)[0].id == "1"
