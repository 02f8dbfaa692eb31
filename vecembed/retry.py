"""Retrying a database call that failed for a passing reason, with exponential backoff and jitter.

Each store says which of its errors are transient (:meth:`VectorStore.is_transient`);
:func:`is_transient_default` covers what every client shares (the built-in
connection and timeout errors, and httpx's transport errors). :class:`StoreCaller`
is the one way the engine, :class:`~vecembed.collection.Store` and the Ray sink call a store.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.store import VectorStore

__all__ = ["StoreCaller", "call_with_retry", "is_transient_default"]

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


class StoreCaller:
    """Calls a :class:`~vecembed.store.VectorStore` one call at a time, retrying its transient errors.

    One lock, because an embedded database (Qdrant's local mode) is plain Python state without locks, and
    the engine's writer thread writes while the calling thread looks up stored hashes.
    """

    def __init__(self, store: VectorStore, *, max_retries: int = 3, retry_backoff: float = 0.5) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not isinstance(retry_backoff, int | float) or retry_backoff < 0:
            raise InvalidInputError(f"retry_backoff must be a number >= 0, got {retry_backoff!r}")
        self.store = store
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.retries = 0
        self._lock = threading.Lock()

    def _counted(self, exc: BaseException) -> None:
        self.retries += 1  # under self._lock: the retry loop runs inside it

    def __call__(self, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return call_with_retry(
                    fn,
                    retries=self.max_retries,
                    backoff=self.retry_backoff,
                    is_transient=self.store.is_transient,
                    on_retry=self._counted,
                )
            except Exception as exc:
                if not self.store.is_transient(exc):
                    raise
                store = self.store
                raise ProviderUnavailableError(
                    f"{store.db} did not answer for collection {store.collection!r} at {store.location} after "
                    f"{self.max_retries} retries ({type(exc).__name__}: {exc}); check that the database is up "
                    "and reachable"
                ) from exc
