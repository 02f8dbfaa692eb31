"""MockProvider: deterministic across processes, words shared means vectors near, fingerprint says mock."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vecembed
from vecembed import EmbeddingProvider, InvalidInputError


def test_mock_fits_the_protocol_and_reports_itself() -> None:
    p = vecembed.load_provider("mock", dimension=32)
    assert isinstance(p, EmbeddingProvider)
    assert p.info.backend == "mock" and p.info.dimension == 32 and p.info.fingerprint.startswith("ve1-mock-")
    assert p.health_check().ok


def test_mock_vectors_are_deterministic_across_processes() -> None:
    code = "import vecembed; print(vecembed.load_provider('mock', dimension=16).embed_documents(['a b c'])[0].tolist())"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(outs) == 1
    here = vecembed.load_provider("mock", dimension=16).embed_documents(["a b c"])[0]
    np.testing.assert_allclose(np.array(eval(outs.pop())), here, rtol=1e-6)


def test_texts_sharing_words_are_nearer_than_unrelated_texts() -> None:
    p = vecembed.load_provider("mock", dimension=256)
    a, b, c = p.embed_documents(["the cat sat on the mat", "a cat sat on a mat", "quantum chromodynamics lecture"])
    assert float(a @ b) > 0.4 and abs(float(a @ c)) < 0.2
    np.testing.assert_allclose(np.linalg.norm([a, b, c], axis=1), 1.0, rtol=1e-5)


def test_seed_and_dimension_change_the_fingerprint() -> None:
    fp = vecembed.load_provider("mock").info.fingerprint
    assert fp != vecembed.load_provider("mock", seed=1).info.fingerprint
    assert fp != vecembed.load_provider("mock", dimension=128).info.fingerprint
    assert fp == vecembed.load_provider("mock").info.fingerprint


def test_seed_and_closed_are_public() -> None:
    p = vecembed.load_provider("mock", dimension=8, seed=3)
    assert p.seed == 3 and p.info.extra == {"seed": 3}  # type: ignore[attr-defined]
    assert p.closed is False  # type: ignore[attr-defined]
    p.close()
    assert p.closed is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [{"dimension": 1}, {"dimension": True}, {"max_tokens": 0}, {"max_tokens": 2.5}])
def test_bad_options_are_invalid_input(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        vecembed.load_provider("mock", **options)


def test_mock_follows_the_protocol_on_edge_cases() -> None:
    with vecembed.load_provider("mock", dimension=8, max_tokens=3, query_prompt="query: ") as p:
        assert p.embed_documents([]).shape == (0, 8)
        assert p.embed_documents([""]).shape == (1, 8)
        np.testing.assert_array_equal(p.embed_query("x y"), p.embed_queries(["x y"])[0])
        assert not np.allclose(p.embed_query("x y"), p.embed_documents(["x y"])[0])  # the prompt applies
        p.embed_documents(["one two three four"])
        assert p.stats.truncated == 1
        with pytest.raises(InvalidInputError, match=r"documents\[1\]"):
            p.embed_documents(["ok", None])  # type: ignore[list-item]
    assert not p.health_check().ok  # closed
    with pytest.raises(vecembed.ProviderUnavailableError):
        p.embed_documents(["after close"])
