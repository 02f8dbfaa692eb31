"""StaticProvider on static models built in code: model2vec parity, unknown tokens, truncation, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from static_reference import previous_vectors

pytest.importorskip("safetensors", reason="pip install 'vecembed[static]'")

import vecembed
from vecembed.errors import InvalidInputError, ModelLoadError
from vecembed.providers.static import StaticProvider, distill, is_static_model_dir

WORDS = ("the cat sat on mat dog ran in park a quick brown fox jumps over lazy "
         "vector database finds passages by meaning rather than exact words").split()


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    out: str = tok.to_str()
    return out


def _write(path: Path, *, normalize: bool = True, max_length: int | None = 512, dim: int = 12,
           dtype: Any = np.float32, quantised: bool = False, seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    tok_json = _tokenizer_json()
    n_vocab = len(json.loads(tok_json)["model"]["vocab"])
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    if quantised:  # model2vec's vocabulary quantisation: clustered rows, a mapping and per-token weights
        tensors["embeddings"] = rng.normal(size=(5, dim)).astype(dtype)
        tensors["mapping"] = rng.integers(0, 5, n_vocab).astype(np.int64)
        tensors["weights"] = rng.uniform(0.5, 2.0, n_vocab).astype(np.float32)
    else:
        tensors["embeddings"] = rng.normal(size=(n_vocab, dim)).astype(dtype)
    save_file(tensors, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text(tok_json, encoding="utf-8")
    cfg = {"model_type": "model2vec", "normalize": normalize, "max_length": max_length, "hidden_dim": dim}
    (path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return path


TEXTS = [
    "The cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "",
    "unknownword another",  # only unknown tokens: model2vec gives zeros, vecembed the vocabulary's mean
    "the dog ran in the park, the cat did not",
    "vector database " * 30,  # longer than max_length=8 below
    "MEANING rather than exact words",
]


@pytest.mark.parametrize(
    "options",
    [{}, {"normalize": False}, {"max_length": 8}, {"dtype": np.float16}, {"quantised": True}],
    ids=["default", "unnormalised", "truncating", "float16", "vocab-quantised"],
)
def test_matches_model2vec_encode(tmp_path: Path, options: dict[str, Any]) -> None:
    m2v = pytest.importorskip("model2vec", reason="pip install 'vecembed[static]'")
    path = _write(tmp_path / "m", **options)
    with vecembed.load_provider("static", model=path) as provider:
        got = provider.embed_documents(TEXTS)
    want = m2v.StaticModel.from_pretrained(str(path)).encode(TEXTS).astype(np.float32)
    assert got.shape == want.shape and got.dtype == np.float32
    norms = np.linalg.norm(want, axis=1)
    known = norms > 0
    np.testing.assert_allclose(got[known], want[known], atol=2e-3 if options.get("dtype") is np.float16 else 1e-5)
    # The one deliberate difference (issue 10 #20): no known token -> the vocabulary's mean, not zeros.
    assert (~known).sum() == 2 and (np.linalg.norm(got[~known], axis=1) > 0).all()  # "" and the unknown words
    cos = np.sum(got * want, axis=1)[norms > 0] / (np.linalg.norm(got, axis=1) * norms)[norms > 0]
    assert cos.min() >= 0.9999


def test_lookup_mean_by_hand(tmp_path: Path) -> None:
    path = _write(tmp_path / "m", normalize=False)
    from safetensors.numpy import load_file

    table = load_file(str(path / "model.safetensors"))["embeddings"]
    vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    with StaticProvider(path) as provider:
        got = provider.embed_documents(["cat mat zebra", "", "zebra"])
        assert provider.info.normalized is False and provider.info.dimension == 12
    np.testing.assert_allclose(got[0], (table[vocab["cat"]] + table[vocab["mat"]]) / 2, rtol=1e-6)
    # Nothing known: the mean of all token vectors (never zeros, never NaN), the same for every such text.
    np.testing.assert_allclose(got[1], table.astype(np.float32).mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[1], got[2])


def test_texts_with_no_known_token_get_a_unit_vector(tmp_path: Path) -> None:
    # Issue 10 #20: "", " ", an emoji and a zero-width space gave all-zero vectors while info.normalized was True.
    with StaticProvider(_write(tmp_path / "m")) as provider:
        assert provider.info.normalized
        got = provider.embed_documents(["", " ", "\U0001f600", "\u200b", "the cat"])
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
        assert np.allclose(got[:4], got[0]) and not np.allclose(got[4], got[0])
        assert provider.health_check().ok


def test_truncation_is_counted(tmp_path: Path) -> None:
    with StaticProvider(_write(tmp_path / "m", max_length=4)) as provider:
        v = provider.embed_documents(["the cat sat on the mat", "the cat sat on"])
        assert provider.stats.snapshot().truncated == 1
        assert provider.info.max_tokens == 4
    np.testing.assert_allclose(v[0], v[1], rtol=1e-6)  # only the first 4 tokens count


def test_does_not_need_model2vec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "model2vec", None)
    with StaticProvider(path) as provider:
        assert provider.embed_query("the cat").shape == (12,)
        assert provider.health_check().ok


def test_protocol_behaviour(tmp_path: Path) -> None:
    with StaticProvider(_write(tmp_path / "m")) as provider:
        assert isinstance(provider, vecembed.EmbeddingProvider)
        assert provider.embed_documents([]).shape == (0, 12)
        np.testing.assert_array_equal(provider.embed_query("the dog"), provider.embed_queries(["the dog"])[0])
        with pytest.raises(InvalidInputError) as err:
            provider.embed_documents(["the cat", None])  # type: ignore[list-item]
        assert err.value.index == 1
        with pytest.raises(InvalidInputError):
            provider.embed_documents("the cat")
    with pytest.raises(vecembed.ProviderUnavailableError):
        provider.embed_documents(["closed"])


def test_fingerprint_follows_the_weights(tmp_path: Path) -> None:
    a = StaticProvider(_write(tmp_path / "a", seed=1)).info.fingerprint
    b = StaticProvider(_write(tmp_path / "b", seed=1)).info.fingerprint
    c = StaticProvider(_write(tmp_path / "c", seed=2)).info.fingerprint
    assert a == b != c


def test_static_dir_detection(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    assert is_static_model_dir(_write(tmp_path / "m"))
    transformer = tmp_path / "t"  # the same files, but a transformer's tensors
    transformer.mkdir()
    save_file({"embeddings.word_embeddings.weight": np.zeros((4, 2), np.float32)},
              str(transformer / "model.safetensors"))
    (transformer / "tokenizer.json").write_text(_tokenizer_json())
    (transformer / "config.json").write_text("{}")
    assert not is_static_model_dir(transformer)
    (transformer / "model.safetensors").write_bytes(b"\xff" * 16)  # garbage header
    assert not is_static_model_dir(transformer)


def test_vocabulary_size_mismatch_is_an_error(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = _write(tmp_path / "m")
    save_file({"embeddings": np.zeros((3, 12), np.float32)}, str(path / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="vocabulary") as err:
        StaticProvider(path)
    assert err.value.path == str(path / "model.safetensors")


def test_damaged_files_are_model_load_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "tok")
    (path / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json"):
        StaticProvider(path)
    path = _write(tmp_path / "weights")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # the header still names the tensor; its data is cut
    with pytest.raises(ModelLoadError, match="safetensors"):
        StaticProvider(path)


def test_distill_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="dim"):
        distill(tmp_path, dim=0)
    with pytest.raises(InvalidInputError, match="already a static model"):
        distill(_write(tmp_path / "m"), dim=8)


# -- speed work (issue 25 #5): chunk cache, one pooling pass, threads — and the same vectors as before --------


def _wordpiece_json() -> str:
    """MiniLM's tokenizer pipeline (BertNormalizer, BertPreTokenizer, WordPiece) on a small vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab_list = ["[PAD]", "[UNK]", *WORDS, *letters, *".,;:!?'()-", "##s", "##ing", "##ed",
                  *(f"##{c}" for c in letters)]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(dict.fromkeys(vocab_list))}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    out: str = tok.to_str()
    return out


