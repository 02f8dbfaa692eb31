"""Async without blocking the event loop: the sync work runs on a small, bounded pool of worker threads.

Embedding is CPU work in native code (ONNX Runtime, torch) that releases the GIL,
and the stores' clients are synchronous; so the async API of providers, stores and
the LangChain / LlamaIndex classes runs the sync call on a :class:`Worker` — at
most ``concurrency`` calls at once per owner, the rest wait in the executor's
queue, never on the event loop. A :class:`Worker` is loop-agnostic: the same
provider can serve several event loops (or ``asyncio.run`` called many times).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vecembed.errors import InvalidInputError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["Worker"]

T = TypeVar("T")


class Worker:
    """A lazily started pool of at most ``concurrency`` threads that async methods hand their sync work to."""

    def __init__(self, concurrency: int = 2, *, name: str = "vecembed-async") -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be a positive int, got {concurrency!r}")
        self.concurrency = concurrency
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self._name)
            return self._executor

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread; the event loop stays free while it runs."""
        import asyncio  # here, not at the top: `import vecembed` stays free of asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the threads once their queued work is done (without waiting here). A later call starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
