"""The batch plan: length-sorted batches under a token budget, with the way back to input order."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vecembed.errors import InvalidInputError

__all__ = ["plan_batches"]


def plan_batches(
    lengths: NDArray[np.int64] | list[int], *, max_batch_size: int, max_batch_tokens: int
) -> list[NDArray[np.intp]]:
    """Split text indices into batches of similar length.

    Indices are sorted by length (longest first, so a memory problem shows at
    once) and cut so that each batch has at most ``max_batch_size`` texts and
    ``len(batch) * longest_in_batch <= max_batch_tokens`` (a single text over
    the budget still gets a batch of its own). Every index appears exactly once;
    callers put rows back with ``out[batch] = vectors``.
    """
    if max_batch_size <= 0 or max_batch_tokens <= 0:
        raise InvalidInputError("max_batch_size and max_batch_tokens must be positive")
    lens = np.asarray(lengths, dtype=np.int64)
    # stable sort on the negated length keeps equal lengths in input order: deterministic plans
    order = np.argsort(-lens, kind="stable")
    batches: list[NDArray[np.intp]] = []
    start = 0
    n = len(order)
    while start < n:
        longest = max(int(lens[order[start]]), 1)
        size = max(1, min(max_batch_size, max_batch_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches
