"""vecembed serve without a process: request parsing, the batcher, metrics, the app in-process, the remote provider.

The app runs under Starlette's TestClient (in this process); the tests with a real
server process and real clients are in tests/integration/test_server.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
    ProviderUnavailableError,
)
from vecembed.providers.mock import MockProvider
from vecembed.server.batcher import DynamicBatcher, QueueFullError, ShuttingDownError, estimate_tokens
from vecembed.server.metrics import ServerMetrics
from vecembed.server.schema import ApiError, parse_embeddings_request
from vecembed.types import Embeddings, EmbedResult

pytest.importorskip("starlette", reason="pip install 'vecembed[server]'")
httpx = pytest.importorskip("httpx", reason="pip install 'vecembed[remote]'")


class GatedProvider(MockProvider):
    """A mock provider whose embed calls wait for ``gate`` (to hold the worker busy) and are recorded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(10)
        return super().embed_documents_counted(texts)


# -- request parsing ------------------------------------------------------------------------------


def parse(body: Any, decode: Any = None, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"served_names": {"m", "org/m"}, "dimension": 8, "max_inputs": 4,
                               "decode_tokens": decode, **kwargs}
    return parse_embeddings_request(body, **options)


def test_parse_accepts_every_openai_input_form() -> None:
    assert parse({"input": "a"}).texts == ["a"]
    assert parse({"input": ["a", ""], "model": "org/m"}).texts == ["a", ""]
    decode = lambda ids: [" ".join(map(str, row)) for row in ids]  # noqa: E731
    one = parse({"input": [1, 2, 3]}, decode)
    assert one.texts == ["1 2 3"] and one.token_inputs == 1
    many = parse({"input": [[1], [2, 3]], "encoding_format": "base64", "dimensions": 8}, decode)
    assert many.texts == ["1", "2 3"] and many.encoding_format == "base64"
    assert parse({"input": "q", "input_type": "query"}).kind == "query"
    assert parse({"input": "q", "input_type": "passage"}).kind == "document"


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"input": "a", "model": "other"}, 404, "model", "not served"),
        ({"input": "a", "dimensions": 4}, 400, "dimensions", "must be 8"),
        ({"input": "a", "encoding_format": "hex"}, 400, "encoding_format", "float"),
        ({"input": "a", "input_type": "x"}, 400, "input_type", "input_type"),
        ({"model": "m"}, 400, "input", "required"),
        ({"input": []}, 400, "input", "empty"),
        ({"input": 3}, 400, "input", "string or a list"),
        ({"input": ["a", 3]}, 400, "input", "input[1]"),
        ({"input": ["a", []]}, 400, "input", "input[1] is an empty list"),
        ({"input": [[1, -2]]}, 400, "input", "input[0][1]"),
        ({"input": ["a"] * 5}, 413, "input", "at most 4"),
        ({"input": "a", "model": 3}, 400, "model", "string"),
        (["a"], 400, None, "JSON object"),
    ],
)
def test_parse_refuses_bad_requests_with_the_right_status(body: Any, status: int, param: str | None,
                                                          words: str) -> None:
    with pytest.raises(ApiError) as err:
        parse(body, decode=lambda ids: ["x"] * len(ids))
    assert err.value.status == status and err.value.param == param and words in err.value.message
    assert set(err.value.body()["error"]) == {"message", "type", "param", "code"}


def test_token_ids_need_a_tokenizer_and_a_known_id() -> None:
    with pytest.raises(ApiError, match="no tokenizer"):
        parse({"input": [1, 2]})
    with pytest.raises(ApiError, match=r"below 10"):
        parse({"input": [[1, 99]]}, decode=lambda ids: ["x"], vocab_size=10)


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_render_prometheus_text() -> None:
    metrics = ServerMetrics(queue_depth=lambda: 3, in_flight=lambda: 1)
    metrics.requests.inc(endpoint="/v1/embeddings", status="200")
    metrics.requests.inc(2, endpoint="/v1/embeddings", status="429")
    metrics.request_seconds.observe(0.003)
    metrics.request_seconds.observe(20.0)
    text = metrics.render()
    assert 'vecembed_requests_total{endpoint="/v1/embeddings",status="429"} 2' in text
    assert 'vecembed_request_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'vecembed_request_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "vecembed_request_duration_seconds_count 2" in text and "vecembed_queue_depth 3" in text
    assert "# TYPE vecembed_batch_texts histogram" in text and "vecembed_tokens_embedded_total 0" in text
    assert metrics.requests.value(endpoint="/v1/embeddings", status="429") == 2


# -- the batcher ----------------------------------------------------------------------------------


@pytest.fixture
def gated() -> Iterator[GatedProvider]:
    provider = GatedProvider(dimension=16)
    yield provider
    provider.gate.set()


