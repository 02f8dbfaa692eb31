"""STS Benchmark helpers shared by the backends' parity tests (imported by name, like cli_helpers)."""

from __future__ import annotations

import numpy as np


def sts_spearman(vectors: np.ndarray, sentences: list[str], rows: list[tuple[float, str, str]]) -> float:
    """STS-B Spearman of ``vectors`` (one row per sentence of ``sentences``) against the rows' gold scores."""
    from scipy.stats import spearmanr

    index = {s: i for i, s in enumerate(sentences)}
    a = vectors[[index[r[1]] for r in rows]]
    b = vectors[[index[r[2]] for r in rows]]
    return float(spearmanr(np.sum(a * b, axis=1), [r[0] for r in rows]).statistic)