def _write_wordpiece(path: Path, *, max_length: int | None = 512, seed: int = 0) -> Path:
    path = _write(path, max_length=max_length, seed=seed)
    tok_json = _wordpiece_json()
    n_vocab = len(json.loads(tok_json)["model"]["vocab"])
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    save_file({"embeddings": rng.normal(size=(n_vocab, 12)).astype(np.float16)}, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text(tok_json, encoding="utf-8")
    return path


def _mixed_texts(n: int, seed: int = 0) -> list[str]:
    """Sentences of known words, unknown words, punctuation, case, accents, odd whitespace and long ones."""
    rng = np.random.default_rng(seed)
    extra = ["Cat.", "(dog)", "jumps!", "runnings", "zebra", "café", "中文", "\u00a0", "\t", "x" * 30, "it's",
             "PARK,", "\x0b", "\x1c", "\x00", "\u200b", "2024"]
    pool = [*WORDS, *extra]
    return [" ".join(rng.choice(pool, size=int(rng.integers(0, 40)))) for _ in range(n)]


@pytest.mark.parametrize("tokenizer", ["wordlevel", "wordpiece"])
def test_matches_the_previous_implementation(tmp_path: Path, tokenizer: str) -> None:
    path = _write(tmp_path / "m", max_length=16) if tokenizer == "wordlevel" else (
        _write_wordpiece(tmp_path / "m", max_length=16))
    texts = [*TEXTS, *_mixed_texts(400)]
    want = previous_vectors(path, texts, max_length=16)
    with StaticProvider(path) as provider:
        got = provider.embed_documents(texts)
        again = provider.embed_documents(texts)  # now every word comes from the cache
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.sum(got * want, axis=1).min() >= 0.99999
    np.testing.assert_array_equal(again, got)


def test_cache_size_and_threads_never_change_a_vector(tmp_path: Path) -> None:
    path = _write_wordpiece(tmp_path / "m")
    texts = _mixed_texts(3000, seed=1) + [w * 3 for w in WORDS]  # ~300k characters: several parts
    with StaticProvider(path, threads=1, word_cache=0) as plain:
        want_result = plain.embed_documents_counted(texts)
        alone = [plain.embed_documents([t])[0] for t in texts[:50]]
    want = want_result.vectors
    np.testing.assert_array_equal(np.asarray(alone), want[:50])  # batch composition changes nothing either
    for options in ({"threads": 4}, {"threads": 1, "word_cache": 5}, {"threads": 3, "word_cache": 40}):
        with StaticProvider(path, **options) as provider:
            got = provider.embed_documents_counted(texts)
            threaded = provider._executor is not None
        np.testing.assert_array_equal(got.vectors, want)
        assert (got.tokens, got.truncated) == (want_result.tokens, want_result.truncated)
        assert threaded == (options["threads"] > 1)  # big batches really went to the worker threads


def test_long_texts_are_truncated_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "m", max_length=8, normalize=False)
    long_text = "the cat sat on the mat " * 3  # 18 tokens
    with StaticProvider(path) as provider, caplog.at_level("WARNING", logger="vecembed"):
        result = provider.embed_documents_counted([long_text, "the dog"])
        assert result.truncated == 1 and provider.stats.snapshot().truncated == 1
        assert result.tokens == 8 + 2
    assert any("1 of 2 texts were longer than 8 tokens" in r.getMessage() and "max_tokens" in r.getMessage()
               for r in caplog.records)
    np.testing.assert_allclose(result.vectors[0], provider_mean(path, long_text.split()[:8]), rtol=1e-6)
    # static models have no position limit: a larger max_tokens embeds the whole text
    with StaticProvider(path, max_tokens=10_000) as whole:
        full = whole.embed_documents_counted([long_text])
        assert full.truncated == 0 and full.tokens == 18 and whole.info.max_tokens == 10_000
    np.testing.assert_allclose(full.vectors[0], provider_mean(path, long_text.split()), rtol=1e-6)


def provider_mean(path: Path, words: list[str]) -> np.ndarray:
    """The mean of ``words``' rows in the model's table (every word in the vocabulary, one token each)."""
    from safetensors.numpy import load_file

    table = load_file(str(path / "model.safetensors"))["embeddings"]
    vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    return np.asarray(table[[vocab[w] for w in words]].mean(axis=0), dtype=np.float32)


@pytest.mark.parametrize(("option", "value"), [("word_cache", -1), ("word_cache", "10"), ("word_cache", True),
                                               ("threads", 0), ("threads", 1.5), ("threads", False)])
def test_speed_options_are_checked(tmp_path: Path, option: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=option):
        StaticProvider(_write(tmp_path / "m"), **{option: value})
