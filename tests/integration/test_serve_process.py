"""`vecembed serve` as a real process on 127.0.0.1, called by real clients.

Clients: the ``openai`` package (float and base64), chromadb's
``OpenAIEmbeddingFunction``, the ``remote`` provider inside the Chroma and
Qdrant stores (the fingerprint guard keeps working), raw HTTP for token ids,
auth, limits, an overload burst (429) and a SIGTERM while a request is in flight
(503 for new requests, the in-flight one finishes). Every vector is checked
against the in-process provider (max abs diff ≤ 1e-6). Each server is started by
a fixture on a free port and stopped by its own PID.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette", reason="pip install 'vecembed[server]'")
httpx = pytest.importorskip("httpx", reason="pip install 'vecembed[remote]'")

from server_fixtures import Served, free_port, serve  # noqa: E402

import vecembed  # noqa: E402
from vecembed.errors import ModelMismatchError  # noqa: E402

pytest_plugins = ["backend_fixtures"]  # onnx_provider and the session's private ONNX cache
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # real server processes

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
KEY = "test-key-12"


@pytest.fixture(scope="module")
def onnx_server(onnx_provider: Any) -> Iterator[Served]:
    """The real model served with an API key (onnx_provider exported the graph into the session cache first)."""
    with serve("--backend", "onnx", "--model", MODEL_ID, "--api-key", KEY, "--alias", "text-embedding-3-small") as s:
        yield s


@pytest.fixture(scope="module")
def openai_client(onnx_server: Served) -> Any:
    openai = pytest.importorskip("openai", reason="pip install 'vecembed[dev]'")
    return openai.OpenAI(base_url=onnx_server.api, api_key=KEY, max_retries=0)


TEXTS = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog.",
    "Vector databases store embeddings for similarity search.",
    "",
    "Ein Satz auf Deutsch, mit Umlauten: Grüße!",
]


def max_diff(a: Any, b: Any) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).max())


def test_openai_client_float_and_base64_match_the_provider(openai_client: Any, onnx_provider: Any) -> None:
    expected = onnx_provider.embed_documents(TEXTS)
    floats = openai_client.embeddings.create(input=TEXTS, model=MODEL_ID)
    assert [d.index for d in floats.data] == list(range(len(TEXTS)))
    assert max_diff([d.embedding for d in floats.data], expected) <= 1e-6
    tokens = int(onnx_provider.pipeline.tokenize(TEXTS).lengths.sum())
    assert floats.usage.prompt_tokens == tokens == floats.usage.total_tokens
    b64 = openai_client.embeddings.create(input=TEXTS[1], model="text-embedding-3-small", encoding_format="base64")
    raw = b64.data[0].embedding
    row = np.frombuffer(base64.b64decode(raw), dtype="<f4") if isinstance(raw, str) else np.asarray(raw)
    assert max_diff(row, expected[1]) <= 1e-6 and b64.model == "text-embedding-3-small"


def test_openai_client_errors(openai_client: Any, onnx_server: Served) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.embeddings.create(input="x", model="another-model")
    assert missing.value.status_code == 404 and "not served" in str(missing.value)
    with pytest.raises(openai.BadRequestError, match="must be 384"):
        openai_client.embeddings.create(input="x", model=MODEL_ID, dimensions=256)
    wrong = openai.OpenAI(base_url=onnx_server.api, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(input="x", model=MODEL_ID)
    listed = [m.id for m in openai_client.models.list()]
    assert listed[0] == MODEL_ID and "text-embedding-3-small" in listed


def test_token_id_input_embeds_like_the_text(onnx_server: Served, onnx_provider: Any) -> None:
    texts = ["the quick brown fox", "vector search is fun"]
    ids = [onnx_provider.tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    headers = {"Authorization": f"Bearer {KEY}"}
    many = httpx.post(f"{onnx_server.api}/embeddings", json={"input": ids, "model": MODEL_ID}, headers=headers)
    assert many.status_code == 200, many.text
    assert max_diff([d["embedding"] for d in many.json()["data"]], onnx_provider.embed_documents(texts)) <= 1e-6
    one = httpx.post(f"{onnx_server.api}/embeddings", json={"input": ids[0]}, headers=headers).json()
    assert max_diff(one["data"][0]["embedding"], onnx_provider.embed_documents(texts[:1])[0]) <= 1e-6
    bad = httpx.post(f"{onnx_server.api}/embeddings", json={"input": [[1, 10**9]]}, headers=headers)
    assert bad.status_code == 400 and "input[0][1]" in bad.json()["error"]["message"]


def test_concurrent_requests_are_each_identical_to_embedding_alone(onnx_server: Served, onnx_provider: Any) -> None:
    # different lengths so that merged batches pad: padding must not change any vector
    texts = [f"sentence {i}: " + "word " * (i % 13) for i in range(48)]
    expected = onnx_provider.embed_documents(texts)
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(headers=headers, timeout=60) as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda t: client.post(f"{onnx_server.api}/embeddings", json={"input": t}), texts))
    assert [r.status_code for r in responses] == [200] * len(texts)
    got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    assert max_diff(got, expected) <= 1e-6
    metrics = httpx.get(f"{onnx_server.url}/metrics").text
    assert "vecembed_batch_requests_count" in metrics and "vecembed_texts_embedded_total" in metrics


def test_a_big_request_cut_in_chunks_gets_the_providers_own_vectors(onnx_provider: Any) -> None:
    """Issue 22 (2) with the real model: chunks (longest first) and small requests between them change no vector."""
    from vecembed.server.batcher import DynamicBatcher

    big = [f"passage {i}: " + "many words in a longer text " * (i % 17) for i in range(60)]
    small = [f"query {i}" for i in range(6)]
    expected_big, expected_small = onnx_provider.embed_documents(big), onnx_provider.embed_documents(small)
    batcher = DynamicBatcher(onnx_provider, max_batch_texts=8, max_batch_tokens=600, max_wait=0.0)
    try:
        big_future = batcher.submit(big)
        small_futures = [batcher.submit([t]) for t in small]
        got_small = np.vstack([f.result(120).vectors for f in small_futures])
        got_big = big_future.result(120)
    finally:
        batcher.close(timeout=30)
    assert max_diff(got_big.vectors, expected_big) <= 1e-6 and max_diff(got_small, expected_small) <= 1e-6
    assert got_big.tokens == int(onnx_provider.pipeline.tokenize(big).lengths.sum())


def test_info_health_and_metrics(onnx_server: Served, onnx_provider: Any) -> None:
    assert httpx.get(f"{onnx_server.url}/info").status_code == 401
    info = httpx.get(f"{onnx_server.url}/info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["model"]["fingerprint"] == onnx_provider.info.fingerprint
    assert info["accepts_token_ids"] is True and info["limits"]["max_inputs"] == 2048
    # issue 22 (5): the model's place on this machine's disk is not shown, its folder's name is
    local_path = str(onnx_provider.info.extra["path"])
    assert local_path.startswith("/") and local_path not in str(info)
    assert info["model"]["extra"]["path"] == os.path.basename(local_path.rstrip("/"))
    health = httpx.get(f"{onnx_server.url}/health")
    assert health.status_code == 200 and health.json()["ok"] is True and health.json()["deep"] is False
    # issue 22 (3): the probe that runs the model needs the key
    assert httpx.get(f"{onnx_server.url}/health?deep=1").status_code == 401
    deep = httpx.get(f"{onnx_server.url}/health?deep=1", headers={"Authorization": f"Bearer {KEY}"})
    assert deep.status_code == 200 and deep.json()["deep"] is True and deep.json()["checks"]["finite"] is True
    metrics = httpx.get(f"{onnx_server.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'vecembed_requests_total{endpoint="/info",status="401"}' in metrics.text


def test_chromadb_openai_embedding_function_against_the_server(onnx_server: Served, onnx_provider: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
    from chromadb.utils.embedding_functions.openai_embedding_function import OpenAIEmbeddingFunction

    monkeypatch.setenv("VECEMBED_TEST_OPENAI_KEY", KEY)
    ef = OpenAIEmbeddingFunction(api_key_env_var="VECEMBED_TEST_OPENAI_KEY", model_name=MODEL_ID,
                                 api_base=onnx_server.api)
    vectors = ef(TEXTS[:3])
    assert max_diff(np.stack(vectors), onnx_provider.embed_documents(TEXTS[:3])) <= 1e-6


def test_remote_provider_keeps_the_store_guards(onnx_server: Served, onnx_provider: Any, tmp_path: Any) -> None:
    pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS[:3])]
    with vecembed.load_provider("remote", url=onnx_server.url, api_key=KEY) as remote:
        assert remote.info.fingerprint == onnx_provider.info.fingerprint
        assert max_diff(remote.embed_query("a guitar"), onnx_provider.embed_query("a guitar")) <= 1e-6
        assert remote.health_check().ok
        for db in ("chroma", "qdrant"):
            where = str(tmp_path / db)
            name = f"c{uuid.uuid4().hex[:8]}"
            with vecembed.open_store(db, name, onnx_provider, path=where) as local_store:
                local_store.ingest(docs)
                local_hit = local_store.search("someone plays the guitar", k=1)[0]
            # the collection was written with the local provider; the remote one is the same vector space
            with vecembed.open_store(db, name, remote, path=where) as store:
                assert store.ingest(docs).skipped == 3
                hit = store.search("someone plays the guitar", k=1)[0]
                assert hit.id == local_hit.id == "d0" and abs(hit.score - local_hit.score) <= 1e-5
    with serve("--backend", "mock") as mock_server, \
            vecembed.load_provider("remote", url=mock_server.url) as other:
        for db in ("chroma", "qdrant"):
            name = f"c{uuid.uuid4().hex[:8]}"
            where = str(tmp_path / f"{db}-2")
            with vecembed.open_store(db, name, onnx_provider, path=where) as local_store:
                local_store.ingest(docs)
            with pytest.raises(ModelMismatchError):
                vecembed.open_store(db, name, other, path=where).ingest(docs)


def test_overload_burst_gets_429_with_retry_after_and_no_wrong_vectors() -> None:
    long_texts = [" ".join(f"w{i}x{j}" for j in range(1500)) for i in range(4)]
    reference = vecembed.load_provider("mock", max_tokens=2048)
    expected = reference.embed_documents(long_texts)
    with serve("--backend", "mock", "--opt", "max_tokens=2048", "--max-queue", "8", "--max-batch-texts", "4") as s, \
            httpx.Client(timeout=60) as client, concurrent.futures.ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(lambda _: client.post(f"{s.api}/embeddings", json={"input": long_texts}),
                                  range(48)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses
        for r in responses:
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "queue_full"
            else:
                assert max_diff([d["embedding"] for d in r.json()["data"]], expected) <= 1e-6
        # the remote provider rides out the same overload with its retries
        with vecembed.load_provider("remote", url=s.url, backoff=0.05) as remote, \
                concurrent.futures.ThreadPoolExecutor(8) as burst:
            results = list(burst.map(lambda _: remote.embed_documents(long_texts), range(16)))
        assert all(max_diff(r, expected) <= 1e-6 for r in results)


@pytest.mark.slow
def test_sigterm_drains_in_flight_and_refuses_new_requests() -> None:
    # one request large enough (mock: ~1-2 s) to be in flight when SIGTERM arrives
    big = [" ".join(f"t{i}y{j}" for j in range(250)) for i in range(2048)]
    with serve("--backend", "mock", "--drain-timeout", "60") as s, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{s.api}/embeddings", json={"input": big}, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "vecembed_requests_in_flight 1" in httpx.get(f"{s.url}/metrics").text:
                break
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        refused = httpx.post(f"{s.api}/embeddings", json={"input": "late"}, timeout=10)
        health = httpx.get(f"{s.url}/health", timeout=10)
        done = pending.result(timeout=120)
        rc = s.proc.wait(timeout=60)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "service_unavailable"
    assert health.status_code == 503 and health.json()["status"] == "draining"
    assert done.status_code == 200 and len(done.json()["data"]) == len(big)
    reference = vecembed.load_provider("mock")
    assert max_diff(done.json()["data"][7]["embedding"], reference.embed_documents(big[7:8])[0]) <= 1e-6
    assert rc == 0


def test_a_model_that_does_not_load_ends_serve_with_one_line() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "vecembed", "serve", "--backend", "onnx", "--model",
                          "/nonexistent/model-dir", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and "vecembed: error:" in out.stderr and "/nonexistent/model-dir" in out.stderr
