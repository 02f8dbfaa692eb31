"""vecembed_chroma on Chroma's in-process EphemeralClient with the mock provider: protocol, guards, health.

Every EphemeralClient in a process shares one store, so each test uses its own
collection name.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

import vecembed_chroma as vc  # noqa: E402

import vecembed  # noqa: E402
from vecembed.errors import (  # noqa: E402
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    ProviderUnavailableError,
)
from vecembed.types import HealthReport, ModelInfo, make_fingerprint  # noqa: E402

DOCS = [
    "the cat sat on the mat",
    "dogs bark at the postman",
    "the stock market fell sharply today",
    "a kitten sleeps on a warm mat",
    "interest rates and the stock market",
]


@pytest.fixture(scope="module")
def client() -> Any:
    return chromadb.EphemeralClient()


@pytest.fixture
def name() -> str:
    return f"vc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def provider() -> Iterator[Any]:
    with vecembed.load_provider("mock", dimension=32) as p:
        yield p


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    vc.clear_provider_cache()
    yield
    vc.clear_provider_cache()


class OwnProvider(vecembed.DelegatingProvider):
    """A user's provider that vecembed's registry does not know (wraps a mock for its vectors)."""

    def __init__(self, dimension: int = 32) -> None:
        super().__init__(vecembed.load_provider("mock", dimension=dimension, seed=99))
        base = self.provider.info
        self._info = ModelInfo(
            name="acme/own-model",
            dimension=dimension,
            max_tokens=base.max_tokens,
            pooling="mean",
            normalized=True,
            backend="acme",
            fingerprint=make_fingerprint(weights_id="acme", pooling="mean", normalized=True, dimension=dimension),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info


# -- the embedding function itself ---------------------------------------------------------------


def test_protocol_members(provider: Any) -> None:
    ef = vc.ChromaEmbeddingFunction(provider)
    assert ef.name() == vc.ChromaEmbeddingFunction.name() == "vecembed"
    assert ef.is_legacy() is False
    assert ef.default_space() == "cosine"
    assert set(ef.supported_spaces()) == {"cosine", "ip", "l2"}
    # chromadb's own signature check (parameter must be named `input`) and registry entry
    from chromadb.api.types import validate_embedding_function
    from chromadb.utils.embedding_functions import known_embedding_functions

    validate_embedding_function(ef)
    assert known_embedding_functions["vecembed"] is vc.ChromaEmbeddingFunction


def test_config_is_json_and_complete(provider: Any) -> None:
    cfg = vc.ChromaEmbeddingFunction(provider).get_config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["backend"] == "mock"
    assert cfg["model"] == provider.info.name
    assert cfg["fingerprint"] == provider.info.fingerprint
    assert cfg["dimension"] == 32
    assert cfg["options"] == {"dimension": 32}
    assert cfg["rebuildable"] is True


def test_load_records_exact_options() -> None:
    ef = vc.ChromaEmbeddingFunction.load("mock", dimension=16, seed=5, query_prompt="query: ")
    cfg = ef.get_config()
    assert cfg["options"] == {"dimension": 16, "seed": 5, "query_prompt": "query: "}
    assert ef.provider.info.fingerprint == cfg["fingerprint"]


def test_inferred_options_rebuild_the_same_space() -> None:
    with vecembed.load_provider("mock", dimension=24, seed=7, query_prompt="q: ") as p:
        cfg = vc.ChromaEmbeddingFunction(p).get_config()
    vc.clear_provider_cache()
    rebuilt = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    assert rebuilt.provider is not p
    assert rebuilt.provider.info.fingerprint == cfg["fingerprint"]


def test_a_stored_config_cannot_switch_downloads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 10 #17: a stored config's "allow_download": true overrode VECEMBED_OFFLINE=1 in the process that
    # opened the collection. Whether to download is the loading process's decision.
    with vecembed.load_provider("mock", dimension=24) as p:
        cfg = vc.ChromaEmbeddingFunction(p).get_config()
    cfg["options"] = {**cfg["options"], "allow_download": True}
    seen: list[dict[str, Any]] = []
    real = vecembed.load_provider

    def spy(name: str, **options: Any) -> Any:
        seen.append(options)
        return real(name, **options)

    monkeypatch.setattr(vecembed.registry, "load_provider", spy)  # the one loader: ProviderRecord.load
    vc.clear_provider_cache()
    rebuilt = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    assert rebuilt.provider.info.fingerprint == cfg["fingerprint"]
    assert seen == [{"dimension": 24}]


def test_documents_and_queries_go_to_the_right_methods() -> None:
    with vecembed.load_provider("mock", dimension=32, query_prompt="search query: ") as p:
        ef = vc.ChromaEmbeddingFunction(p)
        docs = ef(DOCS[:2])
        queries = ef.embed_query(DOCS[:2])
        assert isinstance(docs, list) and all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in docs)
        assert isinstance(queries, list) and all(isinstance(v, np.ndarray) for v in queries)
        np.testing.assert_allclose(np.stack(docs), p.embed_documents(DOCS[:2]))
        np.testing.assert_allclose(np.stack(queries), p.embed_queries(DOCS[:2]))
        # the query prompt applies to queries only
        assert not np.allclose(np.stack(docs), np.stack(queries))


def test_call_rejects_bad_documents_naming_the_index(provider: Any) -> None:
    ef = vc.ChromaEmbeddingFunction(provider)
    with pytest.raises(InvalidInputError) as err:
        ef(["fine", "also fine", None])  # type: ignore[list-item]
    assert err.value.index == 2


def test_build_from_config_is_lazy_and_reuses_the_live_provider(provider: Any) -> None:
    ef = vc.ChromaEmbeddingFunction(provider)
    again = vc.ChromaEmbeddingFunction.build_from_config(ef.get_config())
    assert again.provider is provider  # same fingerprint, same process: no second model
    assert again.get_config() == ef.get_config()
    vc.clear_provider_cache()
    lazy = vc.ChromaEmbeddingFunction.build_from_config(ef.get_config())
    assert lazy._provider is None  # nothing loaded until first use
    np.testing.assert_allclose(np.stack(lazy(DOCS)), provider.embed_documents(DOCS))


def test_one_model_load_per_create_add_query(client: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = vc.ChromaEmbeddingFunction.load("mock", dimension=32).get_config()
    vc.clear_provider_cache()
    loads: list[str] = []
    real = vecembed.load_provider

    def counting(backend: str, /, **options: Any) -> Any:
        loads.append(backend)
        return real(backend, **options)

    monkeypatch.setattr(vecembed.registry, "load_provider", counting)
    builds = 0
    original = vc.ChromaEmbeddingFunction.build_from_config

    def counting_build(config: dict[str, Any]) -> Any:
        nonlocal builds
        builds += 1
        return original(config)

    monkeypatch.setattr(vc.ChromaEmbeddingFunction, "build_from_config", staticmethod(counting_build))
    ef = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    col = client.create_collection(name, embedding_function=ef)
    col.add(ids=[str(i) for i in range(len(DOCS))], documents=DOCS)
    client.get_collection(name).query(query_texts=["cat"], n_results=2)
    assert builds > 1  # chroma rebuilds it again and again ...
    assert loads == ["mock"]  # ... but the model is loaded once


def test_rebuild_with_another_fingerprint_refuses_to_embed(provider: Any) -> None:
    cfg = vc.ChromaEmbeddingFunction(provider).get_config()
    vc.clear_provider_cache()
    cfg["fingerprint"] = "ve1-somethingelse"
    ef = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    with pytest.raises(ModelMismatchError, match="ve1-somethingelse"):
        ef(["text"])


def test_rebuild_with_another_dimension_refuses_to_embed(provider: Any) -> None:
    cfg = vc.ChromaEmbeddingFunction(provider).get_config()
    vc.clear_provider_cache()
    cfg["options"] = {"dimension": 8}
    ef = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    with pytest.raises(DimensionMismatchError) as err:
        ef(["text"])
    assert (err.value.expected, err.value.got) == (32, 8)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("fingerprint"),
        lambda c: c.update(dimension="384"),
        lambda c: c.update(dimension=True),
        lambda c: c.update(options=None),
    ],
)
def test_validate_config_refuses_malformed(provider: Any, mutate: Any) -> None:
    cfg = vc.ChromaEmbeddingFunction(provider).get_config()
    vc.ChromaEmbeddingFunction.validate_config(cfg)  # what get_config made is valid
    mutate(cfg)
    with pytest.raises(ValueError):
        vc.ChromaEmbeddingFunction.validate_config(cfg)
    with pytest.raises(ValueError):
        vc.ChromaEmbeddingFunction.build_from_config(cfg)


def test_validate_config_update(provider: Any) -> None:
    ef = vc.ChromaEmbeddingFunction(provider)
    old = ef.get_config()
    new_options = {**old, "options": {"dimension": 32, "max_tokens": 256}}
    ef.validate_config_update(old, new_options)  # same vector space: allowed
    with pytest.raises(ModelMismatchError):
        ef.validate_config_update(old, {**old, "fingerprint": "ve1-other", "model": "other"})
    with pytest.raises(DimensionMismatchError):
        ef.validate_config_update(old, {**old, "fingerprint": "ve1-other", "dimension": 64})


def test_modify_to_another_model_is_refused(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    other = vc.ChromaEmbeddingFunction.load("mock", dimension=32, seed=4)
    with pytest.raises(ModelMismatchError):
        col.modify(configuration={"embedding_function": other})
    with pytest.raises(ModelMismatchError):
        col.modify(configuration={"embedding_function": chromadb.utils.embedding_functions.DefaultEmbeddingFunction()})
    with pytest.raises(ModelMismatchError):
        col.modify(metadata={"vecembed:fingerprint": "ve1-forged"})
    stored = client.get_collection(name)
    assert stored.configuration_json["embedding_function"]["config"]["fingerprint"] == provider.info.fingerprint
    assert stored.metadata["vecembed:fingerprint"] == provider.info.fingerprint


def test_modify_keeps_the_record(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider, metadata={"a": 1})
    col.modify(metadata={"b": 2})  # chroma replaces metadata; the vecembed record is carried over
    meta = client.get_collection(name).metadata
    assert meta["b"] == 2 and "a" not in meta
    assert meta["vecembed:fingerprint"] == provider.info.fingerprint and meta["vecembed:dimension"] == 32
    # a new function over the same vector space (other options) is allowed
    same = vc.ChromaEmbeddingFunction(provider, options={"dimension": 32, "max_tokens": 256})
    col.modify(configuration={"embedding_function": same})
    assert client.get_collection(name).configuration_json["embedding_function"]["config"]["options"] == {
        "dimension": 32,
        "max_tokens": 256,
    }


def test_options_must_be_json(provider: Any) -> None:
    with pytest.raises(InvalidInputError, match="JSON"):
        vc.ChromaEmbeddingFunction(provider, options={"model": object()})


def test_not_a_provider() -> None:
    with pytest.raises(InvalidInputError, match="EmbeddingProvider"):
        vc.ChromaEmbeddingFunction("mock")  # type: ignore[arg-type]


def test_supported_spaces_of_an_unnormalised_model() -> None:
    ef = vc.ChromaEmbeddingFunction.load("mock", dimension=8)
    cfg = {**ef.get_config(), "normalized": False}
    assert vc.ChromaEmbeddingFunction.build_from_config(cfg).supported_spaces() == ["cosine"]


# -- collections: create, reopen, guards -----------------------------------------------------------


def test_create_records_identity_and_cosine(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider, metadata={"owner": "tests"})
    assert isinstance(col, vc.GuardedCollection) and isinstance(col, chromadb.Collection)
    meta = client.get_collection(name).metadata
    assert meta == {"owner": "tests", **vecembed.CollectionIdentity.of(provider.info).to_metadata()}
    assert meta["vecembed:fingerprint"] == provider.info.fingerprint and meta["vecembed:dimension"] == 32
    assert col.configuration_json["hnsw"]["space"] == "cosine"


def test_add_query_round_trip(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    col.add(ids=[str(i) for i in range(len(DOCS))], documents=DOCS)
    stored = col.get(ids=["0", "1"], include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(np.asarray(stored), provider.embed_documents(DOCS[:2]), atol=1e-6)
    res = col.query(query_texts=["a kitten on the mat"], n_results=2, include=["documents", "distances"])
    assert res["documents"][0][0] == DOCS[3]
    q = provider.embed_queries(["a kitten on the mat"])[0]
    expected = 1.0 - float(q @ provider.embed_documents([DOCS[3]])[0])
    assert res["distances"][0][0] == pytest.approx(expected, abs=1e-5)


def test_get_collection_without_ef_rebuilds_ours(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider).add(ids=["a"], documents=[DOCS[0]])
    vc.clear_provider_cache()  # as in a new process: nothing loaded
    col = client.get_collection(name)  # no embedding function passed
    col.add(ids=["b"], documents=[DOCS[1]])
    stored = col.get(ids=["b"], include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(np.asarray(stored), provider.embed_documents([DOCS[1]]), atol=1e-6)
    assert col.query(query_texts=[DOCS[0]], n_results=1)["ids"] == [["a"]]


def test_helper_get_collection_without_provider(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider)
    col = vc.get_collection(client, name)
    assert col.embedding_function.fingerprint == provider.info.fingerprint
    col.add(ids=["x"], documents=["hello"])
    assert col.count() == 1


def test_helper_get_collection_without_provider_needs_ours(client: Any, name: str) -> None:
    client.create_collection(name, embedding_function=None)
    with pytest.raises(InvalidInputError, match="pass the provider"):
        vc.get_collection(client, name)


def test_other_fingerprint_refused_before_any_write(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider).add(ids=["0"], documents=[DOCS[0]])
    with vecembed.load_provider("mock", dimension=32, seed=1, name="acme/other") as other:
        with pytest.raises(ModelMismatchError) as err:
            vc.get_collection(client, name, other)
        with pytest.raises(ModelMismatchError):
            vc.get_or_create_collection(client, name, other)
    msg = str(err.value)
    assert provider.info.fingerprint in msg and other.info.fingerprint in msg
    assert "acme/other" in msg and provider.info.name in msg
    assert "another collection" in msg and "nothing was written" in msg  # says what to do
    assert (err.value.expected, err.value.got) == (provider.info.fingerprint, other.info.fingerprint)
    assert client.get_collection(name).count() == 1


def test_other_dimension_refused_before_any_write(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider)  # empty: the recorded dimension decides
    with vecembed.load_provider("mock", dimension=16) as other, pytest.raises(DimensionMismatchError) as err:
        vc.get_or_create_collection(client, name, other)
    assert (err.value.expected, err.value.got) == (32, 16)
    assert client.get_collection(name).count() == 0


def test_foreign_collection_with_other_dimension(client: Any, name: str, provider: Any) -> None:
    foreign = client.create_collection(name, embedding_function=None)
    foreign.add(ids=["f"], embeddings=[[0.1] * 8])
    with pytest.raises(DimensionMismatchError, match="8-dimensional") as err:
        vc.get_collection(client, name, provider)
    assert (err.value.expected, err.value.got) == (8, 32)
    assert foreign.count() == 1


def test_foreign_collection_same_dimension_is_refused_unless_adopted(client: Any, name: str, provider: Any) -> None:
    client.create_collection(name, embedding_function=None).add(ids=["f"], embeddings=[[0.1] * 32])
    with pytest.raises(ModelMismatchError, match="adopt"):
        vc.get_collection(client, name, provider)
    assert "vecembed:fingerprint" not in (client.get_collection(name).metadata or {})  # not claimed: model unknown
    col = vc.get_collection(client, name, provider, adopt=True)
    assert col.metadata["vecembed:fingerprint"] == provider.info.fingerprint
    assert col.count() == 1


def test_foreign_empty_collection_is_claimed(client: Any, name: str, provider: Any) -> None:
    client.create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine", "k": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        col = vc.get_collection(client, name, provider)
    assert col.metadata["vecembed:fingerprint"] == provider.info.fingerprint
    assert col.metadata["k"] == 1
    assert col.configuration_json["hnsw"]["space"] == "cosine"


def test_native_collection_with_our_ef_is_guarded(client: Any, name: str, provider: Any) -> None:
    client.create_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    with vecembed.load_provider("mock", dimension=32, seed=2) as other, pytest.raises(ModelMismatchError):
        vc.get_collection(client, name, other)
    col = vc.get_collection(client, name, provider)
    assert col.metadata["vecembed:fingerprint"] == provider.info.fingerprint


def test_get_or_create(client: Any, name: str, provider: Any) -> None:
    first = vc.get_or_create_collection(client, name, provider)
    first.add(ids=["1"], documents=["one"])
    second = vc.get_or_create_collection(client, name, vc.ChromaEmbeddingFunction(provider))
    assert second.id == first.id and second.count() == 1


def test_check_collection_on_a_native_handle(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider)
    other = vc.ChromaEmbeddingFunction.load("mock", dimension=32, seed=3)
    native = client.get_collection(name, embedding_function=other)  # chromadb compares names only: accepted
    with pytest.raises(ModelMismatchError):
        vc.check_collection(native, native._embedding_function)
    assert vc.check_collection(native, provider).fingerprint == provider.info.fingerprint


# -- bad input through a guarded collection ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "index"),
    [(["ok", None], 1), ([None, "ok"], 0), (["ok", 3], 1), (["ok", b"bytes"], 1)],
)
@pytest.mark.parametrize("method", ["add", "upsert"])
def test_bad_documents_name_the_index_and_write_nothing(
    client: Any, name: str, provider: Any, bad: list[Any], index: int, method: str
) -> None:
    col = vc.create_collection(client, name, provider)
    col.add(ids=["keep"], documents=["already here"])
    with pytest.raises(InvalidInputError) as err:
        getattr(col, method)(ids=["n1", "n2"], documents=bad)
    assert err.value.index == index
    assert f"documents[{index}]" in str(err.value)
    assert col.count() == 1
    assert col.get(ids=["n1", "n2"])["ids"] == []


def test_bad_update_and_query(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    col.add(ids=["a", "b"], documents=["first", "second"])
    with pytest.raises(InvalidInputError) as err:
        col.update(ids=["a", "b"], documents=["changed", None])
    assert err.value.index == 1
    assert col.get(ids=["a"])["documents"] == ["first"]
    with pytest.raises(InvalidInputError) as err:
        col.query(query_texts=["fine", None], n_results=1)
    assert err.value.index == 1


def test_positional_arguments_are_checked_too(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    with pytest.raises(InvalidInputError):
        col.add(["a"], None, None, [None])
    col.add("single", documents="one document")  # chroma's one-record form still works
    assert col.count() == 1


def test_wrong_sized_vectors_refused(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    with pytest.raises(DimensionMismatchError) as err:
        col.add(ids=["a", "b"], embeddings=[[0.0] * 32, [0.0] * 8])
    assert (err.value.expected, err.value.got) == (32, 8) and "embeddings[1]" in str(err.value)
    assert col.count() == 0
    # an empty collection would otherwise take its dimension from this first write
    with pytest.raises(DimensionMismatchError):
        col.query(query_embeddings=[[0.0] * 8], n_results=1)
    col.add(ids=["ok"], embeddings=[np.ones(32, dtype=np.float32)])
    assert col.count() == 1


# -- a provider vecembed cannot rebuild ----------------------------------------------------------------


def test_own_provider_works_but_is_not_rebuildable(client: Any, name: str) -> None:
    with OwnProvider() as own:
        col = vc.create_collection(client, name, own)
        assert col.embedding_function.get_config()["rebuildable"] is False
        col.add(ids=["1", "2"], documents=DOCS[:2])
        assert col.query(query_texts=[DOCS[1]], n_results=1)["ids"] == [["2"]]
        # same process, provider alive: opening without the function re-uses it
        assert client.get_collection(name).query(query_texts=[DOCS[0]], n_results=1)["ids"] == [["1"]]
        vc.clear_provider_cache()  # as in another process
        with pytest.raises(ProviderUnavailableError, match="cannot rebuild"):
            client.get_collection(name).add(ids=["3"], documents=["three"])
        # passing it again is the documented way
        client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(own)).add(
            ids=["3"], documents=["three"]
        )
        assert client.get_collection(name).count() == 3


def test_closed_provider_is_reloaded(client: Any, name: str) -> None:
    ef = vc.ChromaEmbeddingFunction.load("mock", dimension=32)
    col = vc.create_collection(client, name, ef)
    first = ef.provider
    first.close()
    col.add(ids=["1"], documents=["after close"])  # a fresh provider from the recorded options
    assert ef.provider is not first and col.count() == 1


def test_a_closed_provider_is_seen_through_its_public_closed_property(client: Any, name: str) -> None:
    class Plain:
        """A provider of the user's own that closes without a ``_closed`` attribute: only ``closed`` tells."""

        def __init__(self) -> None:
            self.inner = vecembed.load_provider("mock", dimension=32, seed=11)
            self.closed = False

        info = property(lambda self: self.inner.info)

        def embed_documents(self, texts: Any) -> Any:
            return self.inner.embed_documents(texts)

        def embed_queries(self, texts: Any) -> Any:
            return self.inner.embed_queries(texts)

        def embed_query(self, text: str) -> Any:
            return self.inner.embed_query(text)

        def health_check(self) -> Any:
            return self.inner.health_check()

        def close(self) -> None:
            self.closed = True

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    own = Plain()
    ef = vc.ChromaEmbeddingFunction(own, backend="mock", options={"dimension": 32, "seed": 11})
    assert ef.provider is own
    own.close()
    assert ef.provider is not own  # reloaded from the recorded options, same vector space
    assert ef.provider.info.fingerprint == own.info.fingerprint


