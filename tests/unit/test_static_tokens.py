"""The static backend's chunk cache (vecembed.providers.static_tokens) against the tokenizer it stands in front of.

Tokenizers are built in code (a BERT-style WordPiece one, and others the cache must refuse); every check
compares with the Rust tokenizer's own ids for the same texts.
"""

from __future__ import annotations

import functools
import random
import string
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecembed.providers.static_tokens import ChunkTokenizer, TokenIds, chunk_local

WORDS = "the cat sat on mat dog ran in park quick brown fox jumps over lazy vector un known".split()
PIECES = ["##ing", "##ed", "##s", "##known", "##er"]


@functools.cache
def bert_tokenizer_json() -> str:
    """A BERT-style tokenizer (BertNormalizer, BertPreTokenizer, WordPiece): MiniLM's pipeline, small vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    singles = [*string.ascii_lowercase, *string.digits, *string.punctuation, "中", "文", "é"]
    vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *PIECES, *singles,
                  *(f"##{c}" for c in string.ascii_lowercase + string.digits)]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=12))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    out: str = tok.to_str()
    return out


def bert_tokenizer() -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(bert_tokenizer_json())


def reference(tokenizer: Any, texts: list[str]) -> TokenIds:
    """The tokenizer on each whole text (none built here truncates): what the cache must reproduce."""
    ids = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    return TokenIds(np.array([i for s in ids for i in s], dtype=np.int64), np.array([len(s) for s in ids]))


def assert_same(got: TokenIds, want: TokenIds) -> None:
    assert got.lengths.tolist() == want.lengths.tolist()
    assert got.flat.tolist() == want.flat.tolist()


# Characters where chunking could go wrong: every kind of whitespace (Python's and Unicode's differ), the
# control characters BERT's clean-up deletes, the separator (NUL), accents and combining marks, CJK, emoji.
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\x00\x01\x7f\u200b\u200d"
              "\ufeff\u0301éÉüßﬁ²中文日\U0001f600.,;:!?'\"()[]#-_/") + WORDS + PIECES + ["CAT", "Jumped", "[UNK]",
                                                                              "[CLS]", "xyzzyplughfoo", "café"]
texts_strategy = st.lists(
    st.lists(st.sampled_from(TRICKY) | st.characters(exclude_categories=("Cs",)), max_size=25).map("".join)
    | st.lists(st.sampled_from([*WORDS, " ", ". "]), max_size=12).map("".join),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(texts_strategy)
def test_chunked_ids_equal_the_tokenizers(texts: list[str]) -> None:
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=64)
    assert chunked.not_chunked is None
    want = reference(bert_tokenizer(), texts)
    assert_same(chunked.token_ids(texts), want)
    assert_same(chunked.token_ids(texts), want)  # again: now from the cache


def test_cache_is_bounded_and_refills() -> None:
    rng = random.Random(0)
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=50)
    tokenizer = bert_tokenizer()
    seen = 0
    for _ in range(30):
        texts = [" ".join(rng.choice(WORDS) + rng.choice(["", "s", "ing", ".", str(rng.randrange(100))])
                          for _ in range(rng.randrange(1, 9))) for _ in range(rng.randrange(1, 20))]
        assert_same(chunked.token_ids(texts), reference(tokenizer, texts))
        assert len(chunked) <= 50
        seen = max(seen, len(chunked))
    assert seen > 25  # the cache was really used, not emptied every time
    # a single batch with more distinct chunks than the cache holds: exact, and the cache still within its bound
    many = [f"word{i} w{i}x" for i in range(200)]
    assert_same(chunked.token_ids(many), reference(tokenizer, many))
    assert len(chunked) <= 50
    chunked.clear()
    assert len(chunked) == 0


def test_long_chunks_are_not_cached() -> None:
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=100, max_chunk_chars=8)
    texts = ["the cat", "a" * 9 + " dog", "supercalifragilistic"]
    assert_same(chunked.token_ids(texts), reference(bert_tokenizer(), texts))
    assert len(chunked) == 3  # "the", "cat", "dog"
    held = chunked._generation.sequences.used
    for _ in range(3):  # the long chunks' ids are never kept, however often they come back
        assert_same(chunked.token_ids(texts), reference(bert_tokenizer(), texts))
    assert chunked._generation.sequences.used == held and len(chunked) == 3


def test_cache_off_and_empty_inputs() -> None:
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=0)
    assert chunked.not_chunked == "cache switched off (0 entries)"
    texts = ["the cat sat.", "", "dogs ran"]
    assert_same(chunked.token_ids(texts), reference(bert_tokenizer(), texts))
    assert len(chunked) == 0
    empty = ChunkTokenizer(bert_tokenizer()).token_ids([])
    assert empty.flat.shape == (0,) and empty.lengths.shape == (0,)
    blank = ChunkTokenizer(bert_tokenizer()).token_ids(["", " ", "\n"])
    assert blank.lengths.tolist() == [0, 0, 0] and blank.flat.shape == (0,)


def _tokenizer(kind: str) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "▁the": 3, "▁cat": 4, "Ġthe": 5, "Ġcat": 6}
    if kind == "metaspace":
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    elif kind == "bytelevel":
        tok = Tokenizer(models.BPE(vocab, [], unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif kind == "replace":
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.Replace("-", " ")
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    elif kind == "no-pre-tokenizer":
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    elif kind == "sequence-metaspace":  # a non-local step inside a sequence is found too
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Sequence([normalizers.Lowercase()])])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                     pre_tokenizers.Metaspace(prepend_scheme="first")])
    elif kind == "dropout":
        tok = Tokenizer(models.BPE(vocab, [], unk_token="[UNK]", dropout=0.5))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    else:  # a local sequence: lower case, then whitespace and digits
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits()])
    return tok


@pytest.mark.parametrize(("kind", "why"), [
    ("metaspace", "pre_tokenizer 'Metaspace'"),
    ("sequence-metaspace", "pre_tokenizer 'Metaspace'"),
    ("bytelevel", "pre_tokenizer 'ByteLevel'"),
    ("replace", "normalizer 'Replace'"),
    ("no-pre-tokenizer", "no pre-tokenizer"),
    ("dropout", "dropout"),
])
def test_tokenizers_not_local_to_a_word_are_tokenised_whole(kind: str, why: str) -> None:
    tok = _tokenizer(kind)
    reason = chunk_local(tok)
    assert reason is not None and why in reason
    chunked = ChunkTokenizer(tok)
    assert chunked.not_chunked == reason
    if kind != "dropout":  # random by design
        texts = ["the cat", " the-cat  the", ""]
        assert_same(chunked.token_ids(texts), reference(_tokenizer(kind), texts))
    assert len(chunked) == 0


def test_a_local_sequence_is_chunked() -> None:
    tok = _tokenizer("sequence")
    assert chunk_local(tok) is None
    texts = ["The CAT 2024", "the\tcat12 the", "Cat"]
    assert_same(ChunkTokenizer(tok).token_ids(texts), reference(_tokenizer("sequence"), texts))


def test_an_added_token_with_a_space_is_not_chunked() -> None:
    tok = bert_tokenizer()
    tok.add_tokens(["new york"])
    assert "added token 'new york'" in str(chunk_local(tok))


def test_threads_share_one_cache() -> None:
    # a small cache that many threads fill, overflow and retire at once: every result still exact
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=40)
    failures: list[str] = []
    checked: list[int] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        tokenizer = bert_tokenizer()
        try:
            for _ in range(40):
                texts = [" ".join(rng.choice(WORDS) + rng.choice(["", "s", ".", str(rng.randrange(60))])
                                  for _ in range(rng.randrange(0, 8))) for _ in range(rng.randrange(1, 30))]
                got, want = chunked.token_ids(texts), reference(tokenizer, texts)
                if got.flat.tolist() != want.flat.tolist() or got.lengths.tolist() != want.lengths.tolist():
                    failures.append(repr(texts))
                checked.append(len(texts))
        except Exception as exc:  # a thread's exception must fail the test, not only warn
            failures.append(repr(exc))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:2]
    assert len(checked) == 6 * 40
    assert len(chunked) <= 40


def test_learning_a_word_appends_in_place() -> None:
    # a stream of small batches with a new word each (a server's requests) must not copy the whole cache per call
    chunked = ChunkTokenizer(bert_tokenizer(), max_entries=10_000)
    tokenizer = bert_tokenizer()
    chunked.token_ids(["warm up the cache."])
    sequences = chunked._generation.sequences
    for i in range(100):
        texts = [f"the cat{i}. ran"]
        assert_same(chunked.token_ids(texts), reference(tokenizer, texts))
    assert chunked._generation.sequences is sequences and sequences.count > 100
    many = [f"dog{i}," for i in range(3000)]  # beyond the first capacity: one bigger copy, still exact
    assert_same(chunked.token_ids(many), reference(tokenizer, many))
    assert chunked._generation.sequences is not sequences
