"""Pooling and normalisation against arrays worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vecembed.pipeline import l2_normalize, pool

# two texts, seq 3, dim 2; the second text has one padding position
TOKENS = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
        [[2.0, -1.0], [4.0, 3.0], [100.0, 100.0]],
    ],
    dtype=np.float32,
)
MASK = np.array([[1, 1, 1], [1, 1, 0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", [[3.0, 4.0], [3.0, 1.0]]),
        ("cls", [[1.0, 2.0], [2.0, -1.0]]),
        ("max", [[5.0, 6.0], [4.0, 3.0]]),
        ("mean_sqrt_len", [[9.0 / np.sqrt(3), 12.0 / np.sqrt(3)], [6.0 / np.sqrt(2), 2.0 / np.sqrt(2)]]),
        ("last", [[5.0, 6.0], [4.0, 3.0]]),
    ],
)
def test_pooling_modes_match_hand_computed_values(mode: str, expected: list[list[float]]) -> None:
    out = pool(TOKENS, MASK, mode)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.array(expected, dtype=np.float32), rtol=1e-6)


def test_padding_values_never_leak_into_pooling() -> None:
    poisoned = TOKENS.copy()
    poisoned[1, 2] = [1e6, -1e6]
    for mode in ("mean", "max", "mean_sqrt_len", "last", "cls"):
        np.testing.assert_array_equal(pool(poisoned, MASK, mode), pool(TOKENS, MASK, mode))


def test_none_pooling_passes_pooled_vectors_through_and_checks_shape() -> None:
    pooled = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(pool(pooled, MASK, "none"), pooled)
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        pool(TOKENS, MASK, "none")


def test_unknown_pooling_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="mean_sqrt_len"):
        pool(TOKENS, MASK, "median")


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_zero() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert out.dtype == np.float32