# -- health --------------------------------------------------------------------------------------------


def test_health_ok(client: Any, name: str, provider: Any) -> None:
    col = vc.create_collection(client, name, provider)
    col.add(ids=["1"], documents=["x"])
    report = vc.health_check(client, name, provider)
    assert report.ok, report.detail
    assert report.checks == {"chroma": True, "collection": True, "provider": True}
    coll = report.children[1]
    assert coll.checks == {"exists": True, "dimension": True, "fingerprint": True}
    assert vc.health_check(client, col).ok  # the collection's own provider by default


def test_health_missing_collection(client: Any, provider: Any) -> None:
    report = vc.health_check(client, "does-not-exist-anywhere", provider)
    assert not report.ok
    assert report.checks["chroma"] and not report.checks["collection"]
    assert report.children[1].checks == {"exists": False}


def test_health_other_model(client: Any, name: str, provider: Any) -> None:
    vc.create_collection(client, name, provider)
    with vecembed.load_provider("mock", dimension=16) as other:
        report = vc.health_check(client, name, other)
    assert not report.ok
    assert report.children[1].checks["dimension"] is False
    assert report.checks["provider"] is True  # the provider itself is fine: the pairing is not
    assert "32-dimensional vectors" in report.detail and "16-d" in report.detail
    # a closed provider fails its own probe (and is not silently replaced by a fresh one)
    closed = vc.health_check(client, provider=other)
    assert closed.checks == {"chroma": True, "provider": False}
    assert "closed" in closed.children[1].detail


