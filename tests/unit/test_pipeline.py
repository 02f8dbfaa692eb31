"""The shared text pipeline with a tokenizer built in code and a forward pass we can reason about.

The fake forward maps each token id to a fixed vector (no context), so a
text's mean-pooled vector does not depend on which batch it lands in: any
difference would be a pipeline bug (padding leak, order mix-up, lost text).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing

from vecembed import DimensionMismatchError, EmbeddingStats, InvalidInputError
from vecembed.pipeline import Batch, TextPipeline

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(50)]
DIM = 6


def make_tokenizer() -> Tokenizer:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    # a tokenizer.json may ship its own padding: the pipeline must override it
    tok.enable_padding(length=40, pad_id=0, pad_token="[PAD]")
    return tok


TABLE = np.random.default_rng(0).normal(size=(len(WORDS), DIM)).astype(np.float32)


class Recorder:
    """A forward that looks token vectors up in TABLE and records the batch shapes it saw."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def __call__(self, batch: Batch) -> Any:
        self.shapes.append(batch.shape)
        assert batch.input_ids.dtype == np.int64
        return TABLE[batch.input_ids]


def make_pipeline(**kw: Any) -> tuple[TextPipeline, Recorder]:
    fwd = Recorder()
    opts: dict[str, Any] = {"dimension": DIM, "max_tokens": 64, "pooling": "mean", "normalize": True}
    opts.update(kw)
    return TextPipeline(make_tokenizer(), fwd, **opts), fwd


def expected_vector(text: str, max_tokens: int = 64) -> np.ndarray:
    ids = [2, *[WORDS.index(w) for w in text.split()][:max_tokens - 2], 3]
    v = TABLE[ids].mean(axis=0)
    return v / np.linalg.norm(v)


def random_texts(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{j}" for j in rng.integers(0, 50, size=rng.integers(0, 30))) for _ in range(n)]


def test_vectors_come_back_in_input_order_across_chunks_and_batches() -> None:
    texts = random_texts(203)
    pipe, fwd = make_pipeline(batch_size=8, max_batch_tokens=128, chunk_size=50)
    out = pipe.embed(texts)
    assert out.shape == (203, DIM) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, np.stack([expected_vector(t) for t in texts]), rtol=1e-5, atol=1e-6)
    assert all(b <= 8 and (b * s <= 128 or b == 1) for b, s in fwd.shapes)
    assert pipe.stats.texts == 203 and pipe.stats.batches == len(fwd.shapes)
    pipe.close()


def test_batches_are_padded_per_batch_not_to_the_tokenizer_file_setting() -> None:
    pipe, fwd = make_pipeline()
    pipe.embed(["w1 w2", "w3"])
    assert fwd.shapes == [(2, 4)]  # [CLS] w1 w2 [SEP], not the 40 the tokenizer file asked for


def test_truncation_is_counted_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    stats = EmbeddingStats()
    pipe, _ = make_pipeline(max_tokens=5, stats=stats)
    texts = ["w1 w2 w3", "w1 w2 w3 w4", "w1 w2 w3 w4 w5 w6", ""]
    with caplog.at_level(logging.WARNING, logger="vecembed"):
        out = pipe.embed(texts)
    assert stats.truncated == 2  # 3 words + 2 specials fit; 4 and 6 words do not
    assert "2 of 4 texts" in caplog.text
    np.testing.assert_allclose(out[2], expected_vector("w1 w2 w3", max_tokens=5), rtol=1e-5)


def test_prompt_is_prepended_to_every_text() -> None:
    pipe, _ = make_pipeline()
    np.testing.assert_allclose(pipe.embed(["w2"], prompt="w9 "), pipe.embed(["w9 w2"]), rtol=1e-6)


def test_empty_input_gives_zero_rows_and_no_forward_call() -> None:
    pipe, fwd = make_pipeline()
    out = pipe.embed([])
    assert out.shape == (0, DIM) and out.dtype == np.float32
    assert fwd.shapes == []


def test_invalid_item_embeds_nothing() -> None:
    pipe, fwd = make_pipeline()
    with pytest.raises(InvalidInputError, match=r"documents\[2\]"):
        pipe.embed(["w1", "w2", None], what="documents")  # type: ignore[list-item]
    assert fwd.shapes == [] and pipe.stats.texts == 0


def test_a_backend_returning_the_wrong_width_is_an_error_not_garbage() -> None:
    pipe = TextPipeline(make_tokenizer(), lambda b: TABLE[b.input_ids][:, :, :3], dimension=DIM, max_tokens=16)
    with pytest.raises(DimensionMismatchError, match=r"shape \(1, 3\) for 1 texts, expected \(1, 6\)"):
        pipe.embed(["w1"])


def test_truncation_is_warned_once_per_provider_not_per_call(caplog: pytest.LogCaptureFixture) -> None:
    # Issue 22 #10: one warning per embed call made dozens of lines in one ingest or `vecembed embed` run.
    stats = EmbeddingStats()
    pipe, _ = make_pipeline(max_tokens=5, stats=stats)
    with caplog.at_level(logging.DEBUG, logger="vecembed"):
        for _ in range(4):
            assert pipe.embed_counted(["w1 w2 w3 w4", "w1"]).truncated == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 of 2 texts were longer than 5 tokens" in warnings[0].getMessage()
    assert stats.truncated == 4  # every call still counted
    assert sum("were truncated" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG) == 3


def test_a_caller_that_reports_the_total_gets_no_per_call_warning(caplog: pytest.LogCaptureFixture) -> None:
    from vecembed.pipeline.text import truncation_reported_by_caller

    pipe, _ = make_pipeline(max_tokens=5)
    with caplog.at_level(logging.WARNING, logger="vecembed"), truncation_reported_by_caller():
        assert pipe.embed_counted(["w1 w2 w3 w4 w5"]).truncated == 1
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="vecembed"):  # outside the block: the provider's first warning
        pipe.embed(["w1 w2 w3 w4 w5"])
    assert len(caplog.records) == 1
