"""The static backend on real models: parity with model2vec on STS-B, and offline, cached distillation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from static_reference import previous_vectors

# session fixtures (one private cache, one export) shared by every module that names them
pytest_plugins = ["backend_fixtures"]
pytestmark = [pytest.mark.integration]
pytest.importorskip("safetensors", reason="pip install 'vecembed[static]'")

import vecembed  # noqa: E402
from vecembed.providers import static as static_module  # noqa: E402


def test_matches_model2vec_on_sts(static_provider: Any, static_model_dir: Path, sts_sentences: list[str]) -> None:
    m2v = pytest.importorskip("model2vec", reason="pip install 'vecembed[static]'")
    got = static_provider.embed_documents(sts_sentences)
    want = m2v.StaticModel.from_pretrained(str(static_model_dir)).encode(sts_sentences).astype(np.float32)
    assert got.shape == want.shape == (len(sts_sentences), 384)
    norms = np.linalg.norm(want, axis=1)
    assert (norms > 0).all()
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * norms)
    assert cosine.min() >= 0.9999, f"min cosine {cosine.min()}"


def test_matches_the_previous_implementation(static_provider: Any, static_model_dir: Path,
                                             sts_sentences: list[str]) -> None:
    # STS-B sentences, then paragraphs of 10 and of 100 of them (~150 and ~1,500 tokens: the latter truncated)
    texts = [*sts_sentences, *(" ".join(sts_sentences[i : i + 10]) for i in range(0, 600, 10)),
             *(" ".join(sts_sentences[i : i + 100]) for i in range(0, 2000, 100))]
    before = static_provider.stats.snapshot().truncated
    got = static_provider.embed_documents(texts)
    assert static_provider.stats.snapshot().truncated - before == 20
    want = previous_vectors(static_model_dir, texts)
    cosine = np.sum(got * want, axis=1)
    assert cosine.min() >= 0.99999, f"min cosine {cosine.min()}"
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_threads_give_identical_vectors(static_model_dir: Path, sts_sentences: list[str]) -> None:
    texts = sts_sentences * 3  # ~500,000 characters: split into parts on the worker threads
    with vecembed.load_provider("static", model=static_model_dir, threads=1) as one, \
            vecembed.load_provider("static", model=static_model_dir, threads=2) as two:
        np.testing.assert_array_equal(two.embed_documents(texts), one.embed_documents(texts))
        assert two._executor is not None and one._executor is None


def test_static_vectors_carry_meaning(static_provider: Any, sts_rows: list[tuple[float, str, str]]) -> None:
    from scipy.stats import spearmanr

    rows = sts_rows[:400]
    a = static_provider.embed_documents([r[1] for r in rows])
    b = static_provider.embed_documents([r[2] for r in rows])
    rho = spearmanr(np.sum(a * b, axis=1), [r[0] for r in rows]).statistic
    assert rho > 0.3  # raw token embeddings, not distilled: clearly better than chance, far below the transformer


@pytest.fixture(scope="module")
def tiny_transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random BERT with its own WordPiece vocabulary, saved as a local model directory."""
    transformers = pytest.importorskip("transformers", reason="distillation needs vecembed[static]")
    pytest.importorskip("model2vec.distill", reason="pip install 'vecembed[static]'")
    path = tmp_path_factory.mktemp("tiny-bert")
    words = ("the a cat dog sat ran on in park mat quick brown fox jumps over lazy vector database text "
             "search meaning words find close far ##s ##ed ##ing").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    from tokenizers.implementations import BertWordPieceTokenizer

    BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True).save(str(path / "tokenizer.json"))
    specials = {f"{k}_token": f"[{k.upper()}]" for k in ("unk", "pad", "cls", "sep", "mask")}
    transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **specials).save_pretrained(
        str(path)
    )
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).eval().save_pretrained(str(path))
    return path


@pytest.fixture
def distill_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of model2vec's ``distill`` (the expensive step the cache exists to avoid), by model path."""
    import model2vec.distill

    calls: list[str] = []
    real = model2vec.distill.distill

    def counting(model_name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(model_name)
        return real(model_name, *args, **kwargs)

    monkeypatch.setattr(model2vec.distill, "distill", counting)
    return calls


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt of model2vec's distillation to ask the hub fails the test."""
    import model2vec.distill.distillation as distillation

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"distillation asked the hub: {args} {kwargs}")

    monkeypatch.setattr(distillation, "model_info", refuse)
    yield


def test_distill_offline_and_cached(tiny_transformer: Path, vecembed_cache: Path, no_hub: None,
                                    distill_calls: list[str], sts_sentences: list[str]) -> None:
    m2v = pytest.importorskip("model2vec")
    path = vecembed.distill(tiny_transformer, dim=8)
    assert distill_calls == [str(tiny_transformer)]
    assert path.is_relative_to(vecembed_cache) and static_module.is_static_model_dir(path)
    built = (path / "model.safetensors").stat()
    assert vecembed.distill(tiny_transformer, dim=8) == path  # cached
    with vecembed.load_provider("static", model=tiny_transformer, dim=8) as provider:
        assert len(distill_calls) == 1  # neither the second call nor the provider distilled again
        again = (path / "model.safetensors").stat()
        assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)  # the same file, untouched
        assert provider.info.dimension == 8 and provider.info.extra["distilled"] is True
        assert provider.health_check().ok
        got = provider.embed_documents(sts_sentences[:200])
    want = m2v.StaticModel.from_pretrained(str(path)).encode(sts_sentences[:200]).astype(np.float32)
    known = np.linalg.norm(want, axis=1) > 0  # the tiny vocabulary knows no token of some sentences
    np.testing.assert_allclose(got[known], want[known], atol=2e-3)  # model2vec keeps float16 vectors
    # where model2vec gives zeros, vecembed gives the vocabulary's mean (issue 10 #20), unit norm
    np.testing.assert_allclose(np.linalg.norm(got[~known], axis=1), 1.0, rtol=1e-4)


def test_damaged_distillation_is_rebuilt(tiny_transformer: Path, vecembed_cache: Path, no_hub: None,
                                        distill_calls: list[str]) -> None:
    path = vecembed.distill(tiny_transformer, dim=4)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    calls = len(distill_calls)
    assert vecembed.distill(tiny_transformer, dim=4) == path
    assert len(distill_calls) == calls + 1
    with vecembed.load_provider("static", model=path) as provider:
        assert provider.embed_query("the cat").shape == (4,)