def test_health_never_raises() -> None:
    class DeadClient:
        def heartbeat(self) -> int:
            raise ConnectionError("refused")

        def get_collection(self, *a: Any, **k: Any) -> Any:
            raise ConnectionError("refused")

    class BrokenProvider(OwnProvider):
        def health_check(self) -> HealthReport:
            raise RuntimeError("boom")

    report = vc.health_check(DeadClient(), "docs", BrokenProvider())  # type: ignore[arg-type]
    assert not report.ok
    assert report.checks == {"chroma": False, "collection": False, "provider": False}
    assert "refused" in report.children[0].detail and "boom" in report.children[2].detail
    assert not vc.health_check(DeadClient(), provider=object()).ok  # type: ignore[arg-type]


def test_missing_chromadb_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['chromadb'] = None\n"
        "import vecembed\n"
        "try:\n"
        "    import vecembed_chroma\n"
        "except vecembed.MissingDependencyError as exc:\n"
        "    print('MISSING', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "MISSING" in out.stdout, out.stderr
    assert "pip install 'vecembed[chroma]'" in out.stdout


@pytest.mark.parametrize("opener", ["get_collection", "get_or_create_collection"])
def test_chromadbs_own_api_cannot_mix_in_another_model(client: Any, name: str, provider: Any, opener: str) -> None:
    # Issue 10 #1: chromadb compares embedding functions by name only, so another vecembed model was accepted
    # through chromadb's own API (count 2 -> 4). The function now checks the collection that calls it.
    guarded = vc.get_or_create_collection(client, name, provider)
    guarded.add(ids=["1", "2"], documents=["one", "two"])
    with vecembed.load_provider("mock", dimension=32, seed=11) as other:
        native = getattr(client, opener)(name, embedding_function=vc.ChromaEmbeddingFunction(other))
        with pytest.raises(ModelMismatchError, match="nothing was written") as err:
            native.add(ids=["3"], documents=["three"])
        assert other.info.fingerprint in str(err.value) and provider.info.fingerprint in str(err.value)
        with pytest.raises(ModelMismatchError):
            native.query(query_texts=["one"], n_results=1)
    assert client.get_collection(name).count() == 2
    # The same model through chromadb's API is fine.
    same = getattr(client, opener)(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    same.add(ids=["3"], documents=["three"])
    assert same.count() == 3


def test_a_collection_made_by_chromadb_with_our_function_is_checked_by_its_config(client: Any, name: str,
                                                                                 provider: Any) -> None:
    # No vecembed metadata, only the stored function config: its fingerprint is what is compared.
    client.create_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    with vecembed.load_provider("mock", dimension=32, seed=12) as other:
        native = client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(other))
        with pytest.raises(ModelMismatchError):
            native.add(ids=["1"], documents=["x"])
    assert client.get_collection(name).count() == 0


