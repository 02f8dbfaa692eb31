"""Collections that know their provider, with real models (issue 23 #2): a collection written with ``static`` or
``onnx`` int8 is opened later without a provider, loads the recorded one, and searches exactly as the original."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecembed

pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # loads two real models twice


@pytest.mark.parametrize(("backend", "options"), [("static", {}), ("onnx", {"quantize": "int8"})])
def test_the_recorded_provider_searches_as_the_original(
    backend: str, options: dict[str, Any], tmp_path: Path, minilm_path: Path, sts_sentences: list[str]
) -> None:
    corpus, queries = sts_sentences[:200], sts_sentences[200:220]
    path = str(tmp_path / "qdrant")
    with vecembed.load_provider(backend, **options) as original:
        with vecembed.open_store("qdrant", "docs", original, path=path) as store:
            store.ingest([(f"s{i}", t) for i, t in enumerate(corpus)])
            expected = store.search_many(queries, k=5)
        wanted = original.info.fingerprint
        direct = original.embed_queries(queries)
    with vecembed.open_store("qdrant", "docs", path=path) as reopened:  # no provider
        assert reopened.owns_provider and reopened.provider.info.fingerprint == wanted
        assert reopened.provider.info.backend == backend
        np.testing.assert_allclose(reopened.provider.embed_queries(queries), direct, atol=1e-5)
        got = reopened.search_many(queries, k=5)
    assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in expected]
