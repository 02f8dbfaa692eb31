"""The one check of what a provider returns, before anything stores, caches or sends it.

A provider is any object that fits the protocol, a user's own or a server at the
other end of a socket, so its vectors are checked at every boundary where they
would be kept: the ingest engine (before a batch is written), :class:`~vecembed.
CachedProvider` (before an entry is cached), the shared text pipeline, the Chroma
embedding function, the Ray embedder and the remote provider. One function, so
that every boundary refuses the same things with the same words:

* not numbers (strings, objects, ragged rows) — :class:`~vecembed.errors.InvalidVectorsError`;
* not ``(n, dimension)`` — :class:`~vecembed.errors.DimensionMismatchError`;
* NaN or inf — :class:`~vecembed.errors.InvalidVectorsError` naming the row;
* for a provider whose ``info.normalized`` is true, a row whose L2 norm is not 1
  within :data:`NORM_TOLERANCE` (an all-zero row included) — the same.

What passes comes back as a C-contiguous float32 array (a float64 or integer
array is converted once, here).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vecembed.errors import DimensionMismatchError, InvalidVectorsError
from vecembed.types import Embeddings, ModelInfo

__all__ = ["NORM_TOLERANCE", "check_embeddings", "provider_label"]

#: How far from 1 a normalised vector's L2 norm may be. float32 normalisation is exact to ~1e-7 and a float16
#: forward pass (a GPU's half precision) to ~1e-3; anything further off is a broken provider (a NaN
#: normalised to zero, a missing normalisation, 1000x norms), not rounding.
NORM_TOLERANCE = 1e-2


def provider_label(info: ModelInfo) -> str:
    """How messages name a provider: ``provider 'model' (backend)``."""
    return f"provider {info.name!r} ({info.backend})"


def check_embeddings(
    vectors: object,
    *,
    expected_rows: int,
    dimension: int,
    normalized: bool = False,
    where: str,
    outcome: str = "nothing was written",
    row_name: Callable[[int], str] | None = None,
    provider: str | None = None,
) -> Embeddings:
    """``vectors`` as float32 ``(expected_rows, dimension)``, or an error naming the first bad row.

    ``where`` names who returned them (see :func:`provider_label`), ``outcome`` says what
    the refusal means for the caller ("nothing of this batch was written"), ``row_name``
    turns a row into words (default ``text <i>``: the position in the embed call) and
    ``provider`` goes to the error's ``provider`` attribute. ``normalized``: the provider
    promises unit-norm vectors (``info.normalized``), so every row's norm is checked too.
    """
    name = row_name or (lambda i: f"text {i}")
    try:
        array = np.asarray(vectors)
    except (TypeError, ValueError) as exc:  # ragged rows, objects numpy cannot read as an array
        raise InvalidVectorsError(
            f"{where} returned something that is not an array of vectors ({exc}); {outcome}", provider=provider
        ) from None
    if array.dtype.kind not in "fiu":
        raise InvalidVectorsError(
            f"{where} returned {array.dtype} values where float32 vectors were expected; {outcome}",
            provider=provider,
        )
    if expected_rows == 0 and array.size == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    if array.shape != (expected_rows, dimension):
        raise DimensionMismatchError(
            f"{where} returned vectors of shape {array.shape} for {expected_rows} texts, expected "
            f"({expected_rows}, {dimension}); {outcome}",
            expected=dimension,
            got=int(array.shape[-1]) if array.ndim else None,
        )
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
        out: Embeddings = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidVectorsError(
            f"{where} returned a vector with NaN or inf for {name(row)}; {outcome}", index=row, provider=provider
        )
    if normalized and expected_rows:
        # float64 sums: a float32 square of 1e20 would overflow to inf and hide the actual norm
        norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any():
            row = int(np.argmax(off))
            what = "an all-zero vector" if norms[row] == 0 else f"a vector of norm {norms[row]:.6g}"
            raise InvalidVectorsError(
                f"{where} returned {what} for {name(row)}, but its vectors are unit norm (info.normalized); "
                f"{outcome}",
                index=row,
                provider=provider,
            )
    return out