def test_two_threads_claiming_one_empty_collection_cannot_both_write(client: Any, name: str) -> None:
    # Issue 10 #15: two threads opening the same empty, unrecorded collection with different models both
    # claimed it and both wrote (40 of 40 trials). The claim is one step now: exactly one model gets it.
    import threading

    for trial in range(20):
        collection = f"{name}-{trial}"
        client.create_collection(collection, embedding_function=None)
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def claim(seed: int, collection: str = collection, outcomes: list[str] = outcomes,
                  barrier: threading.Barrier = barrier) -> None:
            with vecembed.load_provider("mock", dimension=16, seed=seed) as p:
                barrier.wait()
                try:
                    col = vc.get_collection(client, collection, p)
                    col.add(ids=[f"s{seed}"], documents=[f"written by model {seed}"])
                    outcomes.append("wrote")
                except ModelMismatchError:
                    outcomes.append("refused")

        threads = [threading.Thread(target=claim, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["refused", "wrote"], (trial, outcomes)
        assert client.get_collection(collection).count() == 1


# -- one identity reader, one claim policy (issue 21 #4) ----------------------------------------------------


def test_a_readme_collection_opens_with_open_store_and_takes_an_ingest(client: Any, name: str, provider: Any) -> None:
    # Made the README's way: plain chromadb + ChromaEmbeddingFunction, no vecembed metadata. open_store refused
    # it ("no vecembed record") while get_collection accepted it; the stored config names the provider now.
    col = client.create_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    col.add(ids=["r1"], documents=["written through chromadb itself"])
    recorded = vc.recorded_identity(client.get_collection(name))
    assert (recorded.source, recorded.fingerprint, recorded.dimension) == (
        "embedding_function", provider.info.fingerprint, 32)
    with vecembed.open_store("chroma", name, provider, client=client) as store:
        assert store.health_check().ok
        report = store.ingest([("s1", "one more text"), ("s2", "and another")])
        assert (report.written, store.count()) == (2, 3)
        assert store.search("written through chromadb itself", k=1)[0].id == "r1"
    assert client.get_collection(name).metadata["vecembed:fingerprint"] == provider.info.fingerprint  # claimed
    assert vc.get_collection(client, name, provider).count() == 3
    client.get_collection(name).add(ids=["r2"], documents=["chromadb again"])  # the rebuilt function still fits
    assert vc.health_check(client, name, provider).ok and client.get_collection(name).count() == 4


def test_a_collection_of_another_models_function_is_refused_everywhere(client: Any, name: str, provider: Any) -> None:
    with vecembed.load_provider("mock", dimension=32, seed=7) as other:
        client.create_collection(name, embedding_function=vc.ChromaEmbeddingFunction(other)).add(
            ids=["o"], documents=["written by the other model"])
        theirs = other.info.fingerprint
    refusals: list[ModelMismatchError] = []
    for attempt in (
        lambda: vecembed.open_store("chroma", name, provider, client=client),
        lambda: vecembed.open_store("chroma", name, provider, client=client, adopt=True),  # adopt cannot override
        lambda: vc.get_collection(client, name, provider),
        lambda: vc.get_or_create_collection(client, name, provider),
        lambda: vc.check_collection(client.get_collection(name), provider),
        # chromadb's own API with our function (chromadb compares names only): the function refuses
        lambda: client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider)).add(
            ids=["x"], documents=["must not be written"]),
        lambda: client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider)).query(
            query_texts=["anything"], n_results=1),
    ):
        with pytest.raises(ModelMismatchError) as err:
            attempt()
        refusals.append(err.value)
    assert all(theirs in str(e) and provider.info.fingerprint in str(e) for e in refusals)
    with vecembed.load_provider("mock", dimension=16) as smaller, pytest.raises(DimensionMismatchError):
        vecembed.open_store("chroma", name, smaller, client=client)
    report = vc.health_check(client, name, provider)
    assert not report.ok and report.children[1].checks["fingerprint"] is False
    stored = client.get_collection(name)
    assert stored.count() == 1 and "vecembed:fingerprint" not in (stored.metadata or {})  # nothing written


