"""Retrying a database call that failed for a passing reason, with exponential backoff and jitter.

Each store says which of its errors are transient (:meth:`VectorStore.is_transient`);
:func:`is_transient_default` covers what every client shares (the built-in
connection and timeout errors, and httpx's transport errors).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["call_with_retry", "is_transient_default"]

T = TypeVar("T")


def is_transient_default(exc: BaseException) -> bool:
    """Connection refused/reset, timeouts, and httpx transport errors (a server that died or restarted)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    httpx = sys.modules.get("httpx")  # only if a client already imported it: never import it for this
    return httpx is not None and isinstance(exc, httpx.TransportError)


def call_with_retry(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    is_transient: Callable[[BaseException], bool] = is_transient_default,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait ``backoff * 2**attempt`` (with jitter) and try again, ``retries`` times.

    The last error, or the first one that is not transient, propagates unchanged.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            # Jitter keeps several writers that failed together from retrying in lockstep.
            sleep(min(backoff * 2**attempt, 30.0) * (0.5 + random.random() / 2))
            attempt += 1
