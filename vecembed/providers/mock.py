"""MockProvider: deterministic, model-free vectors for tests and demos.

Each text becomes a feature-hashed bag of its lower-cased words and word
bigrams (signed hashing into ``dimension`` buckets), L2-normalised. Texts that
share words are near; the same text always gives the same vector, in every
process (hashing is blake2b, not Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from vecembed.errors import InvalidInputError
from vecembed.pipeline import l2_normalize, validate_texts
from vecembed.providers.base import ProviderBase
from vecembed.types import Embeddings, EmbedResult, ModelInfo, make_fingerprint

__all__ = ["MockProvider"]

_WORD = re.compile(r"\w+", re.UNICODE)


class MockProvider(ProviderBase):
    """Feature-hashed bag-of-words vectors. Needs no model and no extra.

    ``dimension``: vector size; ``seed``: another seed is another vector space
    (another fingerprint); ``max_tokens``: words beyond it are dropped and
    counted as truncated; ``query_prompt``: prepended to queries, as a real
    model's prompt would be.
    """

    backend = "mock"

    def __init__(
        self,
        dimension: int = 384,
        *,
        seed: int = 0,
        max_tokens: int = 256,
        name: str = "vecembed/mock",
        query_prompt: str = "",
        model: str | None = None,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 2:
            raise InvalidInputError(f"dimension must be an int >= 2, got {dimension!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
        self._dimension = dimension
        self._seed = seed
        self._max_tokens = max_tokens
        self._query_prompt = query_prompt
        # model= is accepted (and ignored beyond the name) so that code passing a model to any backend works
        self._info = ModelInfo(
            name=model or name,
            dimension=dimension,
            max_tokens=max_tokens,
            pooling="mean",
            normalized=True,
            backend="mock",
            device="cpu",
            dtype="float32",
            fingerprint=make_fingerprint(
                weights_id=f"mock:seed={seed}",
                pooling="mean",
                normalized=True,
                dimension=dimension,
                extra={"mock": True, "max_tokens": max_tokens, "query_prompt": query_prompt},
            ).replace("ve1-", "ve1-mock-"),
            query_prompt=query_prompt,
            # the one option that is not in the other fields: what rebuilds this vector space elsewhere
            extra={"seed": seed},
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def seed(self) -> int:
        """The hashing seed: another seed is another vector space (also ``info.extra["seed"]``)."""
        return self._seed

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=str(self._seed).encode()).digest()
        value = int.from_bytes(digest, "little")
        return value % self._dimension, (1.0 if (value >> 63) & 1 else -1.0)

    def _embed(self, texts: Sequence[str], prompt: str, what: str) -> EmbedResult:
        self._check_open()
        items = validate_texts(texts, what=what)
        out = np.zeros((len(items), self._dimension), dtype=np.float32)
        truncated = tokens = 0
        for row, text in enumerate(items):
            words = _WORD.findall((prompt + text).lower())
            if len(words) > self._max_tokens:
                truncated += 1
                words = words[: self._max_tokens]
            tokens += len(words)
            bigrams = [f"{a} {b}" for a, b in itertools.pairwise(words)]
            features = words + bigrams or ["\x00empty"]
            for feature in features:
                col, sign = self._bucket(feature)
                out[row, col] += sign
        self.stats.add(texts=len(items), tokens=tokens, truncated=truncated, batches=1 if items else 0)
        return EmbedResult(np.ascontiguousarray(l2_normalize(out)), tokens=tokens, truncated=truncated)

    def count_tokens(self, texts: Sequence[str], *, kind: str = "document") -> list[int]:
        """The words of each text that embedding counts (prompt included for queries, at most ``max_tokens``)."""
        prompt = self._query_prompt if kind == "query" else ""
        return [min(len(_WORD.findall((prompt + t).lower())), self._max_tokens) for t in texts]

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Hashed bag-of-words vectors for ``texts``."""
        return self._embed(texts, "", "documents").vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with this call's word and truncation counts."""
        return self._embed(texts, "", "documents")

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """As :meth:`embed_documents`, with ``query_prompt`` prepended."""
        return self._embed(texts, self._query_prompt, "queries").vectors
