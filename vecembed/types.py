"""Value types shared by every part of vecembed: model identity, health, statistics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from vecembed.errors import InvalidInputError

__all__ = [
    "POOLING_MODES",
    "EmbedResult",
    "EmbeddingStats",
    "Embeddings",
    "HealthReport",
    "ModelInfo",
    "make_fingerprint",
]

#: A 2-D float32 array of shape ``(n_texts, dimension)``, C-contiguous, rows in input order.
Embeddings: TypeAlias = NDArray[np.float32]

#: The pooling strategies the shared text pipeline implements.
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len", "last", "none")


def make_fingerprint(
    *,
    weights_id: str,
    pooling: str,
    normalized: bool,
    dimension: int,
    quantization: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Identify a vector space.

    Two providers whose vectors are comparable get the same fingerprint: the
    backend, device and dtype do not enter it, the weights, pooling,
    normalisation, dimension and quantisation do.
    """
    payload = {
        "weights": weights_id,
        "pooling": pooling,
        "normalized": normalized,
        "dimension": dimension,
        "quantization": quantization,
        **dict(extra or {}),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"ve1-{digest[:24]}"


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a provider embeds with, and the identity of its vector space.

    ``fingerprint`` is what the database adapters record and compare; see
    :func:`make_fingerprint`.
    """

    name: str
    dimension: int
    max_tokens: int
    pooling: str
    normalized: bool
    backend: str
    device: str = "cpu"
    dtype: str = "float32"
    fingerprint: str
    quantization: str | None = None
    query_prompt: str = ""
    document_prompt: str = ""
    #: Agreement with the unquantised model on a probe batch (min cosine), when measured.
    agreement: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInputError("ModelInfo.name must not be empty")
        if self.dimension <= 0:
            raise InvalidInputError(f"ModelInfo.dimension must be positive, got {self.dimension}")
        if self.max_tokens <= 0:
            raise InvalidInputError(f"ModelInfo.max_tokens must be positive, got {self.max_tokens}")
        if self.pooling not in POOLING_MODES:
            raise InvalidInputError(f"ModelInfo.pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if not self.fingerprint:
            raise InvalidInputError("ModelInfo.fingerprint must not be empty")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (used by the CLI and the adapters' records)."""
        out = dataclasses.asdict(self)
        out["extra"] = dict(self.extra)
        return out


@dataclass(frozen=True, kw_only=True)
class HealthReport:
    """The outcome of a health check. ``ok`` is the verdict; ``detail`` says why in words."""

    ok: bool
    latency_ms: float
    detail: str
    component: str = ""
    checks: Mapping[str, bool] = field(default_factory=dict)
    children: tuple[HealthReport, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 3),
            "detail": self.detail,
            "component": self.component,
            "checks": dict(self.checks),
            "children": [c.to_dict() for c in self.children],
        }

    @classmethod
    def combine(cls, component: str, parts: list[HealthReport]) -> HealthReport:
        """One report for several components: ok only when every part is."""
        ok = all(p.ok for p in parts)
        detail = "; ".join(f"{p.component or 'part'}: {p.detail}" for p in parts)
        return cls(
            ok=ok,
            latency_ms=sum(p.latency_ms for p in parts),
            detail=detail,
            component=component,
            checks={p.component or f"part{i}": p.ok for i, p in enumerate(parts)},
            children=tuple(parts),
        )


@dataclass
class EmbeddingStats:
    """Counters a provider keeps across calls (thread-safe through :meth:`add`)."""

    texts: int = 0
    tokens: int = 0
    truncated: int = 0
    batches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, texts: int = 0, tokens: int = 0, truncated: int = 0, batches: int = 0) -> None:
        with self._lock:
            self.texts += texts
            self.tokens += tokens
            self.truncated += truncated
            self.batches += batches

    def snapshot(self) -> EmbeddingStats:
        with self._lock:
            return EmbeddingStats(
                texts=self.texts, tokens=self.tokens, truncated=self.truncated, batches=self.batches
            )


@dataclass(frozen=True)
class EmbedResult:
    """The vectors of one embed call and what that call alone counted.

    ``truncated``: texts of this call cut to ``max_tokens``; ``tokens``: tokens embedded.
    ``None`` where the provider does not count (a user's own provider).
    """

    vectors: Embeddings
    tokens: int | None = None
    truncated: int | None = None