def test_batcher_merges_queued_requests_and_splits_the_rows(gated: GatedProvider) -> None:
    metrics = ServerMetrics(queue_depth=lambda: 0, in_flight=lambda: 0)
    batcher = DynamicBatcher(gated, max_batch_texts=16, max_wait=0.0, metrics=metrics)
    try:
        gated.gate.clear()
        first = batcher.submit(["hold the worker"])
        assert gated.entered.wait(5)
        requests = [["alpha beta"], ["gamma", "delta epsilon zeta"], ["eta"]]
        futures = [batcher.submit(texts) for texts in requests]
        assert batcher.queued_texts == 4
        gated.gate.set()
        assert first.result(5).vectors.shape == (1, 16)
        reference = MockProvider(dimension=16)
        for texts, future in zip(requests, futures, strict=True):
            result = future.result(5)
            assert np.abs(result.vectors - reference.embed_documents(texts)).max() <= 1e-6
            assert result.tokens == sum(len(t.split()) for t in texts)
        # the three queued requests went in ONE call, in order
        assert gated.calls[1] == ["alpha beta", "gamma", "delta epsilon zeta", "eta"]
        assert metrics.batch_requests.count == 2 and metrics.texts.value() == 5
        assert metrics.tokens.value() == 3 + 2 + 1 + 3 + 1
    finally:
        batcher.close(timeout=5)
    assert batcher.idle and batcher.closed


def test_batcher_respects_the_batch_limit_and_kinds(gated: GatedProvider) -> None:
    batcher = DynamicBatcher(gated, max_batch_texts=2, max_wait=0.0)
    try:
        gated.gate.clear()
        batcher.submit(["hold"])
        assert gated.entered.wait(5)
        a, b, c = (batcher.submit([t]) for t in ("one", "two", "three"))
        query = batcher.submit(["a query"], kind="query")
        gated.gate.set()
        for f in (a, b, c):
            f.result(5)
        assert np.allclose(query.result(5).vectors, MockProvider(dimension=16).embed_queries(["a query"]))
        assert gated.calls[1:] == [["one", "two"], ["three"]]  # two per call; the query ran on its own
    finally:
        batcher.close(timeout=5)


def test_batcher_sheds_load_when_the_queue_is_full(gated: GatedProvider) -> None:
    batcher = DynamicBatcher(gated, max_queue_texts=3, max_wait=0.0)
    try:
        gated.gate.clear()
        batcher.submit(["hold"])
        assert gated.entered.wait(5)
        batcher.submit(["a", "b"])
        with pytest.raises(QueueFullError) as err:
            batcher.submit(["c", "d"])
        assert err.value.retry_after >= 1 and isinstance(err.value, ProviderUnavailableError)
        batcher.submit(["c"])  # exactly at the limit is fine
    finally:
        gated.gate.set()
        batcher.close(timeout=5)
    with pytest.raises(ShuttingDownError):
        batcher.submit(["late"])
    with pytest.raises(ShuttingDownError):
        batcher.call(lambda: None)


