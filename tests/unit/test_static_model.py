"""StaticProvider on static models built in code: model2vec parity, unknown tokens, truncation, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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
