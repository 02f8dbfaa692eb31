"""Pooling and normalisation: token vectors plus attention mask to one vector per text.

Written once in NumPy for every backend. The maths follows
sentence-transformers' ``Pooling`` module exactly (mask-weighted sums, the
same clamps) so that vectors agree to float rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vecembed.errors import InvalidInputError
from vecembed.types import POOLING_MODES

__all__ = ["l2_normalize", "pool"]


def pool(token_embeddings: NDArray[np.floating], attention_mask: NDArray[np.integer], mode: str) -> NDArray[np.float32]:
    """Pool ``(batch, seq, dim)`` token vectors to ``(batch, dim)`` with a right-padded ``(batch, seq)`` mask.

    ``mean``: masked mean; ``cls``: first token; ``max``: masked max;
    ``mean_sqrt_len``: masked sum / sqrt(length); ``last``: last real token;
    ``none``: the input is already pooled ``(batch, dim)``.
    """
    x = np.asarray(token_embeddings, dtype=np.float32)
    if mode == "none":
        if x.ndim != 2:
            raise InvalidInputError(f"pooling 'none' expects (batch, dim) input, got shape {x.shape}")
        return x
    if x.ndim != 3:
        raise InvalidInputError(f"pooling expects (batch, seq, dim) token embeddings, got shape {x.shape}")
    mask = np.asarray(attention_mask)[:, : x.shape[1]].astype(np.float32)
    if mode == "cls":
        out: NDArray[np.float32] = x[:, 0, :]
        return out
    if mode == "last":
        last = np.maximum(mask.sum(axis=1).astype(np.int64) - 1, 0)
        out = x[np.arange(x.shape[0]), last, :]
        return out
    if mode == "max":
        masked = np.where(mask[:, :, None] > 0, x, np.float32(-1e9))
        out = masked.max(axis=1)
        return out
    if mode in ("mean", "mean_sqrt_len"):
        # einsum is a batched (1, seq) @ (seq, dim): one BLAS call, no (batch, seq, dim) temporary
        summed = np.einsum("bs,bsd->bd", mask, x, optimize=True)
        counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        out = (summed / counts) if mode == "mean" else (summed / np.sqrt(counts))
        return out.astype(np.float32, copy=False)
    raise InvalidInputError(f"unknown pooling {mode!r}; valid: {', '.join(POOLING_MODES)}")


def l2_normalize(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm; an all-zero row stays zero (as torch's ``F.normalize``, eps 1e-12)."""
    x32 = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x32, axis=1, keepdims=True)
    out: NDArray[np.float32] = (x32 / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return out
