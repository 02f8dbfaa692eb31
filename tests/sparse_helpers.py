"""A tiny deterministic sparse provider for the store tests: hashed term counts, no stemmer, no model.

It has what the stores see of BM25 (term ids from a stable 32-bit hash, document weights, query terms
weighted by the collection's IDF, empty vectors for texts of stop words only) and nothing else, so the
store tests do not depend on the BM25 provider's tokenisation::

    from sparse_helpers import HashedTermsProvider
    store = vecembed.open_store("memory", "docs", dense, sparse=HashedTermsProvider())
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

from vecembed.sparse import SparseModelInfo, SparseVector
from vecembed.types import HealthReport

#: Words that carry no term (a text of only these has an empty sparse vector).
STOP_WORDS = frozenset({"the", "a", "an", "and", "of", "is", "to", "in", "about"})

_WORD = re.compile(r"\w+")


def term_id(word: str) -> int:
    """The term id of a (lower-case) word: crc32, stable across processes."""
    return zlib.crc32(word.encode("utf-8")) & 0xFFFFFFFF


class HashedTermsProvider:
    """Term counts over lower-cased words less :data:`STOP_WORDS`; queries are the terms with weight 1."""

    def __init__(self, *, salt: str = "") -> None:
        # ``salt`` changes the fingerprint only: two "providers" whose term spaces must not be mixed.
        self.salt = salt
        self.closed = False
        self.documents_encoded = 0

    @property
    def info(self) -> SparseModelInfo:
        return SparseModelInfo(
            name="hashed-terms", fingerprint=f"hashed-terms-v1{self.salt}", idf=True, options={"salt": self.salt}
        )

    def _terms(self, text: str) -> Counter[int]:
        return Counter(term_id(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        self.documents_encoded += len(texts)
        return [SparseVector.from_dict({t: float(n) for t, n in self._terms(text).items()}) for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        return SparseVector.from_dict(dict.fromkeys(self._terms(text), 1.0))

    def health_check(self) -> HealthReport:
        return HealthReport(ok=True, latency_ms=0.0, detail="ok", component="hashed-terms")

    def close(self) -> None:
        self.closed = True