def test_batcher_passes_errors_to_every_request_and_runs_calls_first() -> None:
    provider = MockProvider(dimension=8)
    batcher = DynamicBatcher(provider)
    try:
        assert batcher.call(lambda: 42).result(5) == 42
        failing = batcher.call(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(5)
        provider.close()
        with pytest.raises(ProviderUnavailableError, match="closed"):
            batcher.submit(["x"]).result(5)
        with pytest.raises(InvalidInputError):
            batcher.submit(["x"], kind="neither")
    finally:
        batcher.close(timeout=5)


def test_batcher_checks_its_options_and_estimates_tokens() -> None:
    with pytest.raises(InvalidInputError, match="max_batch_texts"):
        DynamicBatcher(MockProvider(), max_batch_texts=0)
    with pytest.raises(InvalidInputError, match="max_wait"):
        DynamicBatcher(MockProvider(), max_wait=-1)
    assert estimate_tokens(["x" * 3000, "ab"], max_tokens=256) == 256 + 2


class PlainProvider:
    """A user's own provider: the protocol only (no counted call, no tokenizer)."""

    def __init__(self) -> None:
        self.inner = MockProvider(dimension=8)
        self.info = self.inner.info

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        return self.inner.embed_queries(texts)


def test_batcher_serves_a_provider_of_the_users_own() -> None:
    batcher = DynamicBatcher(PlainProvider())  # type: ignore[arg-type]
    try:
        result = batcher.submit(["two words"]).result(5)
        assert np.allclose(result.vectors, MockProvider(dimension=8).embed_documents(["two words"]))
        assert result.tokens == 2  # words, when the provider has no tokenizer
    finally:
        batcher.close(timeout=5)


# -- the app in this process ----------------------------------------------------------------------


@pytest.fixture
def client_for() -> Iterator[Any]:
    from starlette.testclient import TestClient

    from vecembed.server import EmbeddingServer, ServerSettings

    opened: list[Any] = []

    def make(provider: Any, **settings: Any) -> Any:
        server = EmbeddingServer(provider, ServerSettings(**settings))
        client = TestClient(server.app)
        client.__enter__()
        client.server = server  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def wait_ready(client: Any) -> None:
    for _ in range(500):
        if client.server.status != "starting":
            return
        threading.Event().wait(0.01)


def test_app_answers_openai_requests_in_process(client_for: Any) -> None:
    provider = MockProvider(dimension=32)
    client = client_for(provider, api_keys=("k",), aliases=("text-embedding-3-small",))
    wait_ready(client)
    auth = {"Authorization": "Bearer k"}
    texts = ["first text", "second one", ""]
    body = client.post("/v1/embeddings", json={"input": texts, "model": "text-embedding-3-small"},
                       headers=auth).json()
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert np.abs(got - provider.embed_documents(texts)).max() <= 1e-6
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    b64 = client.post("/v1/embeddings", json={"input": "first text", "encoding_format": "base64"},
                      headers=auth).json()
    row = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    assert np.abs(row - provider.embed_documents(["first text"])[0]).max() <= 1e-6
    models = client.get("/v1/models", headers=auth).json()
    assert models["data"][0]["id"] == "vecembed/mock" and {"mock", "text-embedding-3-small"} <= {
        m["id"] for m in models["data"]}
    info = client.get("/info", headers=auth).json()
    assert info["model"]["fingerprint"] == provider.info.fingerprint and info["limits"]["max_inputs"] == 2048
    assert client.get("/info").status_code == 401
    wrong = client.post("/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    bad = client.post("/v1/embeddings", content=b"{not json", headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    metrics = client.get("/metrics").text
    assert 'vecembed_requests_total{endpoint="/v1/embeddings",status="200"} 2' in metrics
    assert 'status="401"' in metrics


def test_health_flips_to_503_when_the_provider_closes(client_for: Any) -> None:
    provider = MockProvider(dimension=8)
    client = client_for(provider)
    wait_ready(client)
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    provider.close()
    down = client.get("/health")
    assert down.status_code == 503 and "closed" in down.json()["detail"]
    refused = client.post("/v1/embeddings", json={"input": "x"})
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"


def test_503_while_the_model_loads_and_when_it_fails(client_for: Any) -> None:
    release = threading.Event()

    def slow_load() -> Any:
        release.wait(10)
        return MockProvider(dimension=8)

    client = client_for(slow_load)
    starting = client.post("/v1/embeddings", json={"input": "x"})
    assert starting.status_code == 503 and starting.headers["retry-after"] == "1"
    assert client.get("/health").json()["status"] == "starting"
    assert client.get("/v1/models").status_code == 503
    release.set()
    wait_ready(client)
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200

    def broken() -> Any:
        raise vecembed.ModelNotFoundError("no/such-model", ["nowhere"])

    failed = client_for(broken)
    wait_ready(failed)
    assert failed.server.status == "failed"
    response = failed.post("/v1/embeddings", json={"input": "x"})
    assert response.status_code == 503 and "no/such-model" in response.json()["error"]["message"]
    assert failed.get("/health").status_code == 503


def test_request_size_limits_answer_413(client_for: Any) -> None:
    client = client_for(MockProvider(dimension=8), max_request_bytes=200, max_inputs=3)
    wait_ready(client)
    big = client.post("/v1/embeddings", json={"input": "word " * 100})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield b'{"input": "'
        yield b"x" * 300
        yield b'"}'

    streamed = client.post("/v1/embeddings", content=chunks())
    assert streamed.status_code == 413
    many = client.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]})
    assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_inputs"


def test_a_full_queue_answers_429_with_retry_after(client_for: Any, gated: GatedProvider) -> None:
    client = client_for(gated, max_queue_texts=2, max_wait_ms=0.0)
    wait_ready(client)
    gated.gate.clear()
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, client.post(
        "/v1/embeddings", json={"input": ["a", "b"]}))) for n in ("hold", "queued")]
    threads[0].start()
    assert gated.entered.wait(5)
    threads[1].start()
    for _ in range(500):
        if client.server.batcher.queued_texts == 2:
            break
        threading.Event().wait(0.01)
    refused = client.post("/v1/embeddings", json={"input": ["c"]})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"
    gated.gate.set()
    for t in threads:
        t.join(10)
    assert results["hold"].status_code == 200 and results["queued"].status_code == 200
    assert 'vecembed_requests_rejected_total{reason="queue_full"} 1' in client.get("/metrics").text


def test_server_settings_are_checked() -> None:
    from vecembed.server import ServerSettings

    with pytest.raises(InvalidInputError, match="max_inputs"):
        ServerSettings(max_inputs=0)
    with pytest.raises(InvalidInputError, match="port"):
        ServerSettings(port=70000)
    with pytest.raises(InvalidInputError, match="empty key"):
        ServerSettings(api_keys=("",))
    with pytest.raises(InvalidInputError, match="max_wait_ms"):
        ServerSettings(max_wait_ms=-1)


def test_import_vecembed_and_its_cli_load_no_server_stack() -> None:
    code = ("import sys, vecembed; from vecembed.cli import build_parser; build_parser();"
            "print(sorted({'starlette', 'uvicorn', 'httpx', 'orjson'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_missing_server_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from vecembed.server import EmbeddingServer

    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecembed\[server\]'"):
        EmbeddingServer(MockProvider())
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecembed\[remote\]'"):
        vecembed.load_provider("remote", url="http://127.0.0.1:9")


# -- the remote provider against a mock transport --------------------------------------------------


def vecembed_like(provider: MockProvider, *, fail_first: int = 0, status: int = 503,
                  limits: dict[str, Any] | None = None, seen: list[Any] | None = None) -> Any:
    """An httpx handler that answers like `vecembed serve`, failing the first ``fail_first`` embedding calls."""
    state = {"failures": 0}

    def handler(request: Any) -> Any:
        if request.url.path == "/info":
            return httpx.Response(200, json={"model": provider.info.to_dict(), "served_names": [provider.info.name],
                                             "limits": limits or {"max_inputs": 2048}})
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        if state["failures"] < fail_first:
            state["failures"] += 1
            return httpx.Response(status, headers={"Retry-After": "0"}, json={"error": {"message": "busy"}})
        embed = provider.embed_queries if body.get("input_type") == "query" else provider.embed_documents
        vectors = embed(body["input"])
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()} for i, v in enumerate(vectors)]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": provider.info.name,
                                         "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    return httpx.MockTransport(handler)


def test_remote_takes_identity_from_info_and_batches_to_the_limits() -> None:
    local = MockProvider(dimension=16, query_prompt="query: ")
    seen: list[Any] = []
    remote = vecembed.load_provider("remote", url="http://server:8000/v1/", transport=vecembed_like(
        local, limits={"max_inputs": 3, "max_request_bytes": 10_000}, seen=seen))
    with remote:
        assert remote.info.fingerprint == local.info.fingerprint and remote.info.backend == "remote"
        assert remote.info.extra["url"] == "http://server:8000"
        texts = [f"text number {i}" for i in range(7)]
        assert np.abs(remote.embed_documents(texts) - local.embed_documents(texts)).max() <= 1e-6
        assert [len(b["input"]) for b in seen] == [3, 3, 1]
        assert np.abs(remote.embed_query("hi") - local.embed_query("hi")).max() <= 1e-6
        assert seen[-1]["input_type"] == "query"
        assert remote.embed_documents_counted(["a"]).tokens == 3
        assert remote.embed_documents([]).shape == (0, 16)
        assert remote.health_check().ok
    assert remote.closed and not remote.health_check().ok


def test_remote_retries_transient_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vecembed.providers.remote.time.sleep", lambda s: None)
    local = MockProvider(dimension=8)
    remote = vecembed.load_provider("remote", url="http://s", transport=vecembed_like(local, fail_first=2))
    assert np.allclose(remote.embed_documents(["x"]), local.embed_documents(["x"]))
    gives_up = vecembed.load_provider("remote", url="http://s", retries=1,
                                      transport=vecembed_like(local, fail_first=5, status=429))
    with pytest.raises(ProviderUnavailableError, match=r"429.*after 1 retries"):
        gives_up.embed_documents(["x"])


def test_remote_refuses_another_model_or_dimension() -> None:
    local = MockProvider(dimension=8)
    with pytest.raises(ProviderUnavailableError, match="not 'other'"):
        vecembed.load_provider("remote", url="http://s", model="other", transport=vecembed_like(local))
    with pytest.raises(DimensionMismatchError):
        vecembed.load_provider("remote", url="http://s", dimension=9, transport=vecembed_like(local))
    with pytest.raises(InvalidInputError, match="http"):
        vecembed.load_provider("remote", url="server:8000")


