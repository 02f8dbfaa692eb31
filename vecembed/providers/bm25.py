"""BM25Provider: BM25 sparse vectors with no model files — lower-case, split, drop stop words, stem, hash.

::

    bm25 = vecembed.load_sparse_provider("bm25")                 # English, k1=1.2, b=0.75
    docs = bm25.embed_documents(["Aspirin lowers the risk of stroke."])
    query = bm25.embed_query("does aspirin prevent strokes")      # weight 1 per distinct term

A text becomes terms by these rules (their version is :data:`TOKENIZATION_VERSION`, in the fingerprint):

1. lower-case (``str.lower``), then split into Unicode words: runs of ``\\w`` (letters and digits of
   any script, and ``_``); everything else separates words;
2. drop stop words (the shipped English list, ``vecembed/data/stopwords_english.txt``; no list for the
   other languages unless given) and words longer than :data:`MAX_WORD_LENGTH` characters (sequences,
   hashes, run-together tables: never a query term);
3. stem each word with the Snowball stemmer of ``language``;
4. the term id is MurmurHash3 (x86, 32-bit, seed 0) of the stem's UTF-8 bytes, as an unsigned 32-bit
   integer (``mmh3.hash(stem, signed=False)``): no vocabulary to keep, the same id in every process.

A document's weight for a term is BM25's saturated, length-normalised term frequency
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``, with ``len`` the number of terms left
after step 2. A query is its distinct terms, each of weight 1: the store multiplies in each term's
inverse document frequency over the collection (:attr:`SparseModelInfo.idf` is true), so that the dot
product of query and document is the BM25 score.

Which stemmer package. Both ``py-rust-stemmers`` (fastembed's, and the Rust crate Qdrant uses) and
``snowballstemmer`` (Chroma's Python BM25) implement Snowball. On the 1,167,860 words of the SciFact
corpus (35,954 distinct), py-rust-stemmers 0.1.8 stems about 65× faster than snowballstemmer 3.1.1 without its
optional C accelerator, PyStemmer (1.5 s against 101 s for the whole list on a busy 2-core machine;
``benchmarks/stemmers.py``, ``benchmarks/results/2core-issue24-stemmers.json``), and this provider
stems each distinct word once anyway, through a cache. The stems are not identical: 75 of the 35,954
distinct words (0.2 %) differ, all from the English rule changes of Snowball 3.0 that snowballstemmer 3.x
carries and rust-stemmers does not (``biologists`` → ``biologist`` against ``biolog``, ``evening`` →
``even`` against ``evening``, ``international`` → ``intern`` against ``internat``). Speed, and the
same stems as fastembed's BM25 and Qdrant's own BM25 inference, decide for py-rust-stemmers; its 18
languages are :data:`LANGUAGES`.

Term ids and fastembed: fastembed's ``Qdrant/bm25`` takes ``abs(mmh3.hash(stem))`` — the *signed*
hash's absolute value — so an id here equals fastembed's for a stem whose signed hash is not negative
(about half of them) and differs for the rest; the vectors are not interchangeable with fastembed's
(nor are the stop-word lists' edges), and the fingerprint says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from vecembed._deps import require
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.pipeline.validate import validate_texts
from vecembed.sparse import SparseModelInfo, SparseVector
from vecembed.types import HealthReport

__all__ = [
    "DEFAULT_AVG_LEN",
    "DEFAULT_B",
    "DEFAULT_K1",
    "LANGUAGES",
    "MAX_WORD_LENGTH",
    "TOKENIZATION_VERSION",
    "BM25Provider",
    "english_stop_words",
]

#: The Snowball languages of py-rust-stemmers (the ``language=`` option).
LANGUAGES = (
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
)
#: The version of the text-to-terms rules above; changing any rule bumps it (and so the fingerprint).
TOKENIZATION_VERSION = 1
#: Words longer than this (in characters) are dropped, as fastembed's BM25 does.
MAX_WORD_LENGTH = 40
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
#: The average document length (terms after stop words) the length normalisation divides by.
DEFAULT_AVG_LEN = 256.0

_WORD = re.compile(r"\w+")
#: Distinct words whose term id is cached; past it the cache starts afresh (a bound on memory, rarely reached:
#: a corpus of 5,000 abstracts has ~36,000 distinct words).
_CACHE_MAX = 1 << 18
_STEMMER_PACKAGE = "py_rust_stemmers"


@lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """The shipped English stop-word list (``vecembed/data/stopwords_english.txt``, lower case)."""
    text = (resources.files("vecembed") / "data" / "stopwords_english.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _number(name: str, value: Any, *, low: float, high: float = math.inf, open_low: bool = False) -> float:
    """``value`` as a float checked against its range, or InvalidInputError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"bm25 option {name} must be a finite number, got {value!r}")
    below = value <= low if open_low else value < low
    if below or value > high:
        bound = f"> {low}" if open_low else f">= {low}"
        upper = "" if high == math.inf else f" and <= {high}"
        raise InvalidInputError(f"bm25 option {name} must be {bound}{upper}, got {value!r}")
    return float(value)


class BM25Provider:
    """BM25 sparse vectors, fully offline: the :class:`~vecembed.sparse.SparseEmbeddingProvider` named ``bm25``.

    Options (each in :attr:`info` ``.options`` and, where it changes the vectors, in the fingerprint):

    - ``language``: the Snowball stemmer's language, one of :data:`LANGUAGES` (default ``"english"``);
    - ``k1`` (>= 0, default 1.2): term-frequency saturation; ``b`` (0..1, default 0.75): length normalisation;
    - ``avg_len`` (> 0): the average document length in terms that ``b`` normalises against: a corpus's
      own figure comes from :meth:`average_length`; record it once, as changing it changes every vector;
    - ``stop_words``: ``True`` (the shipped list for English, none for the other languages), ``False``
      (keep every word), or your own collection of words (lower case).

    Needs ``pip install 'vecembed[sparse]'`` (py-rust-stemmers and mmh3).
    """

    def __init__(
        self,
        *,
        language: str = "english",
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        avg_len: float = DEFAULT_AVG_LEN,
        stop_words: bool | Collection[str] = True,
    ) -> None:
        if not isinstance(language, str) or language.lower() not in LANGUAGES:
            raise InvalidInputError(f"bm25 option language must be one of {', '.join(LANGUAGES)}; got {language!r}")
        language = language.lower()
        self._k1 = _number("k1", k1, low=0.0)
        self._b = _number("b", b, low=0.0, high=1.0)
        self._avg_len = _number("avg_len", avg_len, low=0.0, open_low=True)
        if isinstance(stop_words, bool):
            words = english_stop_words() if stop_words and language == "english" else frozenset()
            option: bool | list[str] = stop_words
        elif isinstance(stop_words, str) or not isinstance(stop_words, Collection):
            raise InvalidInputError(
                f"bm25 option stop_words must be True, False or a collection of words, got {type(stop_words).__name__}"
            )
        else:
            bad = [w for w in stop_words if not isinstance(w, str)]
            if bad:
                raise InvalidInputError(f"bm25 option stop_words must hold only str, got {bad[0]!r}")
            words = frozenset(w.lower() for w in stop_words)
            option = sorted(words)
        self._language = language
        self._stop_words = words
        stemmers = require(_STEMMER_PACKAGE, "sparse", "the bm25 sparse provider's Snowball stemming")
        self._mmh3 = require("mmh3", "sparse", "the bm25 sparse provider's term ids")
        self._stemmer = stemmers.SnowballStemmer(language)
        # word (lower case) -> term id, or None for a word that gives no term (stop word, too long)
        self._ids: dict[str, int | None] = dict.fromkeys(words)
        self._lock = threading.Lock()
        self._closed = False
        self._options: dict[str, Any] = {
            "language": language,
            "k1": self._k1,
            "b": self._b,
            "avg_len": self._avg_len,
            "stop_words": option,
        }
        space = {
            "tokenization": TOKENIZATION_VERSION,
            "max_word_length": MAX_WORD_LENGTH,
            "stemmer": f"snowball:{_STEMMER_PACKAGE}",
            "hash": "murmur3_x86_32:seed0:unsigned",
            "language": language,
            "stop_words": hashlib.sha256("\n".join(sorted(words)).encode()).hexdigest()[:16],
            "k1": self._k1,
            "b": self._b,
            "avg_len": self._avg_len,
        }
        digest = hashlib.sha256(json.dumps(space, sort_keys=True).encode()).hexdigest()[:16]
        self._info = SparseModelInfo(
            name=f"bm25-{language}",
            fingerprint=f"bm25-v{TOKENIZATION_VERSION}-{digest}",
            idf=True,
            options=dict(self._options),
        )

    @property
    def info(self) -> SparseModelInfo:
        """Name, fingerprint (the term space and weights), ``idf=True``, and the options that rebuild it."""
        return self._info

    @property
    def options(self) -> dict[str, Any]:
        """The load options: ``load_sparse_provider("bm25", **provider.options)`` builds the same provider."""
        return dict(self._options)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: a closed provider refuses to encode."""
        return self._closed

    # -- text to term ids ---------------------------------------------------------------------------------

    def _learn(self, words: list[str]) -> None:
        """Stem and hash ``words`` (not in the cache yet) in one call to the stemmer, and cache their ids."""
        ids = self._ids
        hash32 = self._mmh3.hash
        for word, stem in zip(words, self._stemmer.stem_words(words), strict=True):
            ids[word] = hash32(stem, signed=False) if stem and len(word) <= MAX_WORD_LENGTH else None

    def _terms(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's term ids, in text order (repeats kept)."""
        words = [_WORD.findall(text.lower()) for text in texts]
        # one thread at a time: a cache starting afresh must not empty it under another thread's look-ups
        with self._lock:
            return self._ids_of(words)

    def _ids_of(self, words: list[list[str]]) -> list[list[int]]:
        """The term ids of each text's words (under the lock): unseen words are stemmed in one batch first."""
        ids = self._ids
        batch: set[str] = set()
        for ws in words:
            batch.update(ws)
        # not `batch - ids.keys()`: set minus a keys view walks the whole cache (1 ms at 60k words), this the batch
        unseen = {w for w in batch if w not in ids}
        if unseen:
            if len(ids) + len(unseen) > _CACHE_MAX:
                # start afresh: the batch's words are all learnt again, so each is in the cache below
                ids.clear()
                ids.update(dict.fromkeys(self._stop_words))
                unseen = {w for w in batch if w not in ids}
            self._learn(sorted(unseen))
        out: list[list[int]] = []
        for ws in words:
            terms = [ids[w] for w in ws]
            out.append([t for t in terms if t is not None])
        return out

    def tokenize(self, text: str) -> list[int]:
        """The term ids of ``text`` in order, repeats kept (what :meth:`embed_documents` counts)."""
        self._check_open()
        return self._terms(validate_texts([text], what="text"))[0]

    def _document(self, terms: list[int]) -> SparseVector:
        if not terms:
            return SparseVector.empty()
        counts = Counter(terms)
        idx = np.fromiter(counts.keys(), np.uint32, len(counts))
        tf = np.fromiter(counts.values(), np.float32, len(counts))
        norm = self._k1 * (1.0 - self._b + self._b * len(terms) / self._avg_len)
        return SparseVector(idx, tf * np.float32(self._k1 + 1.0) / (tf + np.float32(norm)))

    # -- the protocol -------------------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One BM25 document vector per text, in order; a text without terms gives an empty vector."""
        self._check_open()
        items = validate_texts(texts, what="documents")
        return [self._document(terms) for terms in self._terms(items)]

    def embed_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`embed_query` for each text, in order."""
        self._check_open()
        items = validate_texts(texts, what="queries")
        out = []
        for terms in self._terms(items):
            idx = np.unique(np.asarray(terms, dtype=np.uint32))
            out.append(SparseVector(idx, np.ones(idx.size, np.float32)))
        return out

    def embed_query(self, text: str) -> SparseVector:
        """The query's distinct terms, each of weight 1 (the store multiplies in their IDF)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"query must be a str, got {type(text).__name__}")
        return self.embed_queries([text])[0]

    def average_length(self, texts: Sequence[str]) -> float:
        """The mean number of terms per text (after stop words): a corpus's own ``avg_len`` (0.0 for none)."""
        self._check_open()
        items = validate_texts(texts, what="texts")
        return sum(map(len, self._terms(items))) / len(items) if items else 0.0

    def health_check(self) -> HealthReport:
        """Encode a probe and check that it gives terms. Never raises."""
        started = time.perf_counter()
        if self._closed:
            return HealthReport(ok=False, latency_ms=0.0, detail="provider is closed", component="sparse provider")
        try:
            vector = self.embed_documents(["health check probe: stemming words"])[0]
            ok = len(vector) > 0 and bool(np.all(vector.values > 0))
            detail = f"{self._info.name}: {len(vector)} terms from the probe" if ok else "the probe gave no terms"
        except Exception as exc:  # a health check reports, it never raises
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000.0
        return HealthReport(ok=ok, latency_ms=latency, detail=detail, component="sparse provider")

    def _check_open(self) -> None:
        if self._closed:
            raise ProviderUnavailableError("BM25Provider is closed; load a new provider")

    def close(self) -> None:
        """Drop the term cache; the provider refuses to encode afterwards. Safe to call more than once."""
        self._closed = True
        self._ids = {}

    def __enter__(self) -> BM25Provider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BM25Provider {self._language} k1={self._k1} b={self._b} avg_len={self._avg_len}>"
