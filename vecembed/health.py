"""The health probe every provider shares: embed a fixed text, check shape, finiteness and norm."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from vecembed.protocol import EmbeddingProvider
from vecembed.types import HealthReport

__all__ = ["PROBE_TEXTS", "probe_provider", "timed_check"]

PROBE_TEXTS = ("vecembed health probe: the quick brown fox jumps over the lazy dog.", "")


def timed_check(component: str, check: Callable[[], tuple[bool, str, dict[str, bool]]]) -> HealthReport:
    """Run ``check`` and turn its verdict, or any exception it raises, into a :class:`HealthReport`."""
    start = time.perf_counter()
    try:
        ok, detail, checks = check()
    except Exception as exc:  # a health check never raises: the failure is the report
        ok, detail, checks = False, f"{type(exc).__name__}: {exc}", {}
    return HealthReport(
        ok=ok,
        latency_ms=(time.perf_counter() - start) * 1000.0,
        detail=detail,
        component=component,
        checks=checks,
    )


def probe_provider(provider: EmbeddingProvider, texts: Sequence[str] = PROBE_TEXTS) -> HealthReport:
    """Embed ``texts`` (:data:`PROBE_TEXTS`: a sentence and the empty text) and check what comes back. Never raises."""

    def check() -> tuple[bool, str, dict[str, bool]]:
        info = provider.info
        vectors = provider.embed_documents(list(texts))
        query = provider.embed_query(texts[0])
        checks = {
            "shape": vectors.shape == (len(texts), info.dimension) and query.shape == (info.dimension,),
            "dtype": vectors.dtype == np.float32,
            "finite": bool(np.isfinite(vectors).all() and np.isfinite(query).all()),
        }
        if info.normalized and checks["finite"]:
            norms = np.linalg.norm(vectors[:1], axis=1)
            checks["unit_norm"] = bool(np.allclose(norms, 1.0, atol=1e-3))
        failed = [name for name, passed in checks.items() if not passed]
        if failed:
            return False, f"{info.name} ({info.backend}) failed: {', '.join(failed)}", checks
        return True, f"{info.name} ({info.backend}, {info.device}) dim={info.dimension}", checks

    return timed_check("provider", check)
