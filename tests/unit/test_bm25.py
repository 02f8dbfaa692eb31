"""The bm25 sparse provider: its text-to-terms rules, BM25 weights against hand-computed values, options, identity."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import vecembed
from vecembed.errors import InvalidInputError, MissingDependencyError, ProviderUnavailableError
from vecembed.sparse import SparseEmbeddingProvider, SparseVector

pytest.importorskip("py_rust_stemmers", reason="pip install 'vecembed[sparse]'")
mmh3 = pytest.importorskip("mmh3", reason="pip install 'vecembed[sparse]'")

from vecembed.providers import bm25 as bm25_module  # noqa: E402  (after the skips: it needs the sparse extra)
from vecembed.providers.bm25 import BM25Provider, english_stop_words  # noqa: E402


def term(stem: str) -> int:
    return int(mmh3.hash(stem, signed=False))


def test_it_is_the_registered_sparse_provider() -> None:
    p = vecembed.load_sparse_provider("bm25")
    assert isinstance(p, BM25Provider) and isinstance(p, SparseEmbeddingProvider)
    assert p.info.name == "bm25-english" and p.info.idf is True
    assert p.info.fingerprint.startswith(f"bm25-v{bm25_module.TOKENIZATION_VERSION}-")


def test_document_weights_are_saturated_length_normalised_tf() -> None:
    # "running", "runs", "run" all stem to "run"; "runners" to "runner": 4 terms, avg_len 4 -> norm = k1
    p = BM25Provider(avg_len=4.0)
    (v,) = p.embed_documents(["Running runners RUN, runs!"])
    assert v.to_dict() == {term("run"): pytest.approx(3 * 2.2 / (3 + 1.2)), term("runner"): pytest.approx(1.0)}
    # b=1, avg_len 8: half the average length -> norm = 1.2 * 0.5
    (short,) = BM25Provider(b=1.0, avg_len=8.0).embed_documents(["Running runners RUN, runs!"])
    assert short.to_dict()[term("runner")] == pytest.approx(2.2 / (1 + 0.6))
    # k1 = 0: no term-frequency effect at all, every term weighs 1
    (flat,) = BM25Provider(k1=0.0).embed_documents(["Running runners RUN, runs!"])
    assert flat.values.tolist() == [1.0, 1.0]
    # b = 0: the length does not matter
    one, two = BM25Provider(b=0.0).embed_documents(["aspirin stroke", "aspirin stroke heart lung kidney liver"])
    assert one.to_dict()[term("aspirin")] == two.to_dict()[term("aspirin")] == pytest.approx(1.0)


def test_a_query_is_its_distinct_terms_of_weight_one() -> None:
    p = BM25Provider()
    q = p.embed_query("Do the cats chase CATS? cat!")
    assert q.to_dict() == {term("cat"): 1.0, term("chase"): 1.0}
    assert p.embed_queries(["cats", "the"]) == [SparseVector.from_dict({term("cat"): 1.0}), SparseVector.empty()]


def test_stop_words_are_dropped_before_stemming_and_can_be_switched_off_or_replaced() -> None:
    text = "The cat and the hat"
    assert BM25Provider().tokenize(text) == [term("cat"), term("hat")]
    assert BM25Provider(stop_words=False).tokenize(text) == [term(w) for w in ("the", "cat", "and", "the", "hat")]
    assert BM25Provider(stop_words=["CAT"]).tokenize(text) == [term(w) for w in ("the", "and", "the", "hat")]
    # another language has no shipped list: True keeps every word
    assert len(BM25Provider(language="german").tokenize("der Hund und die Katze")) == 5


def test_the_shipped_stop_word_list_is_there() -> None:
    words = english_stop_words()
    assert len(words) == 153 and {"the", "and", "not", "t", "don"} <= words
    assert all(w.isalpha() and w == w.lower() for w in words)


def test_words_are_unicode_words_lower_cased() -> None:
    p = BM25Provider(stop_words=False)
    # accented letters, ß and Cyrillic are word characters; dashes, slashes and punctuation separate
    assert len(p.tokenize("Über-Straße café/naïve, ПРИВЕТ мир")) == 6
    assert p.tokenize("ПРИВЕТ") == p.tokenize("привет")
    # words longer than MAX_WORD_LENGTH are not terms
    assert p.tokenize("a" * (bm25_module.MAX_WORD_LENGTH + 1) + " cat") == [term("cat")]


def test_empty_text_or_only_stop_words_gives_an_empty_vector() -> None:
    p = BM25Provider()
    assert p.embed_documents(["", "the and of it", "  ...  "]) == [SparseVector.empty()] * 3
    assert len(p.embed_query("")) == 0 and p.embed_documents([]) == []


def test_the_fingerprint_covers_every_option_that_changes_vectors() -> None:
    base = BM25Provider().info.fingerprint
    assert BM25Provider().info.fingerprint == base
    others = [
        BM25Provider(k1=1.5),
        BM25Provider(b=0.5),
        BM25Provider(avg_len=100),
        BM25Provider(language="german"),
        BM25Provider(stop_words=False),
        BM25Provider(stop_words=["x"]),
    ]
    prints = {p.info.fingerprint for p in others}
    assert len(prints) == len(others) and base not in prints


def test_the_options_rebuild_the_same_provider() -> None:
    p = BM25Provider(language="French", k1=0.9, b=0.4, avg_len=120, stop_words=["le", "la"])
    assert p.info.options == {"language": "french", "k1": 0.9, "b": 0.4, "avg_len": 120.0, "stop_words": ["la", "le"]}
    again = vecembed.load_sparse_provider("bm25", **p.info.options)
    assert again.info == p.info
    text = ["Le chat mange la souris dans les maisons"]
    assert again.embed_documents(text) == p.embed_documents(text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k1": -1}, "k1"),
        ({"k1": "1"}, "k1"),
        ({"b": 1.5}, "b"),
        ({"avg_len": 0}, "avg_len"),
        ({"avg_len": float("inf")}, "avg_len"),
        ({"language": "klingon"}, "language"),
        ({"stop_words": "the"}, "stop_words"),
        ({"stop_words": ["the", 3]}, "stop_words"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=f"bm25 option {message} "):
        vecembed.load_sparse_provider("bm25", **options)


def test_bad_input_is_refused_naming_the_index() -> None:
    p = BM25Provider()
    with pytest.raises(InvalidInputError, match="1"):
        p.embed_documents(["fine", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="single str"):
        p.embed_documents("a text")
    with pytest.raises(InvalidInputError, match="query must be a str"):
        p.embed_query(b"bytes")  # type: ignore[arg-type]


def test_a_missing_stemmer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py_rust_stemmers", None)  # makes the import raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecembed\[sparse\]'"):
        BM25Provider()


def test_health_and_close() -> None:
    with BM25Provider() as p:
        report = p.health_check()
        assert report.ok and "terms" in report.detail
    assert p.closed and not p.health_check().ok
    with pytest.raises(ProviderUnavailableError, match="closed"):
        p.embed_documents(["x"])


def test_the_term_cache_starting_afresh_changes_no_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [" ".join(f"w{i}x{j}" for j in range(30)) + " the cats" for i in range(20)]
    want = BM25Provider().embed_documents(texts)
    monkeypatch.setattr(bm25_module, "_CACHE_MAX", len(english_stop_words()) + 50)
    small = BM25Provider()
    one_by_one = [small.embed_documents([t])[0] for t in texts]
    assert len(small._ids) <= bm25_module._CACHE_MAX  # bounded: started afresh whenever it would overflow
    assert one_by_one == want and small.embed_documents(texts) == want
    # a batch with more distinct words than the bound is learnt whole (601 words), then the next one starts afresh
    assert len(small._ids) == len(english_stop_words()) + 601


def test_average_length_counts_terms_after_stop_words() -> None:
    p = BM25Provider()
    assert p.average_length(["the cat sat", "dogs and cats run fast", ""]) == pytest.approx((2 + 4 + 0) / 3)
    assert p.average_length([]) == 0.0
    assert np.isfinite(p.average_length(["x"]))
