"""The batch plan: every index once, budgets respected, input order restorable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecembed.pipeline import plan_batches


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=512), min_size=0, max_size=300),
    max_batch_size=st.integers(min_value=1, max_value=64),
    max_batch_tokens=st.integers(min_value=1, max_value=20000),
)
def test_plan_covers_every_index_once_within_budget(
    lengths: list[int], max_batch_size: int, max_batch_tokens: int
) -> None:
    plan = plan_batches(lengths, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens)
    flat = np.concatenate(plan) if plan else np.zeros(0, dtype=np.intp)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for batch in plan:
        assert 1 <= len(batch) <= max_batch_size
        longest = max(lengths[i] for i in batch)
        # a single over-budget text still gets a batch of its own
        assert len(batch) * longest <= max_batch_tokens or len(batch) == 1


def test_plan_sorts_by_length_and_restores_input_order() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 300, size=257)
    plan = plan_batches(lengths, max_batch_size=16, max_batch_tokens=2048)
    # lengths are non-increasing along the plan: similar lengths share a batch
    along = np.concatenate([lengths[b] for b in plan])
    assert (np.diff(along) <= 0).all()
    # scattering each batch's rows back by index reproduces the input order exactly
    values = lengths * 10 + 3
    out = np.empty_like(values)
    for batch in plan:
        out[batch] = values[batch]
    np.testing.assert_array_equal(out, values)


def test_plan_rejects_non_positive_budgets() -> None:
    with pytest.raises(ValueError):
        plan_batches([1, 2], max_batch_size=0, max_batch_tokens=10)