def test_remote_against_a_plain_openai_endpoint() -> None:
    local = MockProvider(dimension=8)
    inner = vecembed_like(local)

    def handler(request: Any) -> Any:
        if request.url.path == "/info":
            return httpx.Response(404, text="not found")
        if request.url.path == "/v1/embeddings" and json.loads(request.content)["input"] == ["bad"]:
            return httpx.Response(400, json={"error": {"message": "bad input"}})
        if request.url.path == "/v1/embeddings" and "" in json.loads(request.content)["input"]:
            # as OpenAI's API does: "'$.input' is invalid"
            return httpx.Response(400, json={"error": {"message": "'$.input' is invalid"}})
        return inner.handle_request(request)

    transport = httpx.MockTransport(handler)
    with pytest.raises(InvalidInputError, match="pass model= and dimension="):
        vecembed.load_provider("remote", url="http://api.example/v1", transport=transport)
    plain = vecembed.load_provider("remote", url="http://api.example/v1", model="emb-1", dimension=8,
                                   query_prompt="q: ", transport=transport)
    again = vecembed.load_provider("remote", url="http://other.example", model="emb-1", dimension=8,
                                   query_prompt="q: ", transport=transport)
    assert plain.info.fingerprint.startswith("ve1-remote-") and plain.info.fingerprint == again.info.fingerprint
    assert plain.info.fingerprint != local.info.fingerprint
    # the query prompt is added on the client: the endpoint knows no query/document distinction
    assert np.allclose(plain.embed_query("hi"), local.embed_documents(["q: hi"])[0])
    with pytest.raises(InvalidInputError, match="bad input"):
        plain.embed_documents(["bad"])
    # the health probe leaves out the empty text such endpoints refuse: healthy while embedding works
    assert plain.health_check().ok, plain.health_check().detail


def test_remote_says_what_to_do_when_unreachable_or_refused() -> None:
    def refuse(request: Any) -> Any:
        return httpx.Response(401, json={"error": {"message": "missing or wrong API key"}})

    with pytest.raises(ProviderUnavailableError, match="api_key= or set"):
        vecembed.load_provider("remote", url="http://s", transport=httpx.MockTransport(refuse))

    def down(request: Any) -> Any:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ProviderUnavailableError, match="is `vecembed serve` running"):
        vecembed.load_provider("remote", url="http://s", retries=0, transport=httpx.MockTransport(down))


def test_chroma_records_how_to_rebuild_a_remote_provider() -> None:
    pytest.importorskip("chromadb", reason="pip install 'vecembed[chroma]'")
    from vecembed_chroma import ChromaEmbeddingFunction

    remote = vecembed.load_provider("remote", url="http://server:8000", transport=vecembed_like(MockProvider()))
    # one record for a collection and a Chroma function's config (vecembed.provider_record): the URL, no key
    assert vecembed.ProviderRecord.of(remote.info) == vecembed.ProviderRecord(
        backend="remote", options={"url": "http://server:8000"})
    config = ChromaEmbeddingFunction(remote).get_config()
    assert (config["options"], config["rebuildable"]) == ({"url": "http://server:8000"}, True)


