"""Retrying Qdrant calls that failed for a passing reason (connection, timeout, 5xx, 429) with backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

__all__ = ["call_with_retry", "is_transient"]

T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# gRPC status names that mean "try again later" rather than "this request is wrong".
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed.

    A 4xx answer (e.g. "Vector dimension error"), a closed local client or a
    local-mode ``ValueError`` is not transient: retrying would fail the same way.
    """
    if isinstance(exc, ResponseHandlingException):  # transport level: refused, reset, timed out
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    code = getattr(exc, "code", None)
    if callable(code) and type(exc).__module__.startswith("grpc"):
        try:
            return getattr(code(), "name", "") in _TRANSIENT_GRPC
        except Exception:
            return False
    return False


def call_with_retry(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait ``backoff * 2**attempt`` (with jitter) and try again, ``retries`` times.

    The last error, or the first non-transient one, propagates unchanged.
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
            # Jitter keeps several ingesters that failed together from retrying in lockstep.
            sleep(min(backoff * 2**attempt, 30.0) * (0.5 + random.random() / 2))
            attempt += 1
