"""One conformance suite for every provider: the behaviour the protocol promises, backend by backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import vecembed
from vecembed.errors import InvalidInputError

# session fixtures (one private cache, one export) shared by every module that names them
pytest_plugins = ["backend_fixtures"]
pytestmark = [pytest.mark.integration]

BACKENDS = {
    "mock": "mock_provider",
    "torch": "torch_provider",
    "onnx": "onnx_provider",
    "onnx-int8": "onnx_int8_provider",
    "openvino": "openvino_provider",
    "openvino-int8": "openvino_int8_provider",
    "static": "static_provider",
    "gguf": "gguf_provider",
    "gguf-q8_0": "gguf_q8_provider",
}
TEXTS = [
    "A man is playing a guitar.",
    "The cat sits on the mat.",
    "",
    "Vector databases find passages by meaning.",
    "Zwei Hunde spielen im Schnee — ¿qué tal? 東京",
]


#: NNCF quantises the OpenVINO int8 model once per session (~25 s on 2 cores): its conformance runs with -m slow.
SLOW_BACKENDS = {"openvino-int8"}


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if name in SLOW_BACKENDS else name
                        for name in BACKENDS])
def provider(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(BACKENDS[request.param])


def test_is_a_provider_with_consistent_info(provider: Any) -> None:
    assert isinstance(provider, vecembed.EmbeddingProvider)
    info = provider.info
    assert info.dimension > 0 and info.max_tokens > 0 and info.fingerprint
    assert info.to_dict()["fingerprint"] == info.fingerprint


def test_shape_dtype_and_unit_norm(provider: Any) -> None:
    vectors = provider.embed_documents(TEXTS)
    assert vectors.shape == (len(TEXTS), provider.info.dimension)
    assert vectors.dtype == np.float32 and vectors.flags.c_contiguous
    assert np.isfinite(vectors).all()
    norms = np.linalg.norm(vectors, axis=1)
    non_empty = [i for i, t in enumerate(TEXTS) if t]
    if provider.info.normalized:
        np.testing.assert_allclose(norms[non_empty], 1.0, atol=1e-3)


def test_order_invariance(provider: Any) -> None:
    forward = provider.embed_documents(TEXTS)
    backward = provider.embed_documents(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-5)


def test_empty_list_and_empty_string(provider: Any) -> None:
    assert provider.embed_documents([]).shape == (0, provider.info.dimension)
    assert provider.embed_queries([]).shape == (0, provider.info.dimension)
    one = provider.embed_documents([""])
    assert one.shape == (1, provider.info.dimension) and np.isfinite(one).all()


@pytest.mark.parametrize("bad", [None, b"bytes", 3])
def test_bad_input_names_the_index(provider: Any, bad: Any) -> None:
    before = provider.stats.snapshot().texts
    with pytest.raises(InvalidInputError) as err:
        provider.embed_documents(["fine", "also fine", bad])
    assert err.value.index == 2 and "[2]" in str(err.value)
    assert provider.stats.snapshot().texts == before  # nothing was embedded


def test_embed_query_is_one_row_of_embed_queries(provider: Any) -> None:
    single = provider.embed_query(TEXTS[0])
    assert single.shape == (provider.info.dimension,)
    np.testing.assert_allclose(single, provider.embed_queries([TEXTS[0]])[0], atol=1e-6)
    with pytest.raises(InvalidInputError):
        provider.embed_query(["not", "one"])


def test_similar_texts_are_closer(provider: Any) -> None:
    if provider.info.backend == "mock":
        texts = ["the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew"]
    else:
        texts = ["A man is playing a guitar.", "A person plays the guitar.", "The stock market fell sharply."]
    a, b, c = provider.embed_documents(texts)
    assert float(a @ b) > float(a @ c)


def test_health_check(provider: Any) -> None:
    report = provider.health_check()
    assert report.ok, report.detail
    assert report.latency_ms >= 0 and report.checks["shape"] and report.checks["finite"]


def test_fingerprints_name_the_vector_space(torch_provider: Any, onnx_provider: Any, onnx_int8_provider: Any,
                                            static_provider: Any, mock_provider: Any) -> None:
    assert torch_provider.info.fingerprint == onnx_provider.info.fingerprint
    others = {onnx_int8_provider.info.fingerprint, static_provider.info.fingerprint, mock_provider.info.fingerprint}
    assert onnx_provider.info.fingerprint not in others and len(others) == 3
    assert onnx_int8_provider.info.quantization == "int8"