def test_cli_serve_runs_in_this_process_until_sigterm(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI command end to end in this process (so coverage sees it): serve, answer, drain on SIGTERM, exit 0."""
    if "openvino" in sys.modules:
        # Found at the last minute: after the OpenVINO tests, this process dies with SIGSEGV when it gets SIGTERM
        # (not reproduced with one OpenVINO provider alone). The same path runs in a fresh process in
        # tests/integration/test_serve_process.py (SIGTERM drains, exit 0); this in-process copy is for coverage.
        pytest.skip("OpenVINO is loaded in this test process; SIGTERM here crashes it (see test_serve_process.py)")
    import signal
    import socket

    from vecembed.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("VECEMBED_API_KEY", "env-key, other-key")
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}

    def client() -> None:
        for _ in range(400):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            threading.Event().wait(0.05)
        else:
            return  # the server never came up: main() has returned with an error, no signal to send
        seen["ok"] = httpx.post(f"{url}/v1/embeddings", json={"input": ["a b"], "model": "vecembed/mock"},
                                headers={"Authorization": "Bearer other-key"})
        seen["refused"] = httpx.post(f"{url}/v1/embeddings", json={"input": "x"})
        # uvicorn's handler (ours) is installed: it drains and stops. Sent to the main thread: a signal for the
        # process may land on any thread, and one of a native pool (OpenVINO's, once loaded) crashes on it.
        signal.pthread_kill(main_thread, signal.SIGTERM)

    main_thread = threading.main_thread().ident
    assert main_thread is not None
    thread = threading.Thread(target=client)
    thread.start()
    code = main(["serve", "--backend", "mock", "--opt", "dimension=16", "--port", str(port),
                 "--max-wait-ms", "1", "--log-level", "error"])
    thread.join(30)
    assert code == 0
    assert seen["ok"].status_code == 200 and seen["ok"].json()["usage"]["prompt_tokens"] == 2
    assert seen["refused"].status_code == 401
    assert "serving vecembed/mock (mock, 16-d" in capsys.readouterr().err


def test_cli_serve_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from vecembed.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["serve", "--quantize", "int8", "--alias", "a", "--alias", "b", "--max-wait-ms", "0.5"])
    assert args.quantize == "int8" and args.alias == ["a", "b"] and args.max_wait_ms == 0.5
    assert args.host == "127.0.0.1"  # this machine only, unless asked
    for bad in (["--max-wait-ms", "-1"], ["--max-wait-ms", "soon"], ["--max-queue", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *bad])
    assert "expected a number >= 0" in capsys.readouterr().err


# -- issue 22: fairness, /health from state, malformed fields, /info paths, empty key lists ------------------------


class RecordingProvider(MockProvider):
    """A mock provider that records each embed call (its texts) and each health check, and can be held at a gate."""

    def __init__(self, *, fail_on_call: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []
        self.health_checks = 0
        self.fail_on_call = fail_on_call

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(10)
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise ProviderUnavailableError("the backend fell over")
        return super().embed_documents_counted(texts)

    def health_check(self) -> Any:
        self.health_checks += 1
        return super().health_check()


def varied_texts(n: int) -> list[str]:
    return [" ".join(f"w{i}x{j}" for j in range(1 + (i * 7) % 13)) for i in range(n)]


def test_a_small_request_overtakes_the_rest_of_a_big_one() -> None:
    """Issue 22 (2): a big request is cut into budget-sized calls; a request arriving meanwhile goes into the next."""
    provider = RecordingProvider(dimension=16)
    batcher = DynamicBatcher(provider, max_batch_texts=4, max_wait=0.0)
    try:
        provider.gate.clear()
        big_texts = varied_texts(20)
        big = batcher.submit(big_texts)
        assert provider.entered.wait(5)
        small = batcher.submit(["one word"])
        provider.gate.set()
        small_result = small.result(5)
        big_result = big.result(5)
        # the big request ran in calls of at most 4 texts, and the small one rode in the second call
        assert max(len(call) for call in provider.calls) <= 4 and len(provider.calls) >= 5
        assert "one word" in provider.calls[1]
        # vectors and their order are the provider's own, whatever the chunks were
        reference = MockProvider(dimension=16)
        assert np.array_equal(big_result.vectors, reference.embed_documents(big_texts))
        assert np.array_equal(small_result.vectors, reference.embed_documents(["one word"]))
        assert big_result.tokens == sum(len(t.split()) for t in big_texts) and small_result.tokens == 2
        assert batcher.queued_texts == 0
    finally:
        provider.gate.set()
        batcher.close(timeout=5)
    assert batcher.idle


def test_new_and_running_requests_take_turns_within_the_token_budget() -> None:
    provider = RecordingProvider(dimension=8)
    # a budget of 12 estimated tokens: 3 texts of "abcdefghi" (9 // 3 + 2 = 5 each) do not fit, 2 do
    batcher = DynamicBatcher(provider, max_batch_texts=64, max_batch_tokens=12, max_wait=0.0)
    try:
        provider.gate.clear()
        hold = batcher.submit(["hold"])
        assert provider.entered.wait(5)
        first = batcher.submit([f"a{i}cdefghi" for i in range(6)])
        second = batcher.submit([f"b{i}cdefghi" for i in range(4)])
        long_one = batcher.submit(["x" * 300])  # alone over the budget: still runs, in a call of its own
        small = batcher.submit(["s"])
        provider.gate.set()
        for future in (hold, first, second, long_one, small):
            future.result(5)
        owners = ["".join(sorted({t[0] for t in call})) for call in provider.calls[1:]]
        # 1: the head of "a" is cut and the one-letter request, waiting already, fills the rest of the budget;
        # 2-3: new requests' turns (a new one is cut only at the head of a call, so "x" waits for its own);
        # 4-6: the two under way alternate, the least served first
        assert owners == ["as", "b", "x", "a", "b", "a"]
        assert [len(call) for call in provider.calls[1:]] == [3, 2, 1, 2, 2, 2]
        assert np.array_equal(first.result().vectors,
                              MockProvider(dimension=8).embed_documents([f"a{i}cdefghi" for i in range(6)]))
    finally:
        batcher.close(timeout=5)


def test_a_failed_chunk_fails_its_request_and_drops_the_rest() -> None:
    provider = RecordingProvider(dimension=8, fail_on_call=2)
    batcher = DynamicBatcher(provider, max_batch_texts=2, max_wait=0.0)
    try:
        big = batcher.submit(varied_texts(10))
        with pytest.raises(ProviderUnavailableError, match="fell over"):
            big.result(5)
        after = batcher.submit(["still served"]).result(5)
        assert after.vectors.shape == (1, 8)
        assert len(provider.calls) == 3 and batcher.queued_texts == 0  # the 3 chunks left were not run
        empty = batcher.submit([]).result(5)
        assert empty.vectors.shape == (0, 8) and empty.tokens == 0
    finally:
        batcher.close(timeout=5)


def test_a_request_cancelled_before_it_ran_is_dropped() -> None:
    provider = RecordingProvider(dimension=8)
    batcher = DynamicBatcher(provider, max_wait=0.0)
    try:
        provider.gate.clear()
        hold = batcher.submit(["hold"])
        assert provider.entered.wait(5)
        gone = batcher.submit(["a", "b", "c"])
        assert gone.cancel() and batcher.queued_texts == 3
        provider.gate.set()
        hold.result(5)
        batcher.submit(["next"]).result(5)
        assert provider.calls[1:] == [["next"]] and batcher.queued_texts == 0
    finally:
        batcher.close(timeout=5)


def test_health_without_a_key_answers_from_state_and_never_runs_the_model(client_for: Any) -> None:
    """Issue 22 (3): a flood of unauthenticated /health costs no forward pass; the deep probe needs the key."""
    provider = RecordingProvider(dimension=8)
    client = client_for(provider, api_keys=("k",), health_probe_interval=60.0)
    wait_ready(client)
    checks, calls = provider.health_checks, len(provider.calls)
    assert checks == 1  # the one probe at start
    for _ in range(50):
        answer = client.get("/health")
        assert answer.status_code == 200 and answer.json()["ok"] is True
    assert provider.health_checks == checks and len(provider.calls) == calls
    body = answer.json()
    assert body["deep"] is False and body["last_probe"]["ok"] is True and "age_s" in body["last_probe"]
    # the deep probe: key needed, and at most one per interval (the rest get the cached report)
    refused = client.get("/health?deep=1")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    deep = client.get("/health?deep=1", headers={"Authorization": "Bearer k"})
    assert deep.status_code == 200 and deep.json()["deep"] is True and deep.json()["cached"] is True
    assert provider.health_checks == checks  # the start probe is younger than 60 s
    client.server.settings = type(client.server.settings)(api_keys=("k",), health_probe_interval=0.0)
    fresh = client.get("/health?deep=1", headers={"Authorization": "Bearer k"})
    assert fresh.json()["cached"] is False and provider.health_checks == checks + 1


def test_health_turns_503_after_a_failed_call_and_back_after_a_success(client_for: Any) -> None:
    provider = RecordingProvider(dimension=8, fail_on_call=1)
    client = client_for(provider, health_probe_interval=60.0)
    wait_ready(client)
    failed = client.post("/v1/embeddings", json={"input": "x"})
    assert failed.status_code == 503
    down = client.get("/health")
    assert down.status_code == 503 and "fell over" in down.json()["detail"]
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200
    assert client.get("/health").status_code == 200


def test_after_a_failure_the_server_probes_again_by_itself_until_it_passes(client_for: Any) -> None:
    """No traffic after a 503 (a load balancer took the server out): its own timer finds the model well again."""
    provider = RecordingProvider(dimension=8, fail_on_call=1)
    client = client_for(provider, health_probe_interval=0.0)  # re-probes every 0.5 s, the floor
    wait_ready(client)
    checks = provider.health_checks
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 503
    assert client.get("/health").status_code == 503
    for _ in range(100):
        if client.get("/health", headers={}).status_code == 200:
            break
        threading.Event().wait(0.05)
    assert client.get("/health").json()["ok"] is True and provider.health_checks == checks + 1


DEEP = 1000


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "a", "input_type": ["query"]}, "input_type"),
        ({"input": "a", "input_type": 0}, "input_type"),
        ({"input": "a", "input_type": {}}, "input_type"),
        ({"input": "a", "input_type": ""}, "input_type"),
        ({"input": "a", "encoding_format": 0}, "encoding_format"),
        ({"input": "a", "encoding_format": {}}, "encoding_format"),
        ({"input": "a", "encoding_format": ["float"]}, "encoding_format"),
        ({"input": "a", "dimensions": [[[8]]]}, "dimensions"),
        ({"input": "a", "dimensions": "8"}, "dimensions"),
        ({"input": "a", "user": 3}, "user"),
        ({"input": "a", "model": {"id": "m"}}, "model"),
        ({"input": None}, "input"),
        ({"input": {"text": "a"}}, "input"),
        ({"input": [[1, [2]]]}, "input"),
        ({"input": ["a", {"b": 1}]}, "input"),
    ],
)
def test_every_malformed_field_is_a_400_naming_it(client_for: Any, body: Any, param: str) -> None:
    """Issue 22 (4): never a 500, never silently the default."""
    client = client_for(MockProvider(dimension=8))
    wait_ready(client)
    answer = client.post("/v1/embeddings", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and param in error["message"] and error["type"] == "invalid_request_error"


def test_a_deeply_nested_input_is_a_400_not_a_recursion_error(client_for: Any) -> None:
    client = client_for(MockProvider(dimension=8))
    wait_ready(client)
    for depth in (DEEP, 5000):  # under and over the JSON parser's own nesting limit
        raw = b'{"input": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
        answer = client.post("/v1/embeddings", content=raw)
        assert answer.status_code == 400, answer.text[:200]
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        assert len(answer.text) < 1000  # the message names the type, it does not echo the value


def test_info_shows_no_absolute_model_path(client_for: Any) -> None:
    """Issue 22 (5): where the model lies on the server's disk is not /info's business."""
    import dataclasses

    class LocalModel(MockProvider):
        @property
        def info(self) -> Any:
            return dataclasses.replace(super().info, extra={
                "source": "local", "path": "/home/someone/models/my-model", "revision": None,
                "files": ["/srv/cache/model.onnx", "tokenizer.json"]})

    provider = LocalModel(dimension=8)
    client = client_for(provider, api_keys=("k",))
    wait_ready(client)
    answer = client.get("/info", headers={"Authorization": "Bearer k"})
    assert answer.status_code == 200
    assert "/home/someone" not in answer.text and "/srv/cache" not in answer.text
    model = answer.json()["model"]
    assert model["extra"]["path"] == "my-model" and model["extra"]["files"] == ["model.onnx", "tokenizer.json"]
    assert model["fingerprint"] == provider.info.fingerprint and model["name"] == provider.info.name


def test_a_key_list_that_parses_to_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 (5): ``VECEMBED_API_KEY=" , "`` must not start a server without authentication."""
    import vecembed.server.app as app_module
    from vecembed.cli import main
    from vecembed.server import ServerSettings
    from vecembed.server.app import api_keys_from_env

    started: list[Any] = []
    monkeypatch.setattr(app_module, "run_server", lambda server, **kw: started.append(server.settings))
    for raw in (" , ", ",", " ,,, "):
        monkeypatch.setenv("VECEMBED_API_KEY", raw)
        assert main(["serve", "--backend", "mock"]) != 0
        with pytest.raises(InvalidInputError, match="holds no key"):
            api_keys_from_env(raw)
    assert started == []
    assert main(["serve", "--backend", "mock", "--api-key", " "]) != 0 and started == []
    monkeypatch.setenv("VECEMBED_API_KEY", " a, b ,")
    assert main(["serve", "--backend", "mock"]) == 0 and started[-1].api_keys == ("a", "b")
    monkeypatch.setenv("VECEMBED_API_KEY", "")  # unset or empty (compose's ${VAR:-}): no authentication, as asked
    assert main(["serve", "--backend", "mock"]) == 0 and started[-1].api_keys == ()
    assert api_keys_from_env(None) == () and api_keys_from_env("  ") == ()
    for bad in ((" k",), ("a b",), ("",)):
        with pytest.raises(InvalidInputError, match="api_keys"):
            ServerSettings(api_keys=bad)
    with pytest.raises(InvalidInputError, match="not one string"):
        ServerSettings(api_keys="secret")  # type: ignore[arg-type]


def test_open_endpoints_slow_a_flood_without_a_key_and_never_the_key_holders(client_for: Any) -> None:
    import asyncio

    from vecembed.server.app import _OpenLimiter

    async def burst() -> list[float | None]:
        limiter = _OpenLimiter(10.0, max_wait=0.25)
        first = [await limiter.admit() for _ in range(10)]  # the burst: no wait
        assert first == [None] * 10
        # five at once over the rate: the first two wait their turn (0.1 s, 0.2 s), the rest are told to retry
        return list(await asyncio.gather(*(limiter.admit() for _ in range(5))))

    answers = asyncio.run(burst())
    assert answers[:2] == [None, None] and all(a is not None and a > 0.25 for a in answers[2:])

    client = client_for(MockProvider(dimension=8), api_keys=("k",), health_rate_limit=1.0)
    wait_ready(client)
    for _ in range(10):
        assert client.get("/health").status_code == 200
    client.server._open_limiter.max_wait = 0.0  # no waiting: over the rate is a 429 at once
    refused = client.get("/health")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert client.get("/metrics").status_code == 429
    auth = {"Authorization": "Bearer k"}
    assert client.get("/health", headers=auth).status_code == 200
    assert client.get("/metrics", headers=auth).status_code == 200