def test_an_unrecorded_collection_with_vectors_needs_adopt_everywhere(client: Any, name: str, provider: Any) -> None:
    client.create_collection(name, embedding_function=None).add(ids=["f"], embeddings=[[0.1] * 32])
    native = client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    for attempt in (
        lambda: vecembed.open_store("chroma", name, provider, client=client),
        lambda: vc.get_collection(client, name, provider),
        lambda: native.add(ids=["n"], documents=["through chromadb's API"]),
    ):
        with pytest.raises(ModelMismatchError, match="adopt"):
            attempt()
    assert not vc.health_check(client, name, provider).ok
    assert client.get_collection(name).count() == 1
    with vecembed.open_store("chroma", name, provider, client=client, adopt=True) as store:
        assert store.ingest(["adopted"]).written == 1
    # Recorded now: a collection object fetched after the adoption (chromadb's objects are snapshots) is accepted.
    client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider)).add(
        ids=["n"], documents=["through chromadb's API"])
    assert client.get_collection(name).count() == 3 and vc.health_check(client, name, provider).ok


def test_the_function_claims_an_empty_unrecorded_collection(client: Any, name: str, provider: Any) -> None:
    client.create_collection(name, embedding_function=None, metadata={"owner": "me"})
    native = client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider))
    native.add(ids=["1"], documents=["one"])
    native.add(ids=["2"], documents=["two"])  # the second write finds the first one's record: accepted
    meta = client.get_collection(name).metadata
    assert meta["vecembed:fingerprint"] == provider.info.fingerprint and meta["owner"] == "me"
    with vecembed.load_provider("mock", dimension=32, seed=3) as other, pytest.raises(ModelMismatchError):
        vecembed.open_store("chroma", name, other, client=client)


def test_a_guarded_collection_does_not_search_the_stack(
    client: Any, name: str, provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Collections vecembed opened were checked then: their calls need no frame inspection.
    def forbidden(self: Any) -> Any:
        raise AssertionError("the stack was searched")

    col = vc.create_collection(client, name, provider)
    monkeypatch.setattr(vc.ChromaEmbeddingFunction, "_calling_collection", forbidden)
    col.add(ids=["1"], documents=["one"])
    col.upsert(ids=["2"], documents=["two"])
    assert col.query(query_texts=["one"], n_results=1)["ids"] == [["1"]]
    with pytest.raises(AssertionError, match="stack"):  # chromadb's own collection object has to look
        client.get_collection(name, embedding_function=vc.ChromaEmbeddingFunction(provider)).add(
            ids=["3"], documents=["three"])
